"""The queue's give-backs: a release drops the claim, an unqueued key only its queue mark."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from lienthong.message import Message
from lienthong.store import Intake, Outgoing, Store, deliveries, make_engine


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(make_engine(f"sqlite:///{tmp_path / 'bus.db'}"))
    store.upgrade()
    message = Message(body=b"<a/>", source="in")
    store.accept([Intake(message, [Outgoing("d-1", "r", "out", b"<a/>", {})])], enqueued_by="w-1")
    yield store
    store.engine.dispose()


def marks(store: Store) -> tuple[str | None, bool, bool]:
    with store.engine.connect() as conn:
        row = conn.execute(
            select(deliveries.c.claimed_by, deliveries.c.claimed_until, deliveries.c.enqueued_at)
        ).one()
    return row.claimed_by, row.claimed_until is not None, row.enqueued_at is not None


def test_a_release_gives_back_the_claim_and_the_queue_mark(store: Store) -> None:
    store.claim(["d-1"], "w", lease=timedelta(minutes=1))
    assert marks(store) == ("w", True, True)
    store.release(["d-1"])
    assert marks(store) == (None, False, False)
    assert [d.key for d in store.claim_due("w2", limit=5, lease=timedelta(minutes=1))] == ["d-1"]


def test_an_unqueued_key_keeps_its_claim(store: Store) -> None:
    store.claim(["d-1"], "w", lease=timedelta(minutes=1))
    store.unmark_enqueued(["d-1"])
    assert marks(store) == ("w", True, False)
    store.unmark_enqueued([])
    store.release([])
    assert marks(store) == ("w", True, False)
