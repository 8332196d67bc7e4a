"""The ``lienthong jobs`` and ``lienthong sync`` commands, for admins and cron.

``lienthong jobs [--json]``
    every configured job: what it does, its schedule, last run, outcome, next run.
``lienthong sync run JOB [--dry-run] [--since CURSOR] [--force] [--wait S] [--json]``
    run a sync job now, under the same lease as its scheduled runs.
``lienthong sync approve RUN_ID [--force] [--json]``
    apply exactly the plan a dry run stored; refused (exit 2) if the target changed since.
``lienthong sync report RUN_ID [--all] [--json]``
    a stored run: counts, outcome, and each change with its field differences.
``lienthong sync runs [JOB] [--limit N]``
    the latest runs, to find a RUN_ID.

Exit codes of ``sync run`` (for cron and scripts), from the one table of
:mod:`lienthong.exits`: 0 ok, 1 some items failed, 2 refused by the disable
guard, 3 lease held by another run, 4 configuration error, 5 interrupted by a
transient error (re-run later; nothing is lost).

The commands read what they need from the click context object, which must
satisfy :class:`SyncContext`; ``lienthong.cli`` provides it. ``jobs``, ``sync
runs`` and ``sync report`` only read: they use its ``read_engine`` and build
or start no adapter.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from typing import Any, NoReturn, Protocol

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from sqlalchemy.engine import Engine

from .adapter import Adapter, Change
from .errors import ConfigError, LienthongError
from .exits import Exit, fail
from .holders import Holder
from .hookspecs import hookimpl
from .lease import Lease, LeaseHeld, default_holder
from .scheduler import JobSpec, claim_run, finish_run, job_lease_name, jobs_overview
from .suggest import did_you_mean
from .sync import (
    GuardRefused,
    PlanChanged,
    Report,
    approve,
    differences,
    load_report,
    recent_runs,
    run,
)

_OUTCOME_EXIT = {
    "ok": Exit.OK,
    "failed": Exit.PROBLEMS,
    "refused": Exit.REFUSED,
    "interrupted": Exit.INTERRUPTED,
    "error": Exit.PROBLEMS,
}


class SyncContext(Protocol):
    """What the commands need from the bus; any member may raise ``ConfigError``."""

    @property
    def engine(self) -> Engine: ...

    @property
    def jobs(self) -> Mapping[str, JobSpec]: ...

    def adapter(self, endpoint: str) -> Adapter:
        """The started adapter serving ``endpoint``; the context stops it when it closes."""
        ...


class ReadContext(Protocol):
    """What the commands that only read need; any member may raise ``ConfigError``."""

    @property
    def read_engine(self) -> Engine:
        """The store's engine, its schema checked, with no adapter built or started."""
        ...

    @property
    def jobs(self) -> Mapping[str, JobSpec]: ...


def _jobs(obj: SyncContext | ReadContext) -> Mapping[str, JobSpec]:
    try:
        return obj.jobs
    except ConfigError as exc:
        fail(str(exc), Exit.CONFIG)


def _engine(obj: SyncContext) -> Engine:
    try:
        return obj.engine
    except ConfigError as exc:
        fail(str(exc), Exit.CONFIG)


def _read_engine(obj: ReadContext) -> Engine:
    try:
        return obj.read_engine
    except ConfigError as exc:
        fail(str(exc), Exit.CONFIG)


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S %Z") if value else "-"


# --- lienthong jobs -------------------------------------------------------


@click.command("jobs")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_obj
def jobs_command(obj: ReadContext, as_json: bool) -> None:
    """List the scheduled jobs: schedule, last run, outcome, next run."""
    overview = jobs_overview(_read_engine(obj), _jobs(obj))
    if as_json:
        click.echo(json.dumps([o.to_dict() for o in overview], ensure_ascii=False, indent=2))
        return
    if not overview:
        click.echo(
            "No jobs configured. Hint: add a 'jobs:' section to the config (see docs/syncs.md)"
        )
        return
    table = Table("job", "does", "schedule", "last run", "outcome", "by", "next run")
    for o in overview:
        outcome = o.last_outcome or "never run"
        if o.last_outcome == "killed" and o.last_detail:
            outcome = o.last_detail  # who died, who noticed, when
        table.add_row(
            o.name,
            o.what,
            o.schedule,
            _when(o.last_started),
            outcome,
            o.last_holder or "-",
            _when(o.next_run),
        )
    Console(width=200 if not sys.stdout.isatty() else None).print(table)


