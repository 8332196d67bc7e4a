"""Approving a stored plan: exactly that plan is applied, or nothing when the target moved."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

HELPERS = Path(__file__).parent / "sync_helpers"
sys.path.insert(0, str(HELPERS))

from sync_context import Context, cli  # noqa: E402
from sync_fixtures import *  # noqa: E402, F403  (the shared fixtures)
from sync_table_adapter import make  # noqa: E402

from lienthong.scheduler import JobSpec  # noqa: E402
from lienthong.sync import (  # noqa: E402
    GuardRefused,
    PlanChanged,
    SyncSpec,
    approve,
    load_report,
    recent_runs,
    run,
)

SPEC = SyncSpec("people", "src", "dst", "person", max_disable_share=1.0)


@pytest.fixture
def pair(sqlite_engine):
    src, dst = make(sqlite_engine, "src", "src"), make(sqlite_engine, "dst", "dst")
    src.put_many({"a": {"name": "An"}, "b": {"name": "Binh"}})
    dst.put_many({"b": {"name": "Bình cũ"}, "c": {"name": "Chi"}})
    return sqlite_engine, src, dst


def test_approving_applies_the_stored_plan_not_a_new_one(pair):
    engine, src, dst = pair
    dry = run(SPEC, src, dst, engine, dry_run=True)
    assert dry.counts["create"] == 1 and dry.counts["update"] == 1 and dry.counts["disable"] == 1
    # The source moves on after the dry run: the approval must not pick that up.
    src.put("d", {"name": "Dung"})
    src.put("a", {"name": "An mới"})

    done = approve(SPEC, dry.run_id, dst, engine, approved_by="nva")
    assert done.outcome == "ok" and not done.dry_run
    assert done.counts == {"create": 1, "update": 1, "disable": 1, "applied": 3, "failed": 0}
    assert done.message == f"applied the plan of dry run {dry.run_id}, approved by nva"
    state = dst.state()
    assert state["a"] == ({"name": "An"}, False)  # as planned, not "An mới"
    assert state["b"] == ({"name": "Binh"}, False)
    assert state["c"][1] is True
    assert "d" not in state
    assert [(i.key, i.action, i.status) for i in done.items] == [
        ("a", "create", "applied"), ("b", "update", "applied"), ("c", "disable", "applied")]


def test_a_target_changed_since_the_plan_is_refused_with_the_differences(pair):
    engine, src, dst = pair
    dry = run(SPEC, src, dst, engine, dry_run=True)
    dst.put("b", {"name": "Bình sửa tay"})  # someone edited the directory by hand
    dst.put("a", {"name": "An"})  # and created the account the plan would create
    before = dst.state()

    with pytest.raises(PlanChanged) as caught:
        approve(SPEC, dry.run_id, dst, engine)
    drift = {(d.key, d.field): (d.planned, d.now) for d in caught.value.drift}
    assert drift == {("a", ""): ("(absent)", "(present)"),
                     ("b", "name"): ("Bình cũ", "Bình sửa tay")}
    assert f"changed since dry run {dry.run_id}" in str(caught.value)
    assert "make a new dry run" in str(caught.value)
    assert dst.state() == before and dst.effect_counts() == {}
    refused = load_report(engine, caught.value.run_id)
    assert refused.outcome == "refused" and refused.counts == {"drift": 2}


def test_a_record_disabled_or_removed_since_is_drift(pair):
    engine, src, dst = pair
    dry = run(SPEC, src, dst, engine, dry_run=True)
    dst.remove("c")  # the disable the plan holds already happened
    with pytest.raises(PlanChanged) as caught:
        approve(SPEC, dry.run_id, dst, engine)
    assert [(d.key, d.field, d.planned, d.now) for d in caught.value.drift] == [
        ("c", "disabled", False, True)]


def test_only_a_finished_dry_run_of_that_job_can_be_approved(pair):
    engine, src, dst = pair
    applied = run(SPEC, src, dst, engine)
    with pytest.raises(Exception, match="is not a finished dry run"):
        approve(SPEC, applied.run_id, dst, engine)
    dry = run(SPEC, src, dst, engine, dry_run=True)
    other = SyncSpec("other", "src", "dst", "person")
    with pytest.raises(Exception, match="belongs to job 'people'"):
        approve(other, dry.run_id, dst, engine)
    with pytest.raises(Exception, match="no sync run 4242"):
        approve(SPEC, 4242, dst, engine)


def test_the_disable_guard_holds_unless_forced(sqlite_engine):
    src, dst = make(sqlite_engine, "src", "src"), make(sqlite_engine, "dst", "dst")
    dst.put_many({f"p{i}": {"name": str(i)} for i in range(4)})
    strict = SyncSpec("people", "src", "dst", "person", max_disable_share=0.25)
    dry = run(strict, src, dst, sqlite_engine, dry_run=True)
    assert dry.outcome == "refused"
    with pytest.raises(GuardRefused):
        approve(strict, dry.run_id, dst, sqlite_engine)
    assert dst.effect_counts() == {}
    done = approve(strict, dry.run_id, dst, sqlite_engine, force=True)
    assert done.forced and done.counts["applied"] == 4


def test_sync_approve_command_applies_or_shows_the_drift(pair):
    engine, src, dst = pair
    jobs = {"people": JobSpec(name="people", cron="0 2 * * *", sync=SPEC)}
    context = Context(engine, jobs, {"src": src, "dst": dst})
    dry = run(SPEC, src, dst, engine, dry_run=True)
    dst.put("b", {"name": "Bình sửa tay"})
    refused = CliRunner().invoke(cli(), ["sync", "approve", str(dry.run_id)], obj=context)
    assert refused.exit_code == 2, refused.output
    assert "b name: 'Bình cũ' -> 'Bình sửa tay'" in refused.output

    fresh = run(SPEC, src, dst, engine, dry_run=True)
    done = CliRunner().invoke(cli(), ["sync", "approve", str(fresh.run_id), "--json"], obj=context)
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["counts"]["applied"] == 3
    # Recorded like any run of the job, under its lease.
    assert recent_runs(engine, "people")[0].run_id == json.loads(done.stdout)["run_id"]
