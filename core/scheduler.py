"""The scheduler: runs the configured jobs (polls and syncs) on time, once per tick.

Every bus process runs an APScheduler ``BackgroundScheduler``; the job
definitions live in the bus's database (``SQLAlchemyJobStore``), so a restart
keeps the schedule and a tick missed while the bus was down still runs within
``misfire_grace_time`` (collapsed into one run with ``coalesce``). Only
APScheduler's public API is used: it decides when a job is due, and its
``EVENT_JOB_SUBMITTED`` hands the due ticks, with their scheduled times, to this
module, which runs them on daemon threads.

Only one process runs a tick: each run first takes the job's lease (see
:mod:`lienthong.lease`), then claims the tick in ``job_runs``, whose
``(job, scheduled_for)`` is unique. The lease keeps runs of one job from
overlapping (a manual ``lienthong sync run`` takes the same lease); the claim
keeps a tick from running twice when two processes see it due one after the
other. Outcomes are recorded in ``job_runs`` for ``lienthong jobs``; a run whose
process died is marked ``killed`` by whoever notices it (lienthong.holders).

A job section in the config::

    jobs:
      directory-nightly:
        cron: "0 2 * * *"            # or interval: 60 (seconds), "5m", "1h"
        sync: {source: axis, target: directory, entity: agency}
      poll-axis:
        interval: 60
        poll: axis
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.events import EVENT_JOB_SUBMITTED, JobSubmissionEvent
from apscheduler.executors.debug import DebugExecutor
from apscheduler.jobstores.base import ConflictingIdError, JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints
from sqlalchemy import (
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from .errors import ConfigProblem, TransientError
from .lease import Lease, LeaseHeld, default_holder
from .shape import CLOSED, FLAG, Expect, Flag, check, dotted, expect
from .store import UtcDateTime, metadata
from .sync import GuardRefused, Mode, Report, SyncSpec
from .threads import DaemonPool

log = logging.getLogger(__name__)

DEFAULT_TIMEZONE = "Asia/Ho_Chi_Minh"
JOBSTORE_TABLE = "apscheduler_jobs"

job_runs = Table(
    "job_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job", String(200), nullable=False),
    Column("trigger", String(20), nullable=False),
    Column("scheduled_for", UtcDateTime(timezone=True)),
    Column("started_at", UtcDateTime(timezone=True), nullable=False),
    Column("finished_at", UtcDateTime(timezone=True)),
    Column("outcome", String(20), nullable=False),
    Column("holder", String(200), nullable=False),
    Column("detail", Text),
    UniqueConstraint("job", "scheduled_for", name="uq_job_runs_tick"),
)


def job_lease_name(job: str) -> str:
    """The lease a job's runs take, scheduled or manual."""
    return f"job:{job}"


# --- job definitions ------------------------------------------------------

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_interval(value: Any) -> float:
    """Seconds from ``60``, ``"90s"``, ``"5m"``, ``"2h"`` or ``"1d"``."""
    if isinstance(value, bool):
        raise ValueError(f"expected seconds or a duration like '5m', got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", str(value))
        if not match:
            raise ValueError(
                f"expected seconds or a duration like '90s', '5m', '2h', got {value!r}"
            )
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if seconds <= 0:
        raise ValueError(f"an interval must be positive, got {value!r}")
    return seconds


def _cron(cron: str) -> str:
    try:
        CronTrigger.from_crontab(cron, timezone=ZoneInfo(DEFAULT_TIMEZONE))
    except ValueError as exc:
        raise ValueError(
            f"{exc} (value {cron!r}). Hint: five fields, minute hour day month weekday"
        ) from exc
    return cron


def _timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r}. Hint: use an IANA name such as '{DEFAULT_TIMEZONE}'"
        ) from None
    return name


_Seconds = Annotated[float, BeforeValidator(parse_interval)]
_Name = Annotated[str, StringConstraints(min_length=1, strict=True)]
_NAME = expect("expected a name")


