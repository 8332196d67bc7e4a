"""Production mode under scheduled polls: RabbitMQ + PostgreSQL, two workers, a poll job every second.

The job's poll runs on a scheduler thread while the worker loop consumes: it
must publish on a connection of its own (before, it broke the loop's
connection and its keys waited for the relay). Files are dropped faster than
the ticks, so every tick accepts messages; one worker is killed with SIGKILL
halfway, and the other keeps the ticks going.
"""

from __future__ import annotations

import signal
import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.faults.harness import (
    FaultProject,
    account,
    folder_in,
    folder_out,
    receipt_route,
    wait_settled,
)

pytestmark = [pytest.mark.server, pytest.mark.slow]

PHASE_SECONDS = 8
WAVE, WAVE_EVERY = 8, 0.4  # 20 files a second, against one tick a second
MIN_TICKS = 2  # accepting ticks each side of the kill: publishing while the loop consumes
LATE = 5.0  # seconds from accepted to delivered that count as waiting for something


def query(url: str, sql: str) -> list[sa.Row]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(sql)).all()
    finally:
        engine.dispose()


def produce(project: FaultProject, written: dict[str, bytes], seconds: float) -> None:
    """Drop WAVE files every WAVE_EVERY seconds, for ``seconds``."""
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        project.drop_more(written, WAVE)
        time.sleep(WAVE_EVERY)


def test_a_poll_job_accepting_every_tick_while_two_workers_consume(
    tmp_path: Path, pg_url: str, amqp_url: str, unique: str
) -> None:
    project = FaultProject(tmp_path)
    out = f"out-{unique}"
    project.write(
        store=pg_url,
        broker=amqp_url,
        endpoints={"in": folder_in(batch=100), out: folder_out()},
        routes=[receipt_route(out)],
        jobs={"poll-in": {"interval": 1, "poll": "in"}},
        # Slow fallbacks on purpose: a key that only the relay queued, or a claim that
        # only ran out, would show as a delivery many seconds late.
        bus={"claim_seconds": 60, "requeue_seconds": 60},
    )
    assert project.command("db", "upgrade").returncode == 0
    workers = [project.start_worker(), project.start_worker()]
    written: dict[str, bytes] = {}
    try:
        # Both up before the first wave: a loaded machine starts a worker in seconds.
        project.wait_for_consumers(amqp_url, out, 2, timeout=60)
        produce(project, written, PHASE_SECONDS)
        victim = workers[0]
        victim_name = f"{socket.gethostname()}:{victim.pid}"
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        killed_at = datetime.now(UTC).replace(tzinfo=None)
        produce(project, written, PHASE_SECONDS)
        wait_settled(project, pg_url, len(written), timeout=90)
    finally:
        project.kill_all(signal.SIGTERM)

    account(pg_url, written, folder=(out, project.outbox))
    rows = query(
        pg_url,
        "SELECT m.accepted_at, d.delivered_at FROM deliveries d "
        "JOIN messages m ON m.id = d.message_id",
    )
    # The bug this guards against left keys for the relay: 60 s late. A loaded machine
    # may take a few seconds; only what the killed worker held at its death may wait
    # for its death to be noticed, and that too well before claim_seconds.
    late = [
        (accepted, (delivered - accepted).total_seconds())
        for accepted, delivered in rows
        if (delivered - accepted).total_seconds() >= LATE
    ]
    window = (killed_at - timedelta(seconds=3), killed_at + timedelta(seconds=1))
    assert all(window[0] <= accepted <= window[1] for accepted, _ in late), late
    assert all(seconds < 20 for _, seconds in late), late

    logs = project.all_logs()
    for bad in ("lost the connection", "Traceback", "job poll-in failed", "publishing"):
        assert bad not in logs, f"{bad!r} in the workers' logs:\n{logs[-3000:]}"

    runs = query(pg_url, "SELECT scheduled_for, outcome, holder, detail FROM job_runs")
    ticks = [r.scheduled_for for r in runs]
    assert len(ticks) == len(set(ticks)), "a tick ran twice"
    outcomes = [r.outcome for r in runs]
    assert set(outcomes) <= {"ok", "killed"} and outcomes.count("killed") <= 1, outcomes
    survivor_ticks = [
        r
        for r in runs
        if r.holder != victim_name and r.scheduled_for > killed_at.replace(tzinfo=UTC)
    ]
    assert len(survivor_ticks) >= MIN_TICKS, "the ticks went on after the kill"
    # Ticks that accepted messages while the workers consumed, on both sides of the kill
    # (a loaded machine skips a tick whose poll is still running: a count, not a rate).
    accepting = [r for r in runs if r.outcome == "ok" and not r.detail.startswith("0 new")]
    before = [r for r in accepting if r.scheduled_for <= killed_at.replace(tzinfo=UTC)]
    assert len(before) >= MIN_TICKS and len(accepting) - len(before) >= MIN_TICKS, [
        (r.scheduled_for, r.holder, r.detail) for r in runs
    ]
    assert query(pg_url, "SELECT count(*) FROM holders")[0][0] == 0, "all gone or released"
