"""Message ids: they begin with their time (so the store's indexes grow at their end), and
an admin finds a message by its whole id, its beginning or its end."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from lienthong.message import Message, new_id
from lienthong.store import Intake, Store, make_engine


def test_an_id_is_a_uuid7_whose_first_twelve_digits_are_the_time_in_milliseconds() -> None:
    before = time.time_ns() // 1_000_000
    made = new_id()
    after = time.time_ns() // 1_000_000
    assert len(made) == 32 and int(made, 16) >= 0
    assert uuid.UUID(made).version == 7 and uuid.UUID(made).variant == uuid.RFC_4122
    assert before <= int(made[:12], 16) <= after


def test_ids_made_later_sort_later_and_ids_made_together_are_unique() -> None:
    first = new_id()
    time.sleep(0.002)
    assert new_id() > first
    together = [new_id() for _ in range(20_000)]
    assert len(set(together)) == len(together)


def test_ids_made_at_once_on_several_threads_are_unique() -> None:
    with ThreadPoolExecutor(4) as pool:
        batches = list(pool.map(lambda _: [new_id() for _ in range(5_000)], range(4)))
    made = [i for batch in batches for i in batch]
    assert len(set(made)) == len(made) == 20_000


def test_a_message_is_found_by_its_whole_id_its_beginning_or_its_end(store_url: str) -> None:
    store = Store(make_engine(store_url))
    store.upgrade()
    # Two messages of the same millisecond share their first twelve digits.
    one, two = "019ad2c5b7e07a1b9c3d5e7f00aaaa01", "019ad2c5b7e07f2e8d4c6b5a00bbbb02"
    store.accept([Intake(Message(body=b"<a/>", source="in", id=i)) for i in (one, two)])
    assert store.full_id(one) == one
    assert store.full_id("019ad2c5b7e07a") == one  # a beginning that is unique
    assert store.full_id("019ad2c5b7e0") is None  # both begin so: ambiguous
    assert store.full_id("bbbb02") == two  # the short form: the random end
    assert store.full_id("00") is None  # both end so
    assert store.full_id("%02") is None  # a LIKE wildcard is taken literally
    assert store.full_id("nothing") is None
    assert store.trace("aaaa01")["id"] == one