@dataclass
class _SyncConfig:
    """A job's ``sync:``, named as :class:`SyncSpec` names it."""

    __pydantic_config__ = CLOSED

    source_endpoint: Annotated[_Name, Field(alias="source")] = field(metadata=_NAME)
    target_endpoint: Annotated[_Name, Field(alias="target")] = field(metadata=_NAME)
    entity: _Name = field(metadata=_NAME)
    source_entity: str | None = None
    fields: tuple[str, ...] | None = field(
        default=None, metadata=expect("expected a list of names")
    )
    disable_missing: Flag = field(default=True, metadata=FLAG)
    max_disable_share: Annotated[float, Field(ge=0, le=1, strict=True)] = field(
        default=0.05, metadata=expect("expected a share between 0 and 1 (0.05 = 5%)")
    )
    mode: Mode = "full"


@dataclass
class _JobConfig:
    """A job's section, named as :class:`JobSpec` names it."""

    __pydantic_config__ = CLOSED
    shape: ClassVar[Expect] = Expect("a job is a mapping with cron or interval and poll or sync")

    cron: Annotated[str, AfterValidator(_cron)] | None = None
    interval_s: Annotated[_Seconds | None, Field(alias="interval")] = None
    poll: _Name | None = field(default=None, metadata=expect("expected an endpoint name"))
    sync: _SyncConfig | None = None
    timezone: Annotated[str, AfterValidator(_timezone)] = DEFAULT_TIMEZONE
    misfire_grace_time: Annotated[int, BeforeValidator(lambda v: int(parse_interval(v)))] = 300
    coalesce: Flag = field(default=True, metadata=FLAG)
    lease_ttl_s: Annotated[_Seconds, Field(alias="lease_ttl")] = 60.0
    dry_run: Flag = field(default=False, metadata=FLAG)


# Rules across keys, checked on the section as written (whatever else is wrong in it).
_ONE_OF = {
    ("cron", "interval"): "'cron' (e.g. \"0 2 * * *\") or 'interval' (e.g. 60 or \"5m\")",
    ("poll", "sync"): "'poll: ENDPOINT' or 'sync: {source: ..., target: ..., entity: ...}'",
}


@dataclass(frozen=True)
class JobSpec:
    """One scheduled job: when it runs (cron or interval) and what (a poll or a sync)."""

    name: str
    cron: str | None = None
    interval_s: float | None = None
    poll: str | None = None
    sync: SyncSpec | None = None
    timezone: str = DEFAULT_TIMEZONE
    misfire_grace_time: int = 300
    coalesce: bool = True
    lease_ttl_s: float = 60.0
    dry_run: bool = False

    @property
    def kind(self) -> str:
        return "sync" if self.sync is not None else "poll"

    @property
    def schedule(self) -> str:
        if self.cron is not None:
            return f"cron '{self.cron}' ({self.timezone})"
        return f"every {self.interval_s:g} s"

    @property
    def what(self) -> str:
        if self.sync is not None:
            s = self.sync
            return f"sync {s.source_endpoint} -> {s.target_endpoint} ({s.entity}, {s.mode})"
        return f"poll {self.poll}"

    def trigger(self) -> BaseTrigger:
        tz = ZoneInfo(self.timezone)
        if self.cron is not None:
            return CronTrigger.from_crontab(self.cron, timezone=tz)
        assert self.interval_s is not None
        return IntervalTrigger(seconds=self.interval_s, timezone=tz)


