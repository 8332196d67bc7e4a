"""The store's times: aware UTC in Python, UTC in every column, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert, select, update

from lienthong import audit as audit_chain
from lienthong.message import Message
from lienthong.model import Outcome, Result
from lienthong.store import (
    Intake,
    Outgoing,
    Store,
    attempts,
    audit,
    deliveries,
    holders,
    make_engine,
    messages,
    utcnow,
)

HANOI = ZoneInfo("Asia/Ho_Chi_Minh")


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'bus.db'}"
    else:
        # A session in Hanoi's time zone: what the store keeps must not depend on it.
        url = request.getfixturevalue("pg_url") + "%20-ctimezone%3DAsia/Ho_Chi_Minh"
    store = Store(make_engine(url))
    store.upgrade()
    yield store
    store.engine.dispose()


def stored_text(store: Store, column: str, table: str, where: str) -> str:
    """The column's value as the database itself shows it, past every Python type."""
    cast = "CAST({} AS TEXT)" if store.dialect == "postgresql" else "{}"
    with store.engine.connect() as conn:
        value = conn.exec_driver_sql(
            f"SELECT {cast.format(column)} FROM {table} WHERE {where}"
        ).scalar_one()
    return str(value)


def test_times_written_on_every_path_read_back_aware_utc(store: Store) -> None:
    before = utcnow()
    message = Message(body=b"<a/>", source="in", source_key="k1")
    plain = Message(body=b"<b/>", source="in")
    store.accept(
        [
            Intake(message, outgoing=[Outgoing("d-1", "r", "out", b"<a/>", {})]),
            Intake(plain, outgoing=[Outgoing("d-2", "r", "out", b"<b/>", {})]),
        ]
    )
    [delivery, _] = store.claim_due("w", limit=5, lease=timedelta(minutes=1))
    store.finish([Outcome(delivery, Result.OK)], "w")
    after = utcnow()

    with store.engine.connect() as conn:
        times = [
            *conn.execute(
                select(messages.c.created_at, messages.c.accepted_at).where(
                    messages.c.id == message.id
                )
            ).one(),
            *[r.at for r in conn.execute(select(audit.c.at))],
            conn.execute(select(attempts.c.at)).scalar_one(),
            conn.execute(
                select(deliveries.c.delivered_at).where(deliveries.c.delivered_at.is_not(None))
            ).scalar_one(),
        ]
    assert store.next_due() is not None and store.next_due().tzinfo is UTC
    for value in times:
        assert value.tzinfo is UTC
        assert before - timedelta(seconds=1) <= value <= after
    # The hot paths' SQL goes to the driver: it too keeps UTC, whatever the session's zone.
    accepted = times[1]
    kept = stored_text(store, "accepted_at", "messages", f"id = '{message.id}'")
    assert kept.startswith(f"{accepted:%Y-%m-%d %H:%M:%S}")
    kept = stored_text(store, "delivered_at", "deliveries", f"id = '{delivery.key}'")
    assert kept.startswith(f"{times[-1]:%Y-%m-%d %H:%M:%S}")


def test_an_aware_time_in_another_zone_is_kept_as_its_utc_instant(store: Store) -> None:
    store.accept([Intake(Message(body=b"<a/>", source="in"), [Outgoing("d", "r", "o", b"", {})])])
    hanoi = datetime(2026, 3, 1, 8, 30, tzinfo=HANOI)
    with store.engine.begin() as conn:
        conn.execute(update(deliveries).values(next_attempt_at=hanoi))
        back = conn.execute(select(deliveries.c.next_attempt_at)).scalar_one()
        due = conn.execute(
            select(deliveries.c.id).where(
                deliveries.c.next_attempt_at == datetime(2026, 3, 1, 1, 30, tzinfo=UTC)
            )
        ).all()
    assert back == hanoi and back.tzinfo is UTC and back.hour == 1
    assert len(due) == 1, "compared as the same instant"
    assert stored_text(store, "next_attempt_at", "deliveries", "1 = 1").startswith(
        "2026-03-01 01:30:00"
    )


def test_a_naive_time_written_is_taken_as_utc(store: Store) -> None:
    store.accept([Intake(Message(body=b"<a/>", source="in"), [Outgoing("d", "r", "o", b"", {})])])
    with store.engine.begin() as conn:
        conn.execute(update(deliveries).values(next_attempt_at=datetime(2026, 3, 1, 1, 30)))
        back = conn.execute(select(deliveries.c.next_attempt_at)).scalar_one()
    assert back == datetime(2026, 3, 1, 1, 30, tzinfo=UTC)


def test_a_time_zone_column_reads_back_aware_utc_too(store: Store) -> None:
    started = datetime(2026, 3, 1, 8, 30, tzinfo=HANOI)
    with store.engine.begin() as conn:
        conn.execute(
            insert(holders).values(
                name="h",
                host="x",
                pid=1,
                started_at=started,
                heartbeat_at=started,
                timeout_s=30.0,
            )
        )
        back = conn.execute(select(holders.c.started_at)).scalar_one()
    assert back == started and back.tzinfo is UTC


def test_an_audit_hash_does_not_depend_on_how_its_time_is_held() -> None:
    """Chains written when the store read naive times back still verify."""
    naive = {"message_id": "m", "at": datetime(2026, 3, 1, 1, 30, 0, 5), "event": "accepted"}
    aware = {**naive, "at": datetime(2026, 3, 1, 8, 30, 0, 5, tzinfo=HANOI)}
    assert audit_chain.record_hash("0", naive) == audit_chain.record_hash("0", aware)
    assert audit_chain.record_hash("0", naive, b"k" * 32) == audit_chain.record_hash(
        "0", aware, b"k" * 32
    )
