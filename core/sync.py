"""The sync: reconcile one entity from a source endpoint into a target endpoint.

A run reads the source (a full snapshot, or the changes since the stored cursor),
reads the target's full state, and computes a :class:`Plan` by key: create,
update (with per-field differences), disable, unchanged, and rejected source
rows. A dry run stores the plan as a report and changes nothing; an apply hands
each change to ``target.sync_apply`` and records its outcome.

Safety:

- A plan that would disable more than ``max_disable_share`` of the target is
  refused (:class:`GuardRefused`) unless forced: an empty or truncated source
  must not wipe a directory.
- A duplicate key in the source rejects every row with that key; the target's
  record for it is left alone.
- The cursor moves only after every change was attempted. A transient error
  stops the run with the cursor where it was; the next run re-plans against the
  target as it now is, so what was applied shows as unchanged and nothing
  happens twice.

Records whose fields carry ``disabled: true`` are disabled: in the target they
are already off (never disabled again, re-enabled if the source has them); in
a delta from the source they say the entity is gone.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, get_args

from sqlalchemy import (
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Engine

from .adapter import Change, Record, SyncBatch
from .disposition import Disposition, decide
from .errors import FatalError, LienthongError, RejectedError
from .store import Cursors, UtcDateTime, metadata

#: The reserved field that marks a record as disabled (see the module docstring).
DISABLED = "disabled"

Mode = Literal["full", "delta"]
MODES: tuple[str, ...] = get_args(Mode)

sync_runs = Table(
    "sync_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job", String(200), nullable=False, index=True),
    Column("source", String(200), nullable=False),
    Column("target", String(200), nullable=False),
    Column("entity", String(200), nullable=False),
    Column("dry_run", Boolean, nullable=False),
    Column("forced", Boolean, nullable=False),
    Column("outcome", String(20), nullable=False),
    Column("started_at", UtcDateTime(timezone=True), nullable=False),
    Column("finished_at", UtcDateTime(timezone=True)),
    Column("cursor_before", Text),
    Column("cursor_after", Text),
    Column("counts", Text, nullable=False),
    Column("message", Text),
    Column("holder", String(200)),
)

sync_items = Table(
    "sync_items",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Integer, ForeignKey("sync_runs.id", ondelete="CASCADE"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("key", String(500), nullable=False),
    Column("action", String(20), nullable=False),
    Column("status", String(20), nullable=False),
    Column("detail", Text, nullable=False),
    Index("ix_sync_items_run", "run_id", "seq"),
)


class GuardRefused(FatalError):
    """The plan would disable too much of the target; a human must look first."""

    def __init__(self, spec: SyncSpec, disables: int, active: int) -> None:
        self.disables = disables
        self.active = active
        share = disables / active if active else 1.0
        super().__init__(
            f"sync '{spec.name}': the plan would disable {disables} of {active} active "
            f"'{spec.entity}' records in '{spec.target_endpoint}' ({share:.1%}), more than "
            f"max_disable_share {spec.max_disable_share:.1%}. Hint: check the source "
            f"'{spec.source_endpoint}' is complete (lienthong sync run {spec.name} --dry-run), "
            "then re-run with --force if the disables are right"
        )


# --- the spec and the plan ------------------------------------------------


@dataclass(frozen=True)
class SyncSpec:
    """What one sync job reconciles, from the ``sync:`` section of a job."""

    name: str
    source_endpoint: str
    target_endpoint: str
    entity: str
    source_entity: str | None = None
    fields: tuple[str, ...] | None = None
    disable_missing: bool = True
    max_disable_share: float = 0.05
    mode: str = "full"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"sync '{self.name}': mode must be one of {MODES}, got {self.mode!r}")
        if not 0 <= self.max_disable_share <= 1:
            raise ValueError(
                f"sync '{self.name}': max_disable_share is a share between 0 and 1, "
                f"got {self.max_disable_share!r}"
            )

    @property
    def read_entity(self) -> str:
        """The entity name on the source side."""
        return self.source_entity or self.entity

    @property
    def cursor_name(self) -> str:
        return f"sync:{self.name}"


@dataclass(frozen=True)
class Difference:
    """One field that differs between source and target."""

    field: str
    before: Any
    after: Any


@dataclass(frozen=True)
class Rejection:
    """A source row the plan refused, with why."""

    key: str
    reason: str


@dataclass
class Plan:
    """What a sync would do to its target, change by change."""

    creates: list[Change] = field(default_factory=list)
    updates: list[Change] = field(default_factory=list)
    disables: list[Change] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    active_targets: int = 0

    @property
    def changes(self) -> list[Change]:
        """Every change in the order an apply makes them."""
        return [*self.creates, *self.updates, *self.disables]

    def counts(self) -> dict[str, int]:
        return {
            "create": len(self.creates),
            "update": len(self.updates),
            "disable": len(self.disables),
            "unchanged": len(self.unchanged),
            "rejected": len(self.rejected),
        }


def differences(change: Change) -> list[Difference]:
    """The per-field differences of a planned change."""
    before = change.before or {}
    return [Difference(name, before.get(name), value) for name, value in change.fields.items()]


def _is_disabled(fields: Mapping[str, Any]) -> bool:
    return bool(fields.get(DISABLED))


def _compared(fields: Mapping[str, Any], spec: SyncSpec) -> dict[str, Any]:
    names = spec.fields if spec.fields is not None else [n for n in fields if n != DISABLED]
    return {name: fields.get(name) for name in names}


def plan(
    source_records: Iterable[Record],
    target_records: Iterable[Record],
    spec: SyncSpec,
    *,
    complete: bool = True,
    force: bool = False,
) -> Plan:
    """Diff source against target by key; raise :class:`GuardRefused` past the disable guard.

    ``complete`` says the source is a full snapshot, so a target key it lacks is
    disabled (when ``spec.disable_missing``); a delta only disables what it marks
    ``disabled``.
    """
    result = Plan()
    rows = list(source_records)
    seen = Counter(r.key for r in rows)
    duplicated = {key for key, n in seen.items() if n > 1}
    for key in sorted(duplicated):
        result.rejected.append(
            Rejection(
                key,
                f"key '{key}' appears {seen[key]} times in '{spec.source_endpoint}' "
                f"'{spec.read_entity}'; none of them was applied. Hint: fix the source so "
                "each key is unique",
            )
        )
    source: dict[str, Mapping[str, Any]] = {}
    for row in rows:
        if not row.key or not str(row.key).strip():
            result.rejected.append(
                Rejection(
                    repr(row.key),
                    f"a '{spec.read_entity}' row has an empty key: "
                    f"{dict(row.fields)!r}. Hint: fix the source record",
                )
            )
        elif row.key not in duplicated:
            source[row.key] = row.fields

    target = {r.key: r.fields for r in target_records}
    result.active_targets = sum(1 for f in target.values() if not _is_disabled(f))

    for key in sorted(source):
        wanted = source[key]
        have = target.get(key)
        if _is_disabled(wanted):
            if have is not None and not _is_disabled(have):
                result.disables.append(Change("disable", key, {DISABLED: True}, dict(have)))
            else:
                result.unchanged.append(key)
            continue
        desired = _compared(wanted, spec)
        if have is None:
            result.creates.append(Change("create", key, desired))
            continue
        current = _compared(have, spec)
        changed = {n: v for n, v in desired.items() if current.get(n) != v}
        before = {n: current.get(n) for n in changed}
        if _is_disabled(have):
            changed[DISABLED] = False
            before[DISABLED] = True
        if changed:
            result.updates.append(Change("update", key, changed, before))
        else:
            result.unchanged.append(key)

    if complete and spec.disable_missing:
        for key in sorted(set(target) - set(source) - duplicated):
            if not _is_disabled(target[key]):
                result.disables.append(Change("disable", key, {DISABLED: True}, dict(target[key])))

    if not force:
        check_guard(result, spec)
    return result


def check_guard(the_plan: Plan, spec: SyncSpec) -> None:
    """Raise :class:`GuardRefused` if the plan disables more than ``max_disable_share``."""
    limit = spec.max_disable_share * the_plan.active_targets
    if the_plan.disables and len(the_plan.disables) > limit:
        raise GuardRefused(spec, len(the_plan.disables), the_plan.active_targets)


# --- the report -----------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """The outcome of one change or rejected row in a run."""

    key: str
    action: str
    status: str  # planned, applied, failed, rejected, not-applied
    fields: Mapping[str, Any] = field(default_factory=dict)
    before: Mapping[str, Any] | None = None
    reason: str | None = None


@dataclass
class Report:
    """One stored sync run, as ``lienthong sync report`` shows it."""

    run_id: int
    job: str
    source: str
    target: str
    entity: str
    dry_run: bool
    forced: bool
    outcome: str  # running, ok, failed, refused, interrupted, error
    started_at: datetime
    finished_at: datetime | None
    cursor_before: str | None
    cursor_after: str | None
    counts: dict[str, int]
    message: str | None = None
    holder: str | None = None
    items: list[Item] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return sum(1 for i in self.items if i.status in ("failed", "rejected"))

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "items"}
        for name in ("started_at", "finished_at"):
            data[name] = data[name].isoformat() if data[name] else None
        data["items"] = [dict(i.__dict__) for i in self.items]
        return data


Progress = Callable[[int, int, Change], None]


def _now() -> datetime:
    return datetime.now(UTC)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str, sort_keys=True)


class _Recorder:
    """Writes one run and its items as they happen, so a killed run still leaves a trace."""

    #: Items are written in batches: one commit per item would make a 10 000-account
    #: sync crawl, and a killed run's last few items are re-planned by the next run anyway.
    BATCH = 200
    BATCH_SECONDS = 2.0

    def __init__(
        self,
        engine: Engine,
        spec: SyncSpec,
        *,
        dry_run: bool,
        force: bool,
        cursor: str | None,
        holder: str | None,
    ) -> None:
        self.engine = engine
        self.seq = 0
        self.pending: list[dict[str, Any]] = []
        self.flushed_at = time.monotonic()
        with engine.begin() as conn:
            key = conn.execute(
                insert(sync_runs).values(
                    job=spec.name,
                    source=spec.source_endpoint,
                    target=spec.target_endpoint,
                    entity=spec.entity,
                    dry_run=dry_run,
                    forced=force,
                    outcome="running",
                    started_at=_now(),
                    cursor_before=cursor,
                    counts="{}",
                    holder=holder,
                )
            ).inserted_primary_key
        assert key is not None
        self.run_id = int(key[0])

    def item(self, item: Item) -> None:
        self.seq += 1
        detail = {"fields": dict(item.fields), "before": item.before, "reason": item.reason}
        self.pending.append(
            {
                "run_id": self.run_id,
                "seq": self.seq,
                "key": item.key,
                "action": item.action,
                "status": item.status,
                "detail": _json(detail),
            }
        )
        if (
            len(self.pending) >= self.BATCH
            or time.monotonic() - self.flushed_at >= self.BATCH_SECONDS
        ):
            self.flush()

    def flush(self) -> None:
        if self.pending:
            with self.engine.begin() as conn:
                conn.execute(insert(sync_items), self.pending)
            self.pending = []
        self.flushed_at = time.monotonic()

    def items(self, items: Sequence[Item]) -> None:
        for item in items:
            self.item(item)

    def finish(
        self,
        outcome: str,
        counts: Mapping[str, int],
        *,
        cursor_after: str | None = None,
        message: str | None = None,
    ) -> None:
        self.flush()
        with self.engine.begin() as conn:
            conn.execute(
                update(sync_runs)
                .where(sync_runs.c.id == self.run_id)
                .values(
                    outcome=outcome,
                    finished_at=_now(),
                    counts=_json(dict(counts)),
                    cursor_after=cursor_after,
                    message=message,
                )
            )


def load_report(engine: Engine, run_id: int, *, with_items: bool = True) -> Report | None:
    """The stored report of run ``run_id`` (its items too unless not ``with_items``), or None."""
    with engine.connect() as conn:
        run = conn.execute(select(sync_runs).where(sync_runs.c.id == run_id)).first()
        if run is None:
            return None
        rows = (
            conn.execute(
                select(sync_items).where(sync_items.c.run_id == run_id).order_by(sync_items.c.seq)
            ).all()
            if with_items
            else []
        )
    return _report(run, [_item(row) for row in rows])


def recent_runs(engine: Engine, job: str | None = None, limit: int = 20) -> list[Report]:
    """The latest runs (without items), newest first: ``lienthong sync runs``, the console."""
    query = select(sync_runs).order_by(sync_runs.c.id.desc()).limit(limit)
    if job is not None:
        query = query.where(sync_runs.c.job == job)
    with engine.connect() as conn:
        return [_report(run, []) for run in conn.execute(query)]


def run_items(
    engine: Engine, run_id: int, *, action: str | None = None, offset: int = 0, limit: int = 200
) -> tuple[list[Item], dict[str, int]]:
    """A page of run ``run_id``'s items in order (``action`` alone if given); counts by action.

    A run may hold a directory's worth of items: a page reads only its own.
    """
    query = select(sync_items).where(sync_items.c.run_id == run_id)
    if action:
        query = query.where(sync_items.c.action == action)
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(sync_items.c.seq).offset(offset).limit(limit)).all()
        counts = {
            name: int(count)
            for name, count in conn.execute(
                select(sync_items.c.action, func.count())
                .where(sync_items.c.run_id == run_id)
                .group_by(sync_items.c.action)
            )
        }
    return [_item(row) for row in rows], counts


def _item(row: Any) -> Item:
    detail = json.loads(row.detail)
    return Item(
        row.key,
        row.action,
        row.status,
        detail.get("fields") or {},
        detail.get("before"),
        detail.get("reason"),
    )


def _report(run: Any, items: list[Item]) -> Report:
    """A stored run as a report (its times aware UTC, as the store's column type reads them)."""
    return Report(
        run_id=run.id,
        job=run.job,
        source=run.source,
        target=run.target,
        entity=run.entity,
        dry_run=run.dry_run,
        forced=run.forced,
        outcome=run.outcome,
        started_at=run.started_at,
        finished_at=run.finished_at,
        cursor_before=run.cursor_before,
        cursor_after=run.cursor_after,
        counts=json.loads(run.counts or "{}"),
        message=run.message,
        holder=run.holder,
        items=items,
    )


def delete_runs_before(engine: Engine, cutoff: datetime) -> int:
    """Delete finished sync runs started before ``cutoff`` and their items (``db cleanup``)."""
    with engine.begin() as conn:
        old = select(sync_runs.c.id).where(
            sync_runs.c.started_at < cutoff, sync_runs.c.finished_at.is_not(None)
        )
        conn.execute(delete(sync_items).where(sync_items.c.run_id.in_(old)))
        return int(conn.execute(delete(sync_runs).where(sync_runs.c.id.in_(old))).rowcount)


# --- the run --------------------------------------------------------------


class SyncEndpoint(Protocol):
    """What a sync needs of each side: an adapter, or the bus's gated view of one."""

    def sync_read(self, entity: str, since: str | None) -> SyncBatch: ...

    def sync_apply(self, entity: str, change: Change) -> None: ...

    def is_transient(self, exc: BaseException) -> bool: ...


def run(
    spec: SyncSpec,
    source: SyncEndpoint,
    target: SyncEndpoint,
    engine: Engine,
    *,
    dry_run: bool = False,
    force: bool = False,
    since: str | None = None,
    progress: Progress | None = None,
    holder: str | None = None,
) -> Report:
    """Run one sync and return its stored report.

    ``since`` overrides the stored cursor (a delta read from there); without it a
    ``delta`` spec reads from the stored cursor and a ``full`` spec reads a full
    snapshot. Raises :class:`GuardRefused` (the run is stored as refused) and
    re-raises anything that is neither a transient nor a rejected error.
    """
    cursors = Cursors(engine)
    stored = cursors.get(spec.cursor_name)
    read_since = since if since is not None else (stored if spec.mode == "delta" else None)
    recorder = _Recorder(engine, spec, dry_run=dry_run, force=force, cursor=stored, holder=holder)
    reading = source
    try:
        batch = source.sync_read(spec.read_entity, read_since)
        source_rows = list(batch.records)
        reading = target
        target_batch = target.sync_read(spec.entity, None)
        if not target_batch.complete:
            raise FatalError(
                f"sync '{spec.name}': target '{spec.target_endpoint}' returned a partial read "
                f"of '{spec.entity}' for since=None. Hint: its sync_read must return every "
                "record (complete=True) when since is None"
            )
        # A dry run shows the whole plan even past the guard, and reports the refusal.
        the_plan = plan(
            source_rows, target_batch.records, spec, complete=batch.complete, force=force or dry_run
        )
    except GuardRefused as exc:
        recorder.finish(
            "refused", {"disable": exc.disables, "active": exc.active}, message=str(exc)
        )
        raise
    except BaseException as exc:
        if _reading_failed(recorder, exc, reading):
            return _must_load(engine, recorder.run_id)
        raise

    counts = the_plan.counts()
    recorder.items([Item(r.key, "reject", "rejected", reason=r.reason) for r in the_plan.rejected])
    if dry_run:
        recorder.items(
            [Item(c.key, c.action, "planned", c.fields, c.before) for c in the_plan.changes]
        )
        outcome = "failed" if the_plan.rejected else "ok"
        message = f"dry run: nothing was changed in '{spec.target_endpoint}'"
        if not force:
            try:
                check_guard(the_plan, spec)
            except GuardRefused as exc:
                outcome, message = "refused", f"{message}. An apply would be refused: {exc}"
        recorder.finish(outcome, counts, cursor_after=stored, message=message)
        return _must_load(engine, recorder.run_id)

    counts.update(applied=0, failed=0)
    if not _apply(spec, target, the_plan.changes, recorder, counts, stored, progress):
        return _must_load(engine, recorder.run_id)

    cursor_after = stored
    if batch.cursor is not None:
        cursors.set(spec.cursor_name, batch.cursor)
        cursor_after = batch.cursor
    outcome = "failed" if counts["failed"] or the_plan.rejected else "ok"
    recorder.finish(outcome, counts, cursor_after=cursor_after)
    return _must_load(engine, recorder.run_id)


#: The dispositions that end a run interrupted, to run again, rather than in error.
_PASSING = (Disposition.RETRY, Disposition.HOLD)


def _reading_failed(recorder: _Recorder, exc: BaseException, reading: SyncEndpoint) -> bool:
    """Record a run whose reading failed (nothing was changed): True when it was transient.

    A passing failure (lienthong.disposition: retry, hold) ends the run as
    interrupted, to run again later; any other ends it as an error, which the
    caller re-raises.
    """
    if decide(exc, reading) in _PASSING:
        recorder.finish(
            "interrupted",
            {},
            message=f"reading failed, nothing was changed: "
            f"{type(exc).__name__}: {exc}. Hint: run it again later",
        )
        return True
    recorder.finish("error", {}, message=f"{type(exc).__name__}: {exc}")
    return False


def _apply(
    spec: SyncSpec,
    target: SyncEndpoint,
    changes: Sequence[Change],
    recorder: _Recorder,
    counts: dict[str, int],
    cursor: str | None,
    progress: Progress | None,
) -> bool:
    """Hand each change to ``target.sync_apply`` and record it.

    Returns False when a transient error stopped the run (recorded as
    interrupted, the cursor left where it was); re-raises any other error after
    recording it.
    """
    for done, change in enumerate(changes, start=1):
        try:
            target.sync_apply(spec.entity, change)
        except BaseException as exc:
            disposition = decide(exc, target)
            if disposition is Disposition.PARK:  # this change alone: the run goes on
                counts["failed"] += 1
                recorder.item(
                    Item(
                        change.key, change.action, "failed", change.fields, change.before, str(exc)
                    )
                )
            else:
                recorder.item(
                    Item(
                        change.key,
                        change.action,
                        "not-applied",
                        change.fields,
                        change.before,
                        f"{type(exc).__name__}: {exc}",
                    )
                )
                counts["not_applied"] = len(changes) - done + 1
                transient = disposition in _PASSING
                recorder.finish(
                    "interrupted" if transient else "error",
                    counts,
                    cursor_after=cursor,
                    message=(
                        f"stopped at change {done} of {len(changes)} ({change.action} "
                        f"'{change.key}'): {exc}. The cursor was not moved; the next run "
                        "picks up from here"
                    ),
                )
                if transient:
                    return False
                raise
        else:
            counts["applied"] += 1
            recorder.item(Item(change.key, change.action, "applied", change.fields, change.before))
        if progress is not None:
            progress(done, len(changes), change)
    return True


# --- approving a stored plan ------------------------------------------------


@dataclass(frozen=True)
class Drift:
    """One way the target differs from what a stored plan saw: ``planned`` then, ``now`` now."""

    key: str
    action: str
    field: str
    planned: Any
    now: Any


class PlanChanged(RejectedError):
    """The target changed since the dry run: applying its plan now would not do what was shown."""

    def __init__(self, spec: SyncSpec, plan_run: int, run_id: int, drift: list[Drift]) -> None:
        self.plan_run = plan_run
        self.run_id = run_id
        self.drift = drift
        first = drift[0]
        super().__init__(
            f"sync '{spec.name}': '{spec.target_endpoint}' changed since dry run {plan_run}: "
            f"{len(drift)} difference(s), the first {first.action} '{first.key}' "
            f"{first.field}: {first.planned!r} then, {first.now!r} now; nothing was applied. "
            f"Hint: make a new dry run (lienthong sync run {spec.name} --dry-run) and approve "
            "that plan"
        )


#: What a stored plan's ``before`` says about a record that was (not) there.
ABSENT = "(absent)"
PRESENT = "(present)"


def _plain(value: Any) -> Any:
    """A value as the stored report keeps it (JSON), so live and stored values compare."""
    return json.loads(_json(value))


def drift(changes: Sequence[Change], target: Iterable[Record]) -> list[Drift]:
    """How ``target`` now differs from what each planned change expected to find."""
    current = {r.key: r.fields for r in target}
    found: list[Drift] = []
    for change in changes:
        have = current.get(change.key)
        if change.action == "create":
            if have is not None:
                found.append(Drift(change.key, "create", "", ABSENT, PRESENT))
            continue
        if have is None:
            found.append(Drift(change.key, change.action, "", PRESENT, ABSENT))
            continue
        for name, before in (change.before or {}).items():
            now = _is_disabled(have) if name == DISABLED else have.get(name)
            if name == DISABLED:
                before = bool(before)
            if _plain(now) != _plain(before):
                found.append(Drift(change.key, change.action, name, before, _plain(now)))
        already_off = DISABLED not in (change.before or {}) and _is_disabled(have)
        if change.action == "disable" and already_off:
            found.append(Drift(change.key, "disable", DISABLED, False, True))
    return found


def approve(
    spec: SyncSpec,
    plan_run: int,
    target: SyncEndpoint,
    engine: Engine,
    *,
    force: bool = False,
    approved_by: str | None = None,
    holder: str | None = None,
) -> Report:
    """Apply exactly the plan stored by dry run ``plan_run``, as a new run; return its report.

    Refused with :class:`PlanChanged` (stored as a refused run) when the target
    no longer holds what the plan saw, and with :class:`GuardRefused` past the
    disable guard unless ``force``. The source is not read again and the cursor
    does not move: a later run re-plans and finds these changes made.
    """
    planned = load_report(engine, plan_run)
    if planned is None:
        raise RejectedError(f"no sync run {plan_run}. Hint: 'lienthong sync runs' lists them")
    if planned.job != spec.name:
        raise RejectedError(
            f"sync run {plan_run} belongs to job '{planned.job}', not '{spec.name}'"
        )
    if not planned.dry_run or planned.outcome not in ("ok", "failed", "refused"):
        kind = "dry run" if planned.dry_run else "apply"
        raise RejectedError(
            f"sync run {plan_run} ({kind}, {planned.outcome}) is not a finished dry run, so it "
            f"holds no plan to approve. Hint: lienthong sync run {spec.name} --dry-run"
        )
    changes = [
        Change(i.action, i.key, dict(i.fields), i.before)
        for i in planned.items
        if i.status == "planned"
    ]
    stored = Cursors(engine).get(spec.cursor_name)
    recorder = _Recorder(engine, spec, dry_run=False, force=force, cursor=stored, holder=holder)
    who = f", approved by {approved_by}" if approved_by else ""
    try:
        target_batch = target.sync_read(spec.entity, None)
        records = list(target_batch.records)
        found = drift(changes, records)
        if not force and not found:
            the_plan = Plan(
                creates=[c for c in changes if c.action == "create"],
                updates=[c for c in changes if c.action == "update"],
                disables=[c for c in changes if c.action == "disable"],
                active_targets=sum(1 for r in records if not _is_disabled(r.fields)),
            )
            check_guard(the_plan, spec)
    except GuardRefused as exc:
        recorder.finish(
            "refused", {"disable": exc.disables, "active": exc.active}, message=str(exc)
        )
        raise
    except BaseException as exc:
        if _reading_failed(recorder, exc, target):
            return _must_load(engine, recorder.run_id)
        raise
    if found:
        refusal = PlanChanged(spec, plan_run, recorder.run_id, found)
        recorder.finish("refused", {"drift": len(found)}, cursor_after=stored, message=str(refusal))
        raise refusal
    counts = Counter(c.action for c in changes)
    totals = {"create": counts["create"], "update": counts["update"], "disable": counts["disable"]}
    totals.update(applied=0, failed=0)
    if _apply(spec, target, changes, recorder, totals, stored, None):
        recorder.finish(
            "failed" if totals["failed"] else "ok",
            totals,
            cursor_after=stored,
            message=f"applied the plan of dry run {plan_run}{who}",
        )
    return _must_load(engine, recorder.run_id)


def _must_load(engine: Engine, run_id: int) -> Report:
    report = load_report(engine, run_id)
    if report is None:
        raise LienthongError(f"sync run {run_id} vanished from the store while it was written")
    return report