def jobs_from_config(
    raw: Mapping[str, Any] | None, where: Callable[..., str] = dotted
) -> tuple[dict[str, JobSpec], list[ConfigProblem]]:
    """Every job of a ``jobs:`` section, and every problem in it (``where(*keys)`` locates one)."""
    if raw is None:
        return {}, []
    if not isinstance(raw, Mapping):
        return {}, [ConfigProblem(where("jobs"), f"expected a mapping of job names, got {raw!r}")]
    jobs: dict[str, JobSpec] = {}
    problems: list[ConfigProblem] = []
    for name, section in raw.items():
        given, found = check(_JobConfig, section, where, "jobs", name)
        if isinstance(section, Mapping):
            found += [
                ConfigProblem(where("jobs", name), f"give exactly one of {choice}")
                for (one, other), choice in _ONE_OF.items()
                if (one in section) == (other in section)
            ]
        problems.extend(found)
        if given is not None and not found:
            jobs[str(name)] = _job(str(name), given)
    return jobs, problems


def _job(name: str, given: _JobConfig) -> JobSpec:
    sync = given.sync and SyncSpec(name, **vars(given.sync))
    return JobSpec(name, **{**vars(given), "sync": sync})


# --- job runs -------------------------------------------------------------


def claim_run(
    engine: Engine,
    job: str,
    holder: str,
    *,
    trigger: str = "schedule",
    scheduled_for: datetime | None = None,
) -> int | None:
    """Record the start of a run; None when this tick was already claimed by another process."""
    try:
        with engine.begin() as conn:
            key = conn.execute(
                insert(job_runs).values(
                    job=job,
                    trigger=trigger,
                    scheduled_for=scheduled_for,
                    started_at=datetime.now(UTC),
                    outcome="running",
                    holder=holder,
                )
            ).inserted_primary_key
    except IntegrityError:
        return None
    assert key is not None
    return int(key[0])


def finish_run(engine: Engine, run_id: int, outcome: str, detail: str | None = None) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(job_runs)
            .where(job_runs.c.id == run_id)
            .values(finished_at=datetime.now(UTC), outcome=outcome, detail=detail)
        )


def delete_job_runs_before(engine: Engine, cutoff: datetime) -> int:
    """Delete finished job runs started before ``cutoff`` (for ``db cleanup``)."""
    with engine.begin() as conn:
        return int(
            conn.execute(
                delete(job_runs).where(
                    job_runs.c.started_at < cutoff, job_runs.c.finished_at.is_not(None)
                )
            ).rowcount
        )


# --- the scheduler --------------------------------------------------------


def scheduled_job(job: str, scheduled_for: datetime | None = None) -> None:
    """What the job store records as each job's function: a marker that does nothing.

    APScheduler decides when a job is due (trigger, coalesce, the stored schedule)
    and runs this marker at once (``DebugExecutor``); the :class:`Scheduler` hears
    of the due tick through ``EVENT_JOB_SUBMITTED`` and runs it by name, so a
    stored job holds no callback and only ever does work inside a bus process.
    """


@dataclass(frozen=True)
class PollReport:
    """What a scheduled poll did: new messages accepted, and repeats the store already had."""

    new: int
    repeats: int


