"""The audit trail is chained by hash: an altered or removed record is named."""

from __future__ import annotations

import sqlalchemy as sa

from lienthong import audit
from lienthong.message import Message
from lienthong.plugins import memory
from lienthong.store import audit as audit_table


def busy_bus(lienthong_bus):
    memory.reset()
    bus = lienthong_bus(
        endpoints={"in": {"adapter": "memory"}, "out": {"adapter": "memory"}},
        routes=[{"name": "r", "kind": "x", "to": "out"}],
    )
    memory.feed("in", [Message(body=b"<a/>", kind="x") for _ in range(5)]
                + [Message(body=b"<a/>", kind="y")])
    bus.run(once=True)
    return bus


def test_an_untouched_trail_verifies(lienthong_bus) -> None:
    bus = busy_bus(lienthong_bus)
    verdict = audit.verify(bus.store.engine, audit_table)
    assert verdict.ok and verdict.records == 5 * 2 + 2


def test_an_altered_record_is_named(lienthong_bus) -> None:
    bus = busy_bus(lienthong_bus)
    with bus.store.engine.begin() as conn:
        conn.execute(sa.update(audit_table).where(audit_table.c.id == 4)
                     .values(detail="attempt 1 (edited)"))
    verdict = audit.verify(bus.store.engine, audit_table)
    assert verdict.broken_at == 4 and "was altered" in (verdict.problem or "")


def test_a_removed_record_is_found_at_the_next_one(lienthong_bus) -> None:
    bus = busy_bus(lienthong_bus)
    with bus.store.engine.begin() as conn:
        conn.execute(sa.delete(audit_table).where(audit_table.c.id == 7))
    verdict = audit.verify(bus.store.engine, audit_table)
    assert verdict.broken_at == 8 and "removed or inserted" in (verdict.problem or "")


def test_rewriting_a_record_with_a_fresh_hash_still_breaks_the_next_link(lienthong_bus) -> None:
    bus = busy_bus(lienthong_bus)
    with bus.store.engine.begin() as conn:
        row = dict(conn.execute(sa.select(audit_table).where(audit_table.c.id == 3))
                   .mappings().one())
        row["detail"] = "forged"
        forged = audit.record_hash(row["prev_hash"], row)
        conn.execute(sa.update(audit_table).where(audit_table.c.id == 3)
                     .values(detail="forged", hash=forged))
    verdict = audit.verify(bus.store.engine, audit_table)
    assert verdict.broken_at == 4
