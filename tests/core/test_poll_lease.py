"""Each source is polled by one worker at a time, on SQLite and PostgreSQL.

Every worker polls every source each ``bus.poll_interval``; a poll lease keeps a
second worker from fetching, mapping and routing the same items while the first
is still at it (the store's source key would drop them anyway: the lease saves
the work, and the agency's system the second call).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from lienthong import config
from lienthong.bus import Bus
from lienthong.errors import StoreUnavailable
from lienthong.lease import PollLease
from lienthong.message import Message
from lienthong.plugins import memory
from lienthong.store import Store, make_engine


@pytest.fixture(autouse=True)
def _fresh_memory() -> None:
    memory.reset()


@pytest.fixture
def workers(store_url: str, tmp_path: Path) -> Iterator[tuple[Bus, Bus]]:
    settings = config.from_dict(
        {
            "bus": {"store": store_url, "var_dir": "var"},
            "endpoints": {"in": {"adapter": "memory"}, "out": {"adapter": "memory"}},
            "routes": [{"name": "r", "from": "in", "to": ["out"]}],
        },
        base_dir=tmp_path,
    )
    Store(make_engine(store_url)).upgrade()
    first = Bus(settings, worker="first")
    second = Bus(settings, worker="second")
    first.start()
    second.start()
    yield first, second
    first.close()
    second.close()


def test_a_second_worker_leaves_a_source_alone_while_the_first_polls_it(
    workers: tuple[Bus, Bus], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = workers
    inside, go_on = threading.Event(), threading.Event()
    polled_by: list[str] = []
    receive = memory.MemoryAdapter.receive

    def held_receive(self: memory.MemoryAdapter, inbox: object) -> int:
        polled_by.append(threading.current_thread().name)
        if threading.current_thread().name == "first-poll":
            inside.set()
            assert go_on.wait(10)
        return receive(self, inbox)  # type: ignore[arg-type]

    monkeypatch.setattr(memory.MemoryAdapter, "receive", held_receive)
    memory.feed("in", [Message(body=b"<a/>"), Message(body=b"<b/>")])
    handed: list[int] = []
    poller = threading.Thread(
        target=lambda: handed.append(first.intake.poll_one("in")), name="first-poll"
    )
    poller.start()
    try:
        assert inside.wait(10)
        # The first worker is inside its poll: the second does not call the source.
        assert second.intake.poll_one("in") == 0
        assert polled_by == ["first-poll"]
    finally:
        go_on.set()
        poller.join(10)
    assert handed == [2]
    # The lease went with the poll: the second polls now (and finds what came since).
    memory.feed("in", [Message(body=b"<c/>")])
    assert second.intake.poll_one("in") == 1
    assert polled_by == ["first-poll", threading.current_thread().name]
    assert first.store.counts()["pending"] + first.store.counts()["delivered"] == 3


def test_polls_racing_from_two_workers_take_each_message_once(
    workers: tuple[Bus, Bus],
) -> None:
    """Both workers poll the source in a loop at once, as their poll rounds do."""
    first, second = workers
    memory.feed("in", [Message(body=f"<n>{n}</n>".encode()) for n in range(300)])
    for bus in workers:
        bus.endpoints.adapters["in"].settings["batch"] = 7  # small polls: many races
    totals = {"first": 0, "second": 0}

    def poll_until_dry(bus: Bus, name: str) -> None:
        idle = 0
        while idle < 20:
            got = bus.intake.poll_one("in")
            totals[name] += got
            idle = idle + 1 if got == 0 else 0

    threads = [
        threading.Thread(target=poll_until_dry, args=(first, "first")),
        threading.Thread(target=poll_until_dry, args=(second, "second")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert totals["first"] + totals["second"] == 300
    counts = first.store.counts()
    assert counts["pending"] + counts["delivered"] == 300


def test_a_store_that_does_not_answer_is_a_clear_error_not_a_source_failure(
    tmp_path: Path,
) -> None:
    from sqlalchemy import create_engine

    unreachable = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    lease = PollLease(unreachable, "poll:in", "first")
    with pytest.raises(StoreUnavailable, match="not reachable"), lease.turn():
        pass