class Scheduler:
    """Runs the jobs in this process; any number of processes may run one against one database."""

    def __init__(
        self,
        engine: Engine,
        jobs: Mapping[str, JobSpec] | Iterable[JobSpec],
        run_poll: Callable[[str], int | PollReport],
        run_sync: Callable[[SyncSpec, bool], Report],
        *,
        holder: str | None = None,
        timezone: str = DEFAULT_TIMEZONE,
        jobstore_table: str = JOBSTORE_TABLE,
    ) -> None:
        specs = jobs.values() if isinstance(jobs, Mapping) else jobs
        self.engine = engine
        self.jobs = {spec.name: spec for spec in specs}
        self.run_poll = run_poll
        self.run_sync = run_sync
        self.holder = holder or default_holder()
        self.jobstore_table = jobstore_table
        # Daemon threads, so a tick that hangs (a poll of a service that never answers)
        # cannot keep the bus from stopping on SIGTERM; its run is marked ``killed`` by
        # whoever notices the bus gone (lienthong.holders).
        self._pool = DaemonPool(10, "lienthong-job")
        self._aps = BackgroundScheduler(
            timezone=ZoneInfo(timezone),
            jobstores={"default": SQLAlchemyJobStore(engine=engine, tablename=jobstore_table)},
            executors={"default": DebugExecutor()},
        )
        self._aps.add_listener(self._due, EVENT_JOB_SUBMITTED)

    def start(self) -> None:
        """Start ticking; the stored schedule is kept for jobs whose trigger did not change."""
        # Two processes starting at once would race to create the job store's table
        # and to add the same jobs: one at a time.
        with Lease(self.engine, "scheduler:start", self.holder, ttl_s=60).hold(wait_s=60):
            self._aps.start(paused=True)
            self._reconcile_store()
        self._aps.resume()

    def shutdown(self, wait: bool = True) -> None:
        if self._aps.running:
            self._aps.shutdown(wait=wait)
        left = self._pool.shutdown(timeout=10 if wait else 0)
        if left:
            log.warning("jobs still running at stop, left behind: %s", ", ".join(sorted(left)))

    def _due(self, event: JobSubmissionEvent) -> None:
        """Hand the due ticks of a job to a job thread, unless its previous run is still going.

        One run per job at a time in this process, as ``max_instances=1`` would
        keep it; the job's lease keeps runs apart across processes.
        """
        job, ticks = event.job_id, list(event.scheduled_run_times)
        if not self._pool.submit(job, lambda: self._run_ticks(job, ticks)):
            log.warning("job %s: tick %s skipped, its previous run is still going", job, ticks[-1])

    def _run_ticks(self, job: str, ticks: list[datetime]) -> None:
        """Fire each tick (several only with ``coalesce: false``) within its misfire grace time."""
        spec = self.jobs.get(job)
        for tick in ticks:
            late = datetime.now(UTC) - tick
            if spec is not None and late > timedelta(seconds=spec.misfire_grace_time):
                log.warning(
                    "job %s: tick %s missed by %s (misfire_grace_time %d s); skipped",
                    job,
                    tick,
                    late,
                    spec.misfire_grace_time,
                )
                continue
            self.fire(job, scheduled_for=tick)

    def _reconcile_store(self) -> None:
        stored = {job.id: job for job in self._aps.get_jobs()}
        for name, spec in self.jobs.items():
            trigger = spec.trigger()
            old = stored.get(name)
            if (
                old is not None
                and str(old.trigger) == str(trigger)
                and str(getattr(old.trigger, "timezone", "")) == spec.timezone
            ):
                if (old.misfire_grace_time, old.coalesce) != (
                    spec.misfire_grace_time,
                    spec.coalesce,
                ):
                    self._aps.modify_job(
                        name, misfire_grace_time=spec.misfire_grace_time, coalesce=spec.coalesce
                    )
                continue
            try:
                self._aps.add_job(
                    scheduled_job,
                    trigger,
                    args=(name,),
                    id=name,
                    name=name,
                    misfire_grace_time=spec.misfire_grace_time,
                    coalesce=spec.coalesce,
                    max_instances=1,
                    replace_existing=old is not None,
                )
            except ConflictingIdError:
                log.info("job %s was just stored by another process", name)
        for name in stored.keys() - self.jobs.keys():
            try:
                self._aps.remove_job(name)
                log.info("job %s is no longer configured: removed from the schedule", name)
            except JobLookupError:
                pass

    def fire(self, job: str, scheduled_for: datetime | None = None) -> str:
        """Run one tick of ``job`` unless another process holds it or already ran this tick.

        Returns the outcome: ``skipped`` (held or already run), ``ok``, ``failed``,
        ``refused``, ``interrupted`` or ``error``.
        """
        spec = self.jobs.get(job)
        if spec is None:
            log.warning("job %s is in the job store but not in the config; skipped", job)
            return "skipped"
        lease = Lease(self.engine, job_lease_name(job), self.holder, spec.lease_ttl_s)
        try:
            with lease.hold():
                run_id = claim_run(self.engine, job, self.holder, scheduled_for=scheduled_for)
                if run_id is None:
                    log.info("job %s: tick %s already ran elsewhere", job, scheduled_for)
                    return "skipped"
                outcome, detail = self._execute(spec)
                finish_run(self.engine, run_id, outcome, detail)
                return outcome
        except LeaseHeld as exc:
            log.info("job %s: tick skipped, %s", job, exc)
            return "skipped"

    def _execute(self, spec: JobSpec) -> tuple[str, str]:
        try:
            if spec.sync is not None:
                report = self.run_sync(spec.sync, spec.dry_run)
                counts = ", ".join(f"{k} {v}" for k, v in report.counts.items())
                return report.outcome, f"sync run {report.run_id}: {counts}"
            assert spec.poll is not None
            polled = self.run_poll(spec.poll)
            if isinstance(polled, PollReport):
                return "ok", (
                    f"{polled.new} new message(s), {polled.repeats} repeat(s) "
                    f"(already accepted) from {spec.poll}"
                )
            return "ok", f"{polled} message(s) from {spec.poll}"
        except GuardRefused as exc:
            log.error("job %s refused: %s", spec.name, exc)
            return "refused", str(exc)
        except TransientError as exc:
            log.warning("job %s interrupted; the next tick tries again: %s", spec.name, exc)
            return "interrupted", str(exc)
        except Exception as exc:
            log.exception("job %s failed", spec.name)
            return "error", f"{type(exc).__name__}: {exc}"


