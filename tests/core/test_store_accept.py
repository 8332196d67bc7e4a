"""Accept stores a message once by source key, in one statement per batch, on both stores."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import event, func, select

from lienthong.message import Message
from lienthong.store import Intake, Outgoing, Store, deliveries, make_engine, messages


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    url = (
        f"sqlite:///{tmp_path / 'bus.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    store = Store(make_engine(url))
    store.upgrade()
    yield store
    store.engine.dispose()


def intake(key: str | None, delivery: str) -> Intake:
    message = Message(body=b"<a/>", source="in", source_key=key)
    return Intake(message, [Outgoing(delivery, "r", "out", b"<a/>", {})])


def stored(store: Store) -> tuple[int, int]:
    with store.engine.connect() as conn:
        return (
            conn.execute(select(func.count()).select_from(messages)).scalar_one(),
            conn.execute(select(func.count()).select_from(deliveries)).scalar_one(),
        )


def test_a_repeat_is_told_apart_within_a_batch_and_across_batches(store: Store) -> None:
    store.accept([intake("k1", "d-1")])
    again = intake("k1", "d-2")  # offered again by its source, after a crash
    first, twice = intake("k2", "d-3"), intake("k2", "d-4")  # twice on one page
    plain = intake(None, "d-5")
    results = store.accept([again, first, plain, twice, first])
    assert [new for _, new in results] == [False, True, True, False, False]
    assert [i for i, _ in results] == [again, first, plain, twice, first]
    assert stored(store) == (3, 3)


def test_a_batch_of_keyed_messages_is_inserted_in_a_few_statements(store: Store) -> None:
    inserts: list[str] = []

    @event.listens_for(store.engine, "before_cursor_execute")
    def count(conn, cursor, statement, params, context, executemany) -> None:  # noqa: ANN001
        if statement.startswith("INSERT INTO messages"):
            inserts.append(statement)

    results = store.accept([intake(f"k{i}", f"d-{i}") for i in range(500)])
    assert all(new for _, new in results)
    assert stored(store) == (500, 500)
    assert len(inserts) <= 6, "a statement per chunk of rows, not one per message"
