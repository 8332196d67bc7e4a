"""Holders: claims and runs tied to a live process, released as soon as it is known dead."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import insert, select, text

HELPERS = Path(__file__).parent / "sync_helpers"
sys.path.insert(0, str(HELPERS))

from sync_context import Context, cli  # noqa: E402
from sync_fixtures import *  # noqa: E402, F403  (the shared fixtures)

from lienthong.holders import Holder, process_alive, process_start, reap  # noqa: E402
from lienthong.lease import leases  # noqa: E402
from lienthong.message import Message  # noqa: E402
from lienthong.scheduler import JobSpec, job_runs  # noqa: E402
from lienthong.store import Intake, Outgoing, Store, deliveries, holders  # noqa: E402
from lienthong.sync import SyncSpec, sync_runs  # noqa: E402


def where(engine) -> tuple[str, str]:
    """URL and schema for a helper process to open the same store."""
    if engine.dialect.name == "sqlite":
        return engine.url.render_as_string(hide_password=False), ""
    with engine.connect() as conn:
        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
    return engine.url.render_as_string(hide_password=False), schema


def start_victim(engine, name: str) -> subprocess.Popen:
    url, schema = where(engine)
    proc = subprocess.Popen(
        [sys.executable, str(HELPERS / "hold_runs.py"), url, schema, name],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "running"
    return proc


def test_a_killed_holder_is_released_at_once_and_its_runs_shown_killed(any_engine):
    victim = start_victim(any_engine, "victim-host:1")
    store = Store(any_engine)
    survivor = Holder(any_engine, "survivor", heartbeat_s=0.5, timeout_s=300)
    try:
        assert survivor.start() == [], "a live holder is left alone"
        assert store.claim_due("survivor", limit=10, lease=timedelta(seconds=60)) == []
        victim.send_signal(signal.SIGKILL)
        victim.wait(5)
        # Its heartbeat timeout is 300 s: only its gone process tells it is dead.
        deadline = time.monotonic() + 10
        while not (taken := store.claim_due("survivor", limit=10, lease=timedelta(seconds=60))):
            assert time.monotonic() < deadline, "the dead holder's claims were not released"
            time.sleep(0.1)
        assert sorted(d.key for d in taken) == [f"victim-host:1-{n}" for n in range(3)]
        with any_engine.connect() as conn:
            job = conn.execute(select(job_runs)).one()
            synced = conn.execute(select(sync_runs)).one()
            assert conn.execute(select(leases)).all() == []
            assert [r.name for r in conn.execute(select(holders))] == ["survivor"]
        for outcome, note, finished in (
            (job.outcome, job.detail, job.finished_at),
            (synced.outcome, synced.message, synced.finished_at),
        ):
            assert outcome == "killed" and finished is not None
            assert "holder victim-host:1 died" in note and f"process {victim.pid}" in note
            assert "noticed by survivor" in note

        spec = JobSpec(
            name="nightly", cron="0 2 * * *", sync=SyncSpec("nightly", "a", "b", "person")
        )
        context = Context(any_engine, {"nightly": spec}, {})
        jobs = CliRunner().invoke(cli(), ["jobs"], obj=context, terminal_width=300)
        assert "killed: holder victim-host:1 died" in jobs.output, jobs.output
        runs = CliRunner().invoke(cli(), ["sync", "runs"], obj=context)
        assert "killed" in runs.output and "noticed by survivor" in runs.output, runs.output
    finally:
        survivor.stop()
        if victim.poll() is None:
            victim.kill()
            victim.wait()


def silent(engine, name: str, host: str, seconds_ago: float, timeout_s: float = 10) -> None:
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            insert(holders).values(
                name=name,
                host=host,
                pid=4242,
                pid_start=None,
                started_at=now - timedelta(hours=1),
                heartbeat_at=now - timedelta(seconds=seconds_ago),
                timeout_s=timeout_s,
            )
        )


def claim_for(engine, holder: str, key: str) -> None:
    Store(engine).accept(
        [
            Intake(
                Message(body=b"<a/>", source="in"),
                outgoing=[Outgoing(key, "r", "out", b"<a/>", {})],
            )
        ],
        claim=(holder, timedelta(seconds=300)),
    )


def test_a_holder_on_another_host_is_dead_once_its_heartbeat_lapses(any_engine, caplog):
    silent(any_engine, "far:1", "another-host", seconds_ago=30)
    silent(any_engine, "near:2", "another-host", seconds_ago=3)
    claim_for(any_engine, "far:1", "k-far")
    claim_for(any_engine, "near:2", "k-near")
    with caplog.at_level(logging.WARNING, logger="lienthong.holders"):
        dead = reap(any_engine, "me:9")
    assert [(d.name, d.deliveries) for d in dead] == [("far:1", 1)]
    assert "no heartbeat since" in dead[0].why and "over 10 s" in dead[0].why
    assert "holder far:1 is dead" in caplog.text
    with any_engine.connect() as conn:
        claimed = dict(conn.execute(select(deliveries.c.id, deliveries.c.claimed_by)).all())
    assert claimed == {"k-far": None, "k-near": "near:2"}


def test_keys_a_dead_worker_marked_queued_go_back_to_the_relay_at_once(any_engine):
    """Killed between its commit and its publish: the keys are in no queue, only marked."""
    silent(any_engine, "far:1", "another-host", seconds_ago=30)
    silent(any_engine, "near:2", "another-host", seconds_ago=3)
    store = Store(any_engine)
    for worker, key in (("far:1", "k-far"), ("near:2", "k-near")):
        intake = Intake(
            Message(body=b"<a/>", source="in"), [Outgoing(key, "r", "out", b"<a/>", {})]
        )
        store.accept([intake], enqueued_by=worker)
    stale = timedelta(seconds=60)  # requeue_seconds: what they waited for before
    assert store.due_for_enqueue(limit=10, stale_after=stale, by="me:9") == []
    [dead] = reap(any_engine, "me:9")
    assert (dead.name, dead.deliveries) == ("far:1", 1)
    assert store.due_for_enqueue(limit=10, stale_after=stale, by="me:9") == [("k-far", "out")]
    with any_engine.connect() as conn:
        marks = dict(conn.execute(select(deliveries.c.id, deliveries.c.enqueued_by)).all())
    assert marks == {"k-far": "me:9", "k-near": "near:2"}


def test_a_live_holder_keeps_beating_and_comes_back_if_taken_for_dead(sqlite_engine, caplog):
    me = Holder(sqlite_engine, "me:1", heartbeat_s=0.2, timeout_s=5)
    me.start()
    try:
        first = me_row(sqlite_engine).heartbeat_at
        deadline = time.monotonic() + 5
        while me_row(sqlite_engine).heartbeat_at == first:
            assert time.monotonic() < deadline, "no heartbeat"
            time.sleep(0.05)
        with sqlite_engine.begin() as conn:  # as a reaper that misjudged us would
            conn.execute(holders.delete())
        with caplog.at_level(logging.WARNING, logger="lienthong.holders"):
            me.beat()
        assert me_row(sqlite_engine) is not None
        assert "was taken for dead" in caplog.text and "Registering again" in caplog.text
    finally:
        me.stop()
    assert me_row(sqlite_engine) is None, "a clean stop unregisters"


def me_row(engine):
    with engine.connect() as conn:
        return conn.execute(select(holders)).first()


def test_a_reused_pid_is_not_the_process_that_registered():
    mine = process_start(os.getpid())
    assert mine is not None and process_alive(os.getpid(), mine)
    assert not process_alive(os.getpid(), mine + 1)
    assert not process_alive(2**22 + 1, None)  # above Linux's highest pid


def test_holder_settings_are_checked(sqlite_engine):
    with pytest.raises(ValueError, match="must be shorter than"):
        Holder(sqlite_engine, "x", heartbeat_s=5, timeout_s=5)
