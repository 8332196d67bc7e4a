"""A claim by key finds its rows through the primary key, however stale PostgreSQL's statistics.

Found with the one-stop year in production: between vacuums the (state,
next_attempt_at) index keeps an entry for every pending version a claim wrote,
while the statistics see few pending rows, so PostgreSQL searched that index
and each claim of 500 keys read thousands of pages.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.dialects import postgresql

from lienthong.message import Message
from lienthong.model import Outcome, Result
from lienthong.store import Intake, Outgoing, Store, make_engine, utcnow
from lienthong.store.queue import claim_by_keys

LEASE = timedelta(seconds=60)


def accept(store: Store, count: int) -> list[str]:
    intakes = [Intake(Message(body=b"<a/>", source="in")) for _ in range(count)]
    for intake in intakes:
        intake.outgoing = [Outgoing(f"{intake.message.id}-d", "r", "out", b"<a/>", {})]
    store.accept(intakes, enqueued_by="w")
    return [i.outgoing[0].key for i in intakes]


def test_a_claim_by_key_uses_the_primary_key_when_the_due_index_is_full_of_old_versions(
    pg_url: str,
) -> None:
    store = Store(make_engine(pg_url))
    store.upgrade()
    # A busy day: each delivery accepted, claimed and delivered, leaving two pending
    # versions in the due index; then the statistics are taken with nothing pending.
    for _ in range(4):
        keys = accept(store, 1000)
        claimed = store.claim(keys, "w", lease=LEASE)
        store.finish([Outcome(d, Result.OK) for d in claimed], "w")
    with store.engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE deliveries")
    fresh = accept(store, 500)
    now = utcnow()
    statement = claim_by_keys(fresh, "w", now + LEASE, now, "postgresql").compile(
        dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}
    )
    with store.engine.connect() as conn:
        plan = "\n".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {statement}"))
    assert "deliveries_pkey" in plan and "ix_deliveries_due" not in plan, plan
    assert len(store.claim(fresh, "w", lease=LEASE)) == 500
    store.engine.dispose()
