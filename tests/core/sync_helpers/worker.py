"""A bus-like worker process for the scheduler tests: runs the Scheduler with one poll job.

    python worker.py URL SCHEMA HOLDER INTERVAL_S POLL_SLEEP_S LEASE_TTL_S

Each poll inserts a row (holder, time) into ``ticks`` and sleeps POLL_SLEEP_S, so
the test can count ticks and kill the worker while it holds the job's lease.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sqlalchemy import Column, Float, Integer, MetaData, String, Table, insert  # noqa: E402
from sync_db import engine_for  # noqa: E402

from lienthong.scheduler import JobSpec, Scheduler  # noqa: E402

ticks = Table(
    "ticks", MetaData(),
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("holder", String(100), nullable=False),
    Column("at", Float, nullable=False),
)


def main(url: str, schema: str, holder: str, interval: str, poll_sleep: str, ttl: str) -> None:
    logging.basicConfig(level=os.environ.get("LIENTHONG_LOG", "WARNING"),
                        format=f"{holder} %(name)s %(message)s")
    engine = engine_for(url, schema or None)

    def run_poll(endpoint: str) -> int:
        with engine.begin() as conn:
            conn.execute(insert(ticks).values(holder=holder, at=time.time()))
        time.sleep(float(poll_sleep))
        return 1

    def run_sync(spec: Any, dry_run: bool) -> Any:
        raise AssertionError("no sync job in this worker")

    job = JobSpec(name="tick", interval_s=float(interval), poll="src",
                  lease_ttl_s=float(ttl), misfire_grace_time=5)
    scheduler = Scheduler(engine, [job], run_poll, run_sync, holder=holder)
    scheduler.start()

    def stop(*_: object) -> None:
        scheduler.shutdown(wait=False)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    print("started", flush=True)
    while True:
        time.sleep(0.2)


if __name__ == "__main__":
    main(*sys.argv[1:])