# --- the overview ---------------------------------------------------------


@dataclass(frozen=True)
class JobOverview:
    """One line of ``lienthong jobs``."""

    name: str
    what: str
    schedule: str
    last_started: datetime | None
    last_finished: datetime | None
    last_outcome: str | None
    last_holder: str | None
    next_run: datetime | None
    last_detail: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in self.__dict__.items()
        }


def _local(value: datetime | None, tz: ZoneInfo) -> datetime | None:
    if value is None:
        return None
    return value.astimezone(tz)


def _stored_next_runs(engine: Engine, table: str) -> dict[str, datetime | None]:
    store = Table(
        table,
        MetaData(),
        Column("id", String(191), primary_key=True),
        Column("next_run_time", Float),
    )
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(store.c.id, store.c.next_run_time)).all()
    except SQLAlchemyError:
        return {}  # the scheduler has never run against this database
    return {
        row.id: (
            datetime.fromtimestamp(row.next_run_time, UTC)
            if row.next_run_time is not None
            else None
        )
        for row in rows
    }


def jobs_overview(
    engine: Engine,
    jobs: Mapping[str, JobSpec] | Iterable[JobSpec],
    *,
    jobstore_table: str = JOBSTORE_TABLE,
) -> list[JobOverview]:
    """Schedule, last run, outcome and next run of every job, for ``lienthong jobs``."""
    specs = list(jobs.values() if isinstance(jobs, Mapping) else jobs)
    stored = _stored_next_runs(engine, jobstore_table)
    now = datetime.now(UTC)
    result = []
    with engine.connect() as conn:
        for spec in specs:
            last = conn.execute(
                select(job_runs)
                .where(job_runs.c.job == spec.name)
                .order_by(job_runs.c.started_at.desc(), job_runs.c.id.desc())
                .limit(1)
            ).first()
            if spec.name in stored:
                next_run = stored[spec.name]
            else:
                next_run = spec.trigger().get_next_fire_time(None, now)
            tz = ZoneInfo(spec.timezone)
            result.append(
                JobOverview(
                    name=spec.name,
                    what=spec.what,
                    schedule=spec.schedule,
                    last_started=_local(last.started_at, tz) if last else None,
                    last_finished=_local(last.finished_at, tz) if last else None,
                    last_outcome=last.outcome if last else None,
                    last_holder=last.holder if last else None,
                    next_run=next_run.astimezone(tz) if next_run else None,
                    last_detail=last.detail if last else None,
                )
            )
    return result
