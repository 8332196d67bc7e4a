"""The sync engine: plans, dry runs, applies, guard, cursors, crashes, and its commands."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

HELPERS = Path(__file__).parent / "sync_helpers"
sys.path.insert(0, str(HELPERS))

from sync_context import Context, cli  # noqa: E402
from sync_fixtures import *  # noqa: E402, F403  (the shared fixtures)
from sync_table_adapter import TableAdapter, make  # noqa: E402

from lienthong.adapter import Record  # noqa: E402
from lienthong.scheduler import JobSpec  # noqa: E402
from lienthong.store import Cursors  # noqa: E402
from lienthong.sync import (  # noqa: E402
    GuardRefused,
    SyncSpec,
    delete_runs_before,
    differences,
    load_report,
    plan,
    run,
)

SPEC = SyncSpec("people", "src", "dst", "person", max_disable_share=1.0)


def records(**rows: dict) -> list[Record]:
    return [Record(key, fields) for key, fields in rows.items()]


# --- plan: pure diff logic -------------------------------------------------


def test_plan_sorts_changes_by_key_into_create_update_disable_unchanged():
    source = records(a={"name": "An", "mail": "an@x.vn"}, b={"name": "Binh", "mail": "b@x.vn"},
                     c={"name": "Chi", "mail": "c@x.vn"})
    target = records(b={"name": "Binh", "mail": "binh@x.vn"}, c={"name": "Chi", "mail": "c@x.vn"},
                     d={"name": "Dung", "mail": "d@x.vn"})
    p = plan(source, target, SPEC)
    assert [c.key for c in p.creates] == ["a"]
    assert p.creates[0].fields == {"name": "An", "mail": "an@x.vn"}
    assert [(c.key, dict(c.fields), c.before) for c in p.updates] == [
        ("b", {"mail": "b@x.vn"}, {"mail": "binh@x.vn"})]
    assert [d.field for d in differences(p.updates[0])] == ["mail"]
    assert differences(p.updates[0])[0].before == "binh@x.vn"
    assert [c.key for c in p.disables] == ["d"]
    assert p.unchanged == ["c"]
    assert p.counts() == {"create": 1, "update": 1, "disable": 1, "unchanged": 1, "rejected": 0}
    assert [c.action for c in p.changes] == ["create", "update", "disable"]


def test_plan_compares_only_the_configured_fields():
    spec = SyncSpec("p", "s", "t", "e", fields=("name",), max_disable_share=1.0)
    p = plan(records(a={"name": "An", "phone": "1"}), records(a={"name": "An", "phone": "2"}), spec)
    assert p.unchanged == ["a"] and not p.updates
    p = plan(records(b={"name": "B", "phone": "1"}), [], spec)
    assert p.creates[0].fields == {"name": "B"}


def test_duplicate_source_key_is_rejected_and_the_rest_is_planned():
    source = [Record("a", {"n": 1}), Record("dup", {"n": 2}), Record("dup", {"n": 3}),
              Record("b", {"n": 4})]
    target = records(dup={"n": 9}, gone={"n": 0})
    spec = SyncSpec("p", "axis", "t", "agency", max_disable_share=1.0)
    p = plan(source, target, spec)
    assert [r.key for r in p.rejected] == ["dup"]
    assert "appears 2 times in 'axis'" in p.rejected[0].reason
    assert [c.key for c in p.creates] == ["a", "b"]
    # The duplicated key's target record is left alone: neither updated nor disabled.
    assert [c.key for c in p.disables] == ["gone"]
    assert not p.updates


def test_empty_source_key_is_rejected():
    p = plan([Record("", {"n": 1}), Record("a", {"n": 2})], [], SPEC)
    assert "empty key" in p.rejected[0].reason
    assert [c.key for c in p.creates] == ["a"]


def test_guard_refuses_a_mass_disable_naming_the_numbers_and_force():
    spec = SyncSpec("dir", "axis", "directory", "agency", max_disable_share=0.05)
    target = [Record(f"k{i}", {"n": i}) for i in range(40)]
    source = target[:37]
    with pytest.raises(GuardRefused) as info:
        plan(source, target, spec)
    message = str(info.value)
    assert "disable 3 of 40" in message and "7.5%" in message and "5.0%" in message
    assert "--force" in message and "'axis'" in message
    assert len(plan(source, target, spec, force=True).disables) == 3
    # 2 of 40 is exactly 5%: allowed.
    assert len(plan(target[:38], target, spec).disables) == 2


def test_guard_catches_an_empty_source():
    spec = SyncSpec("dir", "axis", "directory", "agency")
    with pytest.raises(GuardRefused, match="disable 3 of 3"):
        plan([], records(a={}, b={}, c={}), spec)


def test_disabled_records_are_not_disabled_again_and_come_back_when_the_source_has_them():
    target = records(a={"n": 1, "disabled": True}, b={"n": 2, "disabled": True})
    p = plan(records(b={"n": 2}), target, SPEC)
    assert not p.disables
    assert [(c.key, dict(c.fields), c.before) for c in p.updates] == [
        ("b", {"disabled": False}, {"disabled": True})]
    assert p.active_targets == 0


def test_delta_disables_only_what_it_marks_gone():
    target = records(a={"n": 1}, b={"n": 2}, c={"n": 3})
    p = plan(records(b={"disabled": True}), target, SPEC, complete=False)
    assert [c.key for c in p.disables] == ["b"] and not p.creates and not p.updates


def test_disable_missing_off_keeps_extra_target_records():
    spec = SyncSpec("p", "s", "t", "e", disable_missing=False)
    assert not plan([], records(a={"n": 1}), spec).disables


def test_spec_rejects_bad_values():
    with pytest.raises(ValueError, match="mode must be one of"):
        SyncSpec("p", "s", "t", "e", mode="sometimes")
    with pytest.raises(ValueError, match="between 0 and 1"):
        SyncSpec("p", "s", "t", "e", max_disable_share=5)


# --- run: against real table adapters ----------------------------------------


def people(n: int, start: int = 0) -> dict[str, dict]:
    return {f"p{i:03}": {"name": f"Person {i}", "unit": "UBND"} for i in range(start, start + n)}


@pytest.fixture
def pair(sqlite_engine):
    return sqlite_engine, make(sqlite_engine, "src", "src"), make(sqlite_engine, "dst", "dst")


def test_dry_run_changes_nothing_and_its_plan_is_what_the_apply_does(pair):
    engine, src, dst = pair
    src.put_many(people(5))
    dst.put_many({"p001": {"name": "Old name", "unit": "UBND"}, "p004": people(5)["p004"],
                  "x999": {"name": "Gone", "unit": "UBND"}})
    before = dst.state()
    spec = SyncSpec("people", "src", "dst", "person", max_disable_share=1.0, mode="delta")

    dry = run(spec, src, dst, engine, dry_run=True)
    assert dst.state() == before and dst.effect_counts() == {}
    assert Cursors(engine).get(spec.cursor_name) is None
    assert dry.outcome == "ok" and dry.dry_run
    assert dry.counts == {"create": 3, "update": 1, "disable": 1, "unchanged": 1, "rejected": 0}
    planned = [(i.key, i.action, dict(i.fields)) for i in dry.items]
    assert {i.status for i in dry.items} == {"planned"}

    applied = run(spec, src, dst, engine)
    assert [(i.key, i.action, dict(i.fields)) for i in applied.items] == planned
    assert {i.status for i in applied.items} == {"applied"}
    assert applied.outcome == "ok"
    state = dst.state()
    assert {k: v for k, (v, off) in state.items() if not off} == people(5)
    assert state["x999"][1] is True
    assert Cursors(engine).get(spec.cursor_name) == applied.cursor_after is not None

    stored = load_report(engine, applied.run_id)
    assert stored.items == applied.items and stored.counts == applied.counts
    assert load_report(engine, 99999) is None


def test_rejected_item_is_recorded_and_the_rest_applied(sqlite_engine):
    src = make(sqlite_engine, "src", "src")
    dst = make(sqlite_engine, "dst", "dst", reject_keys="p002")
    src.put_many(people(4))
    report = run(SPEC, src, dst, sqlite_engine)
    assert report.outcome == "failed"
    failed = [i for i in report.items if i.status == "failed"]
    assert [(i.key, i.reason) for i in failed] == [("p002", "dst: key 'p002' is not allowed here")]
    assert set(dst.state()) == {"p000", "p001", "p003"}
    assert report.counts["applied"] == 3 and report.counts["failed"] == 1


def test_transient_error_stops_the_run_and_keeps_the_cursor(sqlite_engine):
    spec = SyncSpec("people", "src", "dst", "person", mode="delta", max_disable_share=1.0)
    src = make(sqlite_engine, "src", "src")
    src.put_many(people(3))
    run(spec, src, make(sqlite_engine, "dst", "dst"), sqlite_engine)
    first_cursor = Cursors(sqlite_engine).get(spec.cursor_name)

    src.put_many(people(6, start=3))
    broken = make(sqlite_engine, "dst", "dst", fail_after=2)
    report = run(spec, src, broken, sqlite_engine)
    assert report.outcome == "interrupted"
    assert "cursor was not moved" in report.message
    assert report.counts["applied"] == 2 and report.counts["not_applied"] == 4
    assert Cursors(sqlite_engine).get(spec.cursor_name) == first_cursor

    healthy = make(sqlite_engine, "dst", "dst")
    again = run(spec, src, healthy, sqlite_engine)
    assert again.outcome == "ok" and again.counts["create"] == 4
    assert set(healthy.state()) == set(people(9))
    assert all(n == 1 for n in healthy.effect_counts().values())
    assert Cursors(sqlite_engine).get(spec.cursor_name) != first_cursor


def test_guard_refusal_is_stored_and_nothing_changes(sqlite_engine):
    spec = SyncSpec("dir", "src", "dst", "person")
    src, dst = make(sqlite_engine, "src", "src"), make(sqlite_engine, "dst", "dst")
    dst.put_many(people(10))
    src.put_many(people(5))
    with pytest.raises(GuardRefused):
        run(spec, src, dst, sqlite_engine)
    assert dst.effect_counts() == {}
    dry = run(spec, src, dst, sqlite_engine, dry_run=True)
    assert dry.outcome == "refused" and "would be refused" in dry.message
    assert dry.counts["disable"] == 5
    forced = run(spec, src, dst, sqlite_engine, force=True)
    assert forced.outcome == "ok" and forced.forced
    assert sum(off for _, off in dst.state().values()) == 5


def test_delta_reads_from_the_cursor_and_since_overrides_it(sqlite_engine):
    spec = SyncSpec("people", "src", "dst", "person", mode="delta", max_disable_share=1.0)
    src, dst = make(sqlite_engine, "src", "src"), make(sqlite_engine, "dst", "dst")
    src.put_many(people(4))
    assert run(spec, src, dst, sqlite_engine).counts["create"] == 4
    src.put("p001", {"name": "Renamed", "unit": "UBND"})
    src.remove("p002")
    delta = run(spec, src, dst, sqlite_engine)
    assert delta.counts == {"create": 0, "update": 1, "disable": 1, "unchanged": 0,
                            "rejected": 0, "applied": 2, "failed": 0}
    assert run(spec, src, dst, sqlite_engine).counts["update"] == 0
    replay = run(spec, src, dst, sqlite_engine, since="0", dry_run=True)
    assert replay.counts["unchanged"] == 4  # everything re-read, nothing to do


def test_progress_is_called_for_every_change(pair):
    engine, src, dst = pair
    src.put_many(people(3))
    seen: list[tuple[int, int]] = []
    run(SPEC, src, dst, engine, progress=lambda done, total, change: seen.append((done, total)))
    assert seen == [(1, 3), (2, 3), (3, 3)]


@pytest.mark.server
@pytest.mark.slow
def test_sync_killed_midway_converges_with_no_duplicates_and_a_safe_cursor(pg_schema):
    engine, schema, url = pg_schema
    spec = SyncSpec("people", "src", "dst", "person", mode="delta", max_disable_share=1.0)
    src, dst = make(engine, "src", "src"), make(engine, "dst", "dst")
    src.put_many(people(2))
    run(spec, src, dst, engine)
    cursor = Cursors(engine).get(spec.cursor_name)
    src.put_many(people(40, start=2))

    proc = subprocess.Popen([sys.executable, str(HELPERS / "sync_once.py"), url, schema,
                             "delta", "0.05"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "running"
        deadline = time.monotonic() + 20
        while len(dst.state()) < 12:
            assert time.monotonic() < deadline, "the sync process applied nothing"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    partial = len(dst.state())
    assert 12 <= partial < 42
    assert Cursors(engine).get(spec.cursor_name) == cursor  # not past unapplied changes

    again = run(spec, src, dst, engine)
    assert again.outcome == "ok"
    assert again.counts["create"] == 42 - partial
    assert {k: v for k, (v, _) in dst.state().items()} == people(42)
    assert all(n == 1 for n in dst.effect_counts().values()), dst.effect_counts()
    assert Cursors(engine).get(spec.cursor_name) == again.cursor_after != cursor
    killed = [r for r in load_report_ids(engine) if r != again.run_id]
    assert load_report(engine, max(killed)).finished_at is None


def load_report_ids(engine) -> list[int]:
    from lienthong.sync import recent_runs
    return [r.run_id for r in recent_runs(engine, "people")]


# --- the commands -----------------------------------------------------------


def job(name="people", **sync) -> JobSpec:
    spec = SyncSpec(name, "src", "dst", "person", **sync)
    return JobSpec(name=name, cron="0 2 * * *", sync=spec)


@pytest.fixture
def context(sqlite_engine):
    src, dst = make(sqlite_engine, "src", "src"), make(sqlite_engine, "dst", "dst")
    jobs = {"people": job(max_disable_share=1.0), "strict": job("strict"),
            "poll-axis": JobSpec(name="poll-axis", interval_s=60, poll="axis")}
    return Context(sqlite_engine, jobs, {"src": src, "dst": dst})


def invoke(context, *args: str):
    return CliRunner().invoke(cli(), list(args), obj=context)


def test_sync_run_command_exit_codes_and_report(context):
    src: TableAdapter = context.adapters["src"]
    dst: TableAdapter = context.adapters["dst"]
    src.put_many(people(3))
    dry = invoke(context, "sync", "people", "--dry-run")  # short for 'sync run people'
    assert dry.exit_code == 0, dry.output
    assert "create 3" in dry.output and "dry run" in dry.output
    assert dst.state() == {}

    done = invoke(context, "sync", "run", "people", "--json")
    assert done.exit_code == 0, done.output
    data = json.loads(done.stdout)
    assert data["outcome"] == "ok" and data["counts"]["applied"] == 3

    src.put("p001", {"name": "Renamed", "unit": "UBND"})
    dst.settings["reject_keys"] = "p001"
    failed = invoke(context, "sync", "run", "people")
    assert failed.exit_code == 1, failed.output
    run_id = json.loads(invoke(context, "sync", "run", "people", "--dry-run", "--json")
                        .stdout)["run_id"]
    report = invoke(context, "sync", "report", str(run_id))
    assert report.exit_code == 0
    assert "'Person 1' -> 'Renamed'" in report.output

    runs = invoke(context, "sync", "runs", "people")
    assert str(run_id) in runs.output


def test_sync_run_command_refused_by_guard_exits_2(context):
    context.adapters["dst"].put_many(people(10))
    result = invoke(context, "sync", "run", "strict")
    assert result.exit_code == 2
    assert "disable 10 of 10" in result.output and "--force" in result.output
    assert invoke(context, "sync", "run", "strict", "--force").exit_code == 0


def test_sync_run_command_config_errors_exit_4(context):
    unknown = invoke(context, "sync", "run", "peple")
    assert unknown.exit_code == 4 and "Did you mean 'people'" in unknown.output
    poll = invoke(context, "sync", "run", "poll-axis")
    assert poll.exit_code == 4 and "is a poll of 'axis'" in poll.output
    del context.adapters["dst"]
    missing = invoke(context, "sync", "run", "people")
    assert missing.exit_code == 4 and "endpoints.dst" in missing.output
    assert invoke(context, "sync", "report", "4242").exit_code == 4


def test_sync_run_command_lease_held_exits_3_or_waits(context):
    from lienthong.lease import Lease

    context.adapters["src"].put_many(people(2))
    scheduled = Lease(context.engine, "job:people", "bus-host:777")
    assert scheduled.acquire()
    refused = invoke(context, "sync", "run", "people")
    assert refused.exit_code == 3
    assert "bus-host:777" in refused.output and "--wait" in refused.output
    timer = __import__("threading").Timer(0.5, scheduled.release)
    timer.start()
    waited = invoke(context, "sync", "run", "people", "--wait", "10")
    timer.join()
    assert waited.exit_code == 0, waited.output
    assert "waiting up to 10 s" in waited.output


def test_jobs_command_lists_schedule_and_last_run(context):
    context.adapters["src"].put_many(people(1))
    invoke(context, "sync", "run", "people")
    listed = json.loads(invoke(context, "jobs", "--json").stdout)
    by_name = {j["name"]: j for j in listed}
    assert by_name["people"]["last_outcome"] == "ok"
    assert by_name["people"]["schedule"] == "cron '0 2 * * *' (Asia/Ho_Chi_Minh)"
    assert by_name["people"]["next_run"].endswith("+07:00")
    assert by_name["poll-axis"]["last_outcome"] is None
    table = invoke(context, "jobs")
    assert table.exit_code == 0 and "never run" in table.output


# --- the migration ------------------------------------------------------------


def test_migration_0002_creates_the_tables_as_the_code_declares_them(tmp_path):
    from alembic.command import downgrade
    from sqlalchemy import create_engine, inspect

    from lienthong.migrations import alembic_config, upgrade
    from lienthong.scheduler import Scheduler, jobs_overview
    from lienthong.store import metadata

    engine = create_engine(f"sqlite:///{tmp_path / 'migrated.db'}")
    upgrade(engine)
    found = inspect(engine)
    for name in ("sync_runs", "sync_items", "job_runs", "leases"):
        declared = {c.name: c.nullable for c in metadata.tables[name].columns}
        assert {c["name"]: c["nullable"] for c in found.get_columns(name)} == declared, name
    assert {i["name"] for i in found.get_indexes("sync_items")} == {"ix_sync_items_run"}
    assert "ix_apscheduler_jobs_next_run_time" in {
        i["name"] for i in found.get_indexes("apscheduler_jobs")}
    # The job store APScheduler finds is the one the migration made.
    job = JobSpec(name="nightly", cron="0 2 * * *", poll="axis")
    scheduler = Scheduler(engine, [job], lambda ep: 0, lambda spec, dry: None)
    scheduler.start()
    scheduler.shutdown()
    assert jobs_overview(engine, [job])[0].next_run.hour == 2

    downgrade(alembic_config(engine), "0001")
    assert not {"sync_runs", "job_runs", "leases"} & set(inspect(engine).get_table_names())
    engine.dispose()


def test_old_finished_runs_are_cleaned_up_and_recent_ones_kept(pair):
    from datetime import UTC, datetime, timedelta

    from lienthong.scheduler import claim_run, delete_job_runs_before, finish_run

    engine, src, dst = pair
    src.put_many(people(2))
    old = run(SPEC, src, dst, engine)
    job_run = claim_run(engine, "people", "h:1", trigger="manual")
    finish_run(engine, job_run, "ok")
    unfinished = claim_run(engine, "people", "h:1", trigger="manual")
    assert unfinished is not None
    future = datetime.now(UTC) + timedelta(days=1)
    assert delete_runs_before(engine, datetime.now(UTC) - timedelta(days=1)) == 0
    assert delete_runs_before(engine, future) == 1
    assert load_report(engine, old.run_id) is None
    assert delete_job_runs_before(engine, future) == 1  # the unfinished run stays


# --- the admin scripts ------------------------------------------------------------

SCRIPTS = Path(__file__).parents[2] / "scripts"

# Stands in for the lienthong command: records its arguments, prints STUB_JSON for
# 'dlq list', exits with STUB_EXIT. The scripts' own logic is what is under test.
STUB = """#!/usr/bin/env bash
echo "$*" >> "$STUB_LOG"
if [ "$1 $2" = "dlq list" ]; then cat "$STUB_JSON"; fi
exit "${STUB_EXIT:-0}"
"""


@pytest.fixture
def stub(tmp_path):
    command = tmp_path / "lienthong"
    command.write_text(STUB)
    command.chmod(0o755)
    log = tmp_path / "calls.log"
    log.touch()
    env = {"PATH": "/usr/bin:/bin", "LIENTHONG": str(command), "STUB_LOG": str(log),
           "STUB_JSON": str(tmp_path / "dlq.json"), "PYTHON": sys.executable}
    return env, log, tmp_path / "dlq.json"


def script(name: str, env: dict, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(SCRIPTS / name)], env={**env, **extra}, capture_output=True,
                          text=True, timeout=30)


@pytest.mark.parametrize("code", [0, 1, 2, 3, 4, 5])
def test_nightly_sync_script_passes_the_exit_code_on_and_says_what_to_do(stub, code):
    env, log, _ = stub
    done = script("nightly-directory-sync", env, STUB_EXIT=str(code))
    assert done.returncode == code
    assert log.read_text().split() == ["sync", "run", "directory-nightly", "--wait", "900"]
    if code == 2:
        assert "--force" in done.stderr and "REFUSED" in done.stderr


def test_nightly_sync_script_options(stub):
    env, log, _ = stub
    assert script("nightly-directory-sync", env, SYNC_JOB="mail-accounts", SYNC_WAIT="5",
                  SYNC_DRY_RUN="1").returncode == 0
    assert log.read_text().split() == ["sync", "run", "mail-accounts", "--wait", "5", "--dry-run"]
    missing = script("nightly-directory-sync", {**env, "LIENTHONG": "/nowhere/lienthong"})
    assert missing.returncode == 4 and "LIENTHONG=" in missing.stderr


def test_dlq_summary_is_mailed_over_smtp(stub):
    from sync_smtp_sink import SmtpSink

    env, log, listing = stub
    listing.write_text(json.dumps([
        {"id": 7, "created_at": "2026-11-28T10:00:00", "message_id": "m7", "source": "axis",
         "stage": "deliver", "endpoint": "acct-stc", "reason": "SOAP fault: mã ngân sách sai"},
        {"id": 6, "created_at": "2026-11-28T09:00:00", "message_id": "m6", "source": "axis",
         "stage": "deliver", "endpoint": "acct-stc", "reason": "timeout"},
    ]))
    sink = SmtpSink()
    try:
        smtp = {"DLQ_MAIL_TO": "admin@stttt.gov.vn", "DLQ_MAIL_FROM": "bus@stttt.gov.vn",
                "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(sink.port)}
        done = script("dlq-summary-mail", env, **smtp)
        assert done.returncode == 0, done.stderr
        assert log.read_text().split() == ["dlq", "list", "--json"]
        [(sender, recipients, mail)] = sink.received
        assert "admin@stttt.gov.vn" in recipients[0]
        assert mail["Subject"].startswith("[lienthong] 2 dead letter(s)")
        body = mail.get_payload(decode=True).decode()
        assert "     2  acct-stc" in body and "mã ngân sách sai" in body and "#7" in body

        unreachable = script("dlq-summary-mail", env, **{**smtp, "SMTP_PORT": "1"})
        assert unreachable.returncode == 2 and "admin@stttt.gov.vn failed" in unreachable.stderr

        listing.write_text("[]")
        assert script("dlq-summary-mail", env, **smtp).returncode == 0
        assert len(sink.received) == 1  # nothing to report, nothing sent
    finally:
        sink.close()
    assert script("dlq-summary-mail", env, SMTP_HOST="127.0.0.1").returncode == 4


def test_store_cleanup_script(stub):
    env, log, _ = stub
    assert script("store-cleanup", env, RETENTION_DAYS="400").returncode == 0
    assert log.read_text().split() == ["db", "cleanup", "--older-than", "400"]
    too_short = script("store-cleanup", env, RETENTION_DAYS="7")
    assert too_short.returncode == 4 and "at least 30" in too_short.stderr
    failing = script("store-cleanup", env, STUB_EXIT="1")
    assert failing.returncode == 1 and "failed" in failing.stderr


def test_a_source_down_interrupts_the_run_before_any_change(sqlite_engine):
    class Offline(TableAdapter):
        transient_errors = (ConnectionRefusedError,)

        def sync_read(self, entity, since):
            raise ConnectionRefusedError(111, "Connection refused")

    src = Offline("src", {"table": "src", "apply_delay": 0.0, "reject_keys": "",
                          "fail_after": -1}, make(sqlite_engine, "x", "x").services)
    dst = make(sqlite_engine, "dst", "dst")
    report = run(SPEC, src, dst, sqlite_engine)
    assert report.outcome == "interrupted" and "Connection refused" in report.message
    assert dst.effect_counts() == {}
