"""A registered holder that claims deliveries and starts a job run and a sync run, then waits.

    python hold_runs.py URL SCHEMA HOLDER

The test SIGKILLs it; whoever notices must release its claims and mark its runs killed.
Prints "running" once everything is held.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sqlalchemy import insert  # noqa: E402
from sync_db import engine_for  # noqa: E402

from lienthong.holders import Holder  # noqa: E402
from lienthong.lease import leases  # noqa: E402
from lienthong.message import Message  # noqa: E402
from lienthong.scheduler import claim_run  # noqa: E402
from lienthong.store import Intake, Outgoing, Store  # noqa: E402
from lienthong.sync import sync_runs  # noqa: E402


def main(url: str, schema: str, name: str) -> None:
    engine = engine_for(url, schema or None)
    holder = Holder(engine, name, heartbeat_s=0.5, timeout_s=300)
    holder.start()
    store = Store(engine)
    intakes = [
        Intake(
            Message(body=f"<n>{n}</n>".encode(), source="in"),
            outgoing=[Outgoing(f"{name}-{n}", "r", "out", f"<n>{n}</n>".encode(), {})],
        )
        for n in range(3)
    ]
    store.accept(intakes, claim=(name, timedelta(seconds=300)))
    claim_run(engine, "nightly", name, scheduled_for=datetime(2026, 1, 1, tzinfo=UTC))
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            insert(sync_runs).values(
                job="nightly",
                source="a",
                target="b",
                entity="person",
                dry_run=False,
                forced=False,
                outcome="running",
                started_at=now,
                counts="{}",
                holder=name,
            )
        )
        conn.execute(
            insert(leases).values(
                name="job:nightly",
                holder=name,
                acquired_at=now,
                expires_at=now + timedelta(seconds=300),
            )
        )
    print("running", flush=True)
    while True:
        time.sleep(0.2)


if __name__ == "__main__":
    main(*sys.argv[1:])