# --- lienthong sync -------------------------------------------------------


class _SyncGroup(click.Group):
    """``lienthong sync JOB`` is short for ``lienthong sync run JOB``, as the issue names it."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["run", *args]
        return super().resolve_command(ctx, args)


@click.group("sync", cls=_SyncGroup)
def sync_group() -> None:
    """Run sync jobs by hand (lienthong sync JOB [--dry-run]) and read their reports."""


class _Progress:
    """A rich bar on a terminal; a plain line every 10 % when cron or a pipe reads stderr."""

    def __init__(self, label: str) -> None:
        self.console = Console(stderr=True)
        self.label = label
        self.bar: Progress | None = None
        self.task: Any = None
        self.last_tenth = -1

    def __enter__(self) -> Callable[[int, int, Change], None]:
        if self.console.is_terminal:
            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=self.console,
            )
            self.bar.start()
        return self.update

    def update(self, done: int, total: int, change: Change) -> None:
        if self.bar is not None:
            if self.task is None:
                self.task = self.bar.add_task(self.label, total=total)
            self.bar.update(self.task, completed=done)
            return
        tenth = done * 10 // total if total else 10
        if tenth != self.last_tenth:
            self.last_tenth = tenth
            click.echo(f"{self.label}: {done}/{total} changes applied ({tenth * 10}%)", err=True)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


def _find_job(jobs: Mapping[str, JobSpec], name: str) -> JobSpec:
    spec = jobs.get(name)
    if spec is None:
        hint = did_you_mean(name, jobs)
        known = ", ".join(sorted(j for j in jobs if jobs[j].sync)) or "none"
        fail(f"no job '{name}' in the config.{hint} Sync jobs: {known}", Exit.CONFIG)
    if spec.sync is None:
        fail(
            f"job '{name}' is a poll of '{spec.poll}', not a sync. Hint: 'lienthong jobs' "
            "lists what each job does",
            Exit.CONFIG,
        )
    return spec


def run_job(
    obj: SyncContext,
    spec: JobSpec,
    *,
    dry_run: bool = False,
    force: bool = False,
    since: str | None = None,
    wait_s: float = 0.0,
    progress: Callable[[int, int, Change], None] | None = None,
    on_wait: Callable[[str], None] | None = None,
    trigger: str = "manual",
    approve_run: int | None = None,
    approved_by: str | None = None,
) -> Report:
    """Run sync job ``spec`` now, under the lease its scheduled runs take (the CLI, the console).

    With ``approve_run`` it applies that dry run's stored plan instead of
    planning anew (:func:`lienthong.sync.approve`). Raises ``LeaseHeld`` when
    another run holds the job past ``wait_s`` (``on_wait`` hears who, before
    waiting), and ``GuardRefused``, ``ConfigError`` or another
    ``LienthongError`` after recording the job run's outcome.
    """
    assert spec.sync is not None
    # One live holder per job run, with a heartbeat: if this process is killed, the
    # run is marked killed and its lease freed as soon as a worker notices
    # (lienthong.holders). Named per job, as a console may run several jobs at once.
    holder = f"{default_holder()}/{spec.name}"
    engine = obj.engine
    alive = Holder(engine, holder)
    alive.start()
    try:
        return _run_under_lease(
            obj,
            spec,
            holder,
            dry_run=dry_run,
            force=force,
            since=since,
            wait_s=wait_s,
            progress=progress,
            on_wait=on_wait,
            trigger=trigger,
            approve_run=approve_run,
            approved_by=approved_by,
        )
    finally:
        alive.stop()


def _run_under_lease(
    obj: SyncContext,
    spec: JobSpec,
    holder: str,
    *,
    dry_run: bool,
    force: bool,
    since: str | None,
    wait_s: float,
    progress: Callable[[int, int, Change], None] | None,
    on_wait: Callable[[str], None] | None,
    trigger: str,
    approve_run: int | None,
    approved_by: str | None,
) -> Report:
    """Take the job's lease (or wait for it), record the run in ``job_runs``, run the sync."""
    assert spec.sync is not None
    engine = obj.engine
    lease = Lease(engine, job_lease_name(spec.name), holder, spec.lease_ttl_s)
    if not lease.acquire():
        if wait_s <= 0:
            raise LeaseHeld(lease.name, lease.current(), 0)
        current = lease.current()
        if on_wait is not None:
            on_wait(current.holder if current else "another process")
    with lease.hold(wait_s=wait_s):
        run_id = claim_run(engine, spec.name, holder, trigger=trigger)
        assert run_id is not None
        try:
            if approve_run is not None:
                target = obj.adapter(spec.sync.target_endpoint)
                report = approve(
                    spec.sync,
                    approve_run,
                    target,
                    engine,
                    force=force,
                    approved_by=approved_by,
                    holder=holder,
                )
            else:
                source = obj.adapter(spec.sync.source_endpoint)
                target = obj.adapter(spec.sync.target_endpoint)
                report = run(
                    spec.sync,
                    source,
                    target,
                    engine,
                    dry_run=dry_run,
                    force=force,
                    since=since,
                    progress=progress,
                    holder=holder,
                )
        except LienthongError as exc:
            outcome = "refused" if isinstance(exc, GuardRefused) else "error"
            finish_run(engine, run_id, outcome, str(exc))
            raise
        finish_run(engine, run_id, report.outcome, f"sync run {report.run_id}")
    return report


