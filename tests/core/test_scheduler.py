"""The scheduler: job config, one run per tick across processes, take-over, overview."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Column, Float, Integer, MetaData, String, Table, select

HELPERS = Path(__file__).parent / "sync_helpers"
sys.path.insert(0, str(HELPERS))

from sync_fixtures import *  # noqa: E402, F403  (the shared fixtures)
from sync_table_adapter import make  # noqa: E402

from lienthong.scheduler import (  # noqa: E402
    JobSpec,
    Scheduler,
    job_runs,
    jobs_from_config,
    jobs_overview,
    parse_interval,
)
from lienthong.sync import SyncSpec, run  # noqa: E402

# --- job definitions from config ----------------------------------------------


def test_jobs_from_config_builds_sync_and_poll_jobs():
    jobs, problems = jobs_from_config({
        "directory-nightly": {"cron": "0 2 * * *", "sync": {
            "source": "axis", "target": "directory", "entity": "agency",
            "fields": ["name", "mail"], "max_disable_share": 0.1}},
        "poll-axis": {"interval": "5m", "poll": "axis", "coalesce": False},
    })
    assert problems == []
    nightly = jobs["directory-nightly"]
    assert nightly.sync == SyncSpec("directory-nightly", "axis", "directory", "agency",
                                    fields=("name", "mail"), max_disable_share=0.1)
    assert nightly.timezone == "Asia/Ho_Chi_Minh" and nightly.kind == "sync"
    assert str(nightly.trigger().timezone) == "Asia/Ho_Chi_Minh"
    poll = jobs["poll-axis"]
    assert (poll.interval_s, poll.poll, poll.coalesce, poll.kind) == (300, "axis", False, "poll")


def test_every_config_problem_is_reported_with_its_location():
    jobs, problems = jobs_from_config({
        "a": {"crn": "0 2 * * *", "poll": "axis"},
        "b": {"cron": "0 25 * * *", "interval": 5, "poll": "axis"},
        "c": {"cron": "61 * * * *", "sync": {"source": "axis", "entity": "agency",
                                             "max_disable_share": 5, "mdoe": "delta"}},
        "d": {"interval": -3, "timezone": "Mars/Olympus", "poll": "x", "sync": {}},
        "e": "every day",
    })
    assert jobs == {}
    text = "\n".join(str(p) for p in problems)
    assert "jobs.a.crn: unknown key. Did you mean 'cron'?" in text
    assert "jobs.b: give exactly one of 'cron'" in text
    assert "jobs.c.cron:" in text and "five fields" in text
    assert "jobs.c.sync.target: required" in text
    assert "jobs.c.sync.max_disable_share: expected a share between 0 and 1" in text
    assert "jobs.c.sync.mdoe: unknown key. Did you mean 'mode'?" in text
    assert "jobs.d.timezone: unknown time zone 'Mars/Olympus'" in text
    assert "jobs.d.interval: an interval must be positive" in text
    assert "jobs.d: give exactly one of 'poll: ENDPOINT' or 'sync:" in text
    assert "jobs.e: a job is a mapping" in text


def test_parse_interval():
    assert parse_interval(60) == 60 and parse_interval("90s") == 90
    assert parse_interval("5m") == 300 and parse_interval("2h") == 7200
    assert parse_interval("1d") == 86400
    for bad in ("soon", True, 0, "5 minutes"):
        with pytest.raises(ValueError):
            parse_interval(bad)


# --- one run per tick ------------------------------------------------------------


def noop_sync(spec, dry_run):
    raise AssertionError("no sync here")


def test_a_tick_runs_once_even_when_two_processes_fire_it(any_engine):
    calls: list[str] = []
    job = JobSpec(name="tick", interval_s=60, poll="axis")
    a = Scheduler(any_engine, [job], lambda ep: calls.append("a") or 1, noop_sync, holder="a:1")
    b = Scheduler(any_engine, [job], lambda ep: calls.append("b") or 1, noop_sync, holder="b:2")
    tick = datetime(2026, 11, 29, 2, 0, tzinfo=UTC)
    assert a.fire("tick", scheduled_for=tick) == "ok"
    assert b.fire("tick", scheduled_for=tick) == "skipped"
    assert calls == ["a"]
    with any_engine.connect() as conn:
        rows = conn.execute(select(job_runs)).all()
    assert [(r.holder, r.outcome, r.detail) for r in rows] == [("a:1", "ok",
                                                                 "1 message(s) from axis")]


def test_a_tick_is_skipped_while_another_run_holds_the_lease(sqlite_engine):
    started, finish = threading.Event(), threading.Event()

    def slow_poll(endpoint: str) -> int:
        started.set()
        finish.wait(5)
        return 0

    job = JobSpec(name="tick", interval_s=60, poll="axis")
    a = Scheduler(sqlite_engine, [job], slow_poll, noop_sync, holder="a:1")
    b = Scheduler(sqlite_engine, [job], lambda ep: 1, noop_sync, holder="b:2")
    worker = threading.Thread(target=a.fire, args=("tick",),
                              kwargs={"scheduled_for": datetime(2026, 1, 1, tzinfo=UTC)})
    worker.start()
    assert started.wait(5)
    assert b.fire("tick", scheduled_for=datetime(2026, 1, 1, 0, 1, tzinfo=UTC)) == "skipped"
    finish.set()
    worker.join()


def test_sync_job_outcomes_are_recorded(sqlite_engine):
    src, dst = make(sqlite_engine, "src", "src"), make(sqlite_engine, "dst", "dst")
    dst.put_many({f"k{i}": {"n": i} for i in range(10)})
    job = JobSpec(name="dir", cron="0 2 * * *", sync=SyncSpec("dir", "src", "dst", "person"))
    scheduler = Scheduler(sqlite_engine, [job], lambda ep: 0,
                          lambda spec, dry: run(spec, src, dst, sqlite_engine, dry_run=dry))
    assert scheduler.fire("dir", scheduled_for=datetime(2026, 1, 1, tzinfo=UTC)) == "refused"
    src.put_many({f"k{i}": {"n": i} for i in range(10)})
    assert scheduler.fire("dir", scheduled_for=datetime(2026, 1, 2, tzinfo=UTC)) == "ok"
    overview = {o.name: o for o in jobs_overview(sqlite_engine, [job])}["dir"]
    assert overview.last_outcome == "ok" and overview.next_run.hour == 2
    assert overview.next_run.utcoffset().total_seconds() == 7 * 3600


def test_scheduler_runs_an_interval_job_and_a_restart_keeps_the_schedule(sqlite_engine):
    calls: list[float] = []
    job = JobSpec(name="tick", interval_s=1, poll="axis")
    nightly = JobSpec(name="nightly", cron="0 2 * * *", poll="axis")
    first = Scheduler(sqlite_engine, [job, nightly], lambda ep: calls.append(time.time()) or 1,
                      noop_sync, holder="one:1")
    first.start()
    try:
        deadline = time.monotonic() + 5
        while len(calls) < 2:
            assert time.monotonic() < deadline, "the interval job did not run"
            time.sleep(0.05)
    finally:
        first.shutdown()
    stored = {o.name: o.next_run for o in jobs_overview(sqlite_engine, [job, nightly])}

    # Same config: the stored schedule is kept. A changed trigger replaces it; a job
    # no longer configured leaves the store.
    second = Scheduler(sqlite_engine, [nightly], lambda ep: 1, noop_sync, holder="two:2")
    second.start()
    try:
        assert second._aps.get_job("nightly").next_run_time == stored["nightly"]
        assert second._aps.get_job("tick") is None
    finally:
        second.shutdown()
    changed = JobSpec(name="nightly", cron="30 3 * * *", poll="axis")
    third = Scheduler(sqlite_engine, [changed], lambda ep: 1, noop_sync, holder="three:3")
    third.start()
    try:
        assert third._aps.get_job("nightly").next_run_time.hour == 3
    finally:
        third.shutdown()


def test_ticks_missed_while_stopped_run_each_or_not_at_all_by_coalesce_and_grace(
    sqlite_engine, caplog
):
    calls: list[str] = []
    catch_up = JobSpec(name="catch-up", interval_s=1, poll="a", coalesce=False,
                       misfire_grace_time=60)
    late = JobSpec(name="late", interval_s=4, poll="b", misfire_grace_time=1)
    jobs = [catch_up, late]
    first = Scheduler(sqlite_engine, jobs, lambda ep: calls.append(ep) or 1, noop_sync,
                      holder="one:1")
    first.start()
    first.shutdown()
    assert calls == []
    time.sleep(6.5)  # 'catch-up' misses six ticks; 'late' one, by more than its grace
    second = Scheduler(sqlite_engine, jobs, lambda ep: calls.append(ep) or 1, noop_sync,
                       holder="two:2")
    with caplog.at_level("WARNING", logger="lienthong.scheduler"):
        second.start()
        try:
            deadline = time.monotonic() + 5
            while calls.count("a") < 6:
                assert time.monotonic() < deadline, f"missed ticks were not caught up: {calls}"
                time.sleep(0.05)
        finally:
            second.shutdown()
    with sqlite_engine.connect() as conn:
        runs = conn.execute(select(job_runs).where(job_runs.c.job == "catch-up")).all()
    ticks = sorted(r.scheduled_for for r in runs)
    assert len(ticks) == len(set(ticks)) >= 6  # each missed tick ran once, under its own time
    assert "b" not in calls
    assert any("job late: tick" in m and "skipped" in m for m in caplog.messages)


# --- several worker processes on PostgreSQL ----------------------------------------

ticks = Table("ticks", MetaData(), Column("id", Integer, primary_key=True, autoincrement=True),
              Column("holder", String(100), nullable=False), Column("at", Float, nullable=False))


def start_worker(url: str, schema: str, holder: str, poll_sleep: float) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, str(HELPERS / "worker.py"), url, schema, holder, "1", str(poll_sleep),
         "30"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "started"
    return proc


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(5)


def tick_rows(engine) -> list:
    with engine.connect() as conn:
        return conn.execute(select(ticks).order_by(ticks.c.at)).all()


@pytest.mark.server
@pytest.mark.slow
def test_two_workers_run_each_tick_once_and_a_killed_leader_is_taken_over(pg_schema):
    engine, schema, url = pg_schema
    ticks.create(engine)
    workers = {name: start_worker(url, schema, name, 0.5) for name in ("w1", "w2")}
    try:
        deadline = time.monotonic() + 15
        while len(tick_rows(engine)) < 4:
            assert time.monotonic() < deadline, "no ticks ran"
            time.sleep(0.1)
        # Kill whoever runs the current tick, while it holds the job's lease.
        deadline = time.monotonic() + 5
        while True:
            with engine.connect() as conn:
                running = conn.execute(select(job_runs).where(job_runs.c.outcome == "running")
                                       ).first()
            if running is not None:
                break
            assert time.monotonic() < deadline, "never caught a tick while it ran"
            time.sleep(0.02)
        leader = running.holder
        survivor = "w2" if leader == "w1" else "w1"
        workers[leader].send_signal(signal.SIGKILL)
        workers[leader].wait(5)
        killed_at = time.time()

        deadline = time.monotonic() + 10  # well within the 30 s lease ttl
        while not [r for r in tick_rows(engine) if r.at > killed_at]:
            assert time.monotonic() < deadline, "the survivor did not take over"
            time.sleep(0.1)
        time.sleep(1.2)
    finally:
        for proc in workers.values():
            stop(proc)

    rows = tick_rows(engine)
    after = [r for r in rows if r.at > killed_at]
    assert after and {r.holder for r in after} == {survivor}
    gaps = [b.at - a.at for a, b in zip(rows, rows[1:], strict=False)]
    assert min(gaps) > 0.6, f"a tick ran twice: {gaps}"  # 1 s ticks, never two at once
    with engine.connect() as conn:
        runs = conn.execute(select(job_runs)).all()
    assert len({r.scheduled_for for r in runs}) == len(runs) == len(rows)
    assert sum(r.outcome == "running" for r in runs) <= 2  # the killed tick (and one in flight)


def test_manual_sync_waits_for_or_refuses_while_the_scheduled_run_holds_the_lease(any_engine):
    from click.testing import CliRunner
    from sync_context import Context, cli

    src = make(any_engine, "src", "src")
    dst = make(any_engine, "dst", "dst", apply_delay=0.1)
    src.put_many({f"k{i}": {"n": i} for i in range(8)})
    job = JobSpec(name="dir", cron="0 2 * * *",
                  sync=SyncSpec("dir", "src", "dst", "person", max_disable_share=1.0))
    scheduler = Scheduler(any_engine, [job], lambda ep: 0,
                          lambda spec, dry: run(spec, src, dst, any_engine, dry_run=dry),
                          holder="bus-1:100")
    scheduled = threading.Thread(target=scheduler.fire, args=("dir",),
                                 kwargs={"scheduled_for": datetime(2026, 1, 1, tzinfo=UTC)})
    scheduled.start()
    try:
        deadline = time.monotonic() + 5
        while not dst.state():
            assert time.monotonic() < deadline, "the scheduled run did not start"
            time.sleep(0.02)
        context = Context(any_engine, {"dir": job}, {"src": src, "dst": dst})
        refused = CliRunner().invoke(cli(), ["sync", "run", "dir"], obj=context)
        assert refused.exit_code == 3, refused.output
        assert "lease 'job:dir' is held by bus-1:100" in refused.output
        waited = CliRunner().invoke(cli(), ["sync", "run", "dir", "--wait", "10"], obj=context)
        assert waited.exit_code == 0, waited.output
        assert "job 'dir' is running (bus-1:100); waiting up to 10 s" in waited.output
        assert "unchanged 8" in waited.output  # it ran after the scheduled run, not beside it
    finally:
        scheduled.join()
    assert all(n == 1 for n in dst.effect_counts().values())