@sync_group.command("run")
@click.argument("job")
@click.option("--dry-run", is_flag=True, help="Plan and store the report; change nothing.")
@click.option(
    "--since", metavar="CURSOR", help="Read source changes since CURSOR, not the stored cursor."
)
@click.option("--force", is_flag=True, help="Apply even past the disable guard.")
@click.option(
    "--wait",
    "wait_s",
    type=float,
    default=0.0,
    show_default=True,
    metavar="S",
    help="Wait up to S seconds for a running job to finish instead of exiting 3.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def sync_run_command(
    obj: SyncContext,
    job: str,
    dry_run: bool,
    since: str | None,
    force: bool,
    wait_s: float,
    as_json: bool,
) -> None:
    """Run sync JOB now (exit 0 ok, 1 items failed, 2 refused, 3 lease held, 4 config, 5 retry)."""
    spec = _find_job(_jobs(obj), job)
    _engine(obj)  # a config error exits 4 here, before any lease is taken

    def waiting(who: str) -> None:
        click.echo(f"job '{job}' is running ({who}); waiting up to {wait_s:g} s", err=True)

    def start() -> Report:
        with _Progress(f"sync {job}") as progress:
            return run_job(
                obj,
                spec,
                dry_run=dry_run,
                force=force,
                since=since,
                wait_s=wait_s,
                progress=progress,
                on_wait=waiting,
            )

    _run_and_exit(start, as_json)


@sync_group.command("approve")
@click.argument("run_id", type=int)
@click.option("--force", is_flag=True, help="Apply even past the disable guard.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def sync_approve_command(obj: SyncContext, run_id: int, force: bool, as_json: bool) -> None:
    """Apply exactly the plan dry run RUN_ID stored; refused if the target changed since."""
    planned = load_report(_engine(obj), run_id)
    if planned is None:
        fail(f"no sync run {run_id}. Hint: 'lienthong sync runs' lists them", Exit.CONFIG)
    spec = _find_job(_jobs(obj), planned.job)
    _run_and_exit(
        lambda: run_job(obj, spec, force=force, approve_run=run_id, trigger="approval"), as_json
    )


def _run_and_exit(start: Callable[[], Report], as_json: bool) -> NoReturn:
    """Run, print the report and exit with its outcome's code; an error exits with its own."""
    try:
        report = start()
    except LeaseHeld as exc:
        fail(str(exc), Exit.UNAVAILABLE)
    except GuardRefused as exc:
        fail(str(exc), Exit.REFUSED)
    except PlanChanged as exc:
        for d in exc.drift:
            click.echo(f"  {d.action:<8} {d.key} {d.field}: {_shown(d.planned)} -> {_shown(d.now)}")
        fail(str(exc), Exit.REFUSED)
    except ConfigError as exc:
        fail(str(exc), Exit.CONFIG)
    except LienthongError as exc:
        fail(str(exc), Exit.PROBLEMS)
    if as_json:
        click.echo(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    else:
        _print_report(report, limit=20)
    sys.exit(_OUTCOME_EXIT.get(report.outcome, Exit.PROBLEMS))


@sync_group.command("report")
@click.argument("run_id", type=int)
@click.option("--all", "show_all", is_flag=True, help="Show every item, not the first 50.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def sync_report_command(obj: ReadContext, run_id: int, show_all: bool, as_json: bool) -> None:
    """Show the stored report of sync run RUN_ID."""
    report = load_report(_read_engine(obj), run_id)
    if report is None:
        fail(
            f"no sync run {run_id}. Hint: 'lienthong sync runs' lists the latest runs", Exit.CONFIG
        )
    if as_json:
        click.echo(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
        return
    _print_report(report, limit=None if show_all else 50)


@sync_group.command("runs")
@click.argument("job", required=False)
@click.option("--limit", type=int, default=20, show_default=True)
@click.pass_obj
def sync_runs_command(obj: ReadContext, job: str | None, limit: int) -> None:
    """List the latest sync runs (of JOB), newest first."""
    reports = recent_runs(_read_engine(obj), job, limit)
    if not reports:
        click.echo("No sync runs yet. Hint: lienthong sync run JOB --dry-run")
        return
    for r in reports:
        kind = "dry run" if r.dry_run else "apply"
        click.echo(
            f"{r.run_id:>6}  {_when(r.started_at)}  {r.job}  {kind}  {r.outcome}  "
            f"{_counts(r.counts)}"
        )
        if r.outcome == "killed" and r.message:
            click.echo(f"        {r.message}")


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{name} {value}" for name, value in counts.items()) or "-"


def _shown(value: Any) -> str:
    return "-" if value is None else repr(value)


def _print_report(report: Report, limit: int | None) -> None:
    kind = "dry run" if report.dry_run else ("apply, forced" if report.forced else "apply")
    click.echo(
        f"sync {report.job}, run {report.run_id} ({kind}): {report.source} -> "
        f"{report.target}, entity {report.entity}"
    )
    click.echo(
        f"  started {_when(report.started_at)}, finished {_when(report.finished_at)}"
        f"{' by ' + report.holder if report.holder else ''}"
    )
    click.echo(f"  {_counts(report.counts)}")
    click.echo(f"  cursor {report.cursor_before or '-'} -> {report.cursor_after or '-'}")
    outcome = report.outcome
    if outcome == "running":
        outcome = "running (if its process dies, the run is marked killed once a worker notices)"
    elif outcome == "killed":
        outcome = "killed before it ended; the cursor was not moved (re-run the job: it converges)"
    click.echo(f"  outcome: {outcome}")
    if report.message:
        click.echo(f"  {report.message}")
    shown = report.items if limit is None else report.items[:limit]
    for item in shown:
        if item.status in ("rejected", "failed", "not-applied"):
            click.echo(f"  {item.status:<11} {item.action:<8} {item.key}: {item.reason}")
            continue
        click.echo(f"  {item.status:<11} {item.action:<8} {item.key}")
        if item.action == "update":
            change = Change(item.action, item.key, item.fields, item.before)
            for diff in differences(change):
                click.echo(f"      {diff.field}: {_shown(diff.before)} -> {_shown(diff.after)}")
    if limit is not None and len(report.items) > limit:
        click.echo(
            f"  ... {len(report.items) - limit} more. Hint: lienthong sync report "
            f"{report.run_id} --all"
        )


def register(cli: click.Group) -> None:
    """Add ``jobs`` and ``sync`` to the ``lienthong`` command."""
    cli.add_command(jobs_command)
    cli.add_command(sync_group)


@hookimpl
def lienthong_register_commands(cli: click.Group) -> None:
    register(cli)
