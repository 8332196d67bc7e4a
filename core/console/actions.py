"""Every change the console makes: the CLI's own functions, then an audit record naming who.

Replays go through ``Bus.replay``, purges through ``Store.purge_dead_letters``,
sync runs and approvals through ``sync_commands.run_job`` (the lease, the job
run record, ``sync.run`` or ``sync.approve``), exactly as the commands do. After
each, one record per message (or sync run) is appended to the audit chain with
the person's name, role and the outcome, so ``lienthong audit verify`` covers
what people did as well as what the bus did.

Threads: the console owns a :class:`~lienthong.bus.Bus` of its own, never started
(it neither polls nor delivers: the running bus picks up what a replay queues),
and the adapters a sync needs, started on first use. Waitress serves requests on
several threads, so one lock runs the actions one at a time and each adapter is
only ever used by the thread holding it.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import false, insert, update
from sqlalchemy.engine import Engine

from .. import audit as audit_chain
from ..adapter import Adapter
from ..bus import Bus
from ..errors import ConfigError, LienthongError, RejectedError
from ..scheduler import JobSpec
from ..store import audit, utcnow
from ..sync import PlanChanged, Report
from ..sync_commands import run_job
from .auth import User
from .queries import Queries


@dataclass(frozen=True)
class Outcome:
    """What an action did to one dead letter."""

    dead_id: int
    ok: bool
    text: str


class Actions:
    """The console's changes to the bus, each audited with the person who asked."""

    def __init__(self, bus: Bus, queries: Queries) -> None:
        self.bus = bus
        self.queries = queries
        self._lock = threading.Lock()
        self._adapters: dict[str, Adapter] = {}

    # What run_job needs (lienthong.sync_commands.SyncContext).

    @property
    def engine(self) -> Engine:
        return self.bus.store.engine

    @property
    def jobs(self) -> Mapping[str, JobSpec]:
        return self.bus.config.jobs

    def adapter(self, endpoint: str) -> Adapter:
        """The console's own adapter for ``endpoint``, started on first use (under the lock)."""
        if endpoint not in self.bus.adapters:
            raise ConfigError([f"no endpoint named '{endpoint}' in the config"])
        if endpoint not in self._adapters:
            adapter = self.bus.adapters[endpoint]
            adapter.start()
            self._adapters[endpoint] = adapter
        return self._adapters[endpoint]

    def close(self) -> None:
        """Stop the adapters a sync started and let go of the store (``Bus.close``)."""
        with self._lock:
            self._adapters.clear()
            self.bus.close()

    # --- dead letters ---

    def replay(self, ids: list[int], user: User) -> list[Outcome]:
        """Replay each dead letter as ``lienthong dlq replay`` does; a refusal is an outcome too."""
        refs = self.queries.dead_letter_refs(ids)
        outcomes = []
        with self._lock:
            for dead_id in ids:
                try:
                    outcomes.append(Outcome(dead_id, True, self.bus.replay(dead_id)))
                except RejectedError as exc:
                    outcomes.append(Outcome(dead_id, False, str(exc)))
        self._audit(
            user,
            [
                (
                    refs[o.dead_id][0],
                    refs[o.dead_id][1],
                    f"replayed dead letter #{o.dead_id}: {o.text}"
                    if o.ok
                    else f"replay of dead letter #{o.dead_id} refused: {o.text}",
                )
                for o in outcomes
                if o.dead_id in refs
            ],
        )
        return outcomes

    def purge(self, ids: list[int], user: User) -> int:
        """Forget dead letters as ``lienthong dlq purge`` does (messages and trail stay)."""
        refs = self.queries.dead_letter_refs(ids)
        with self._lock:
            purged = self.bus.store.purge_dead_letters(list(refs))
        self._audit(
            user,
            [
                (message, endpoint, f"purged dead letter #{i}")
                for i, (message, endpoint) in refs.items()
            ],
        )
        return purged

    # --- syncs ---

    def run_sync(self, job: str, user: User, *, dry_run: bool, force: bool = False) -> Report:
        """Run sync ``job`` now (a dry run or an apply), as ``lienthong sync run`` does."""
        spec = self._sync_job(job)
        kind = "dry run" if dry_run else ("forced apply" if force else "apply")
        try:
            with self._lock:
                report = run_job(self, spec, dry_run=dry_run, force=force, trigger="console")
        except LienthongError as exc:
            self._audit(
                user, [(f"sync-job:{job}", self._target(spec), f"{kind} of '{job}' refused: {exc}")]
            )
            raise
        self._audit(
            user,
            [
                (
                    f"sync-run:{report.run_id}",
                    report.target,
                    f"ran sync '{job}' ({kind}), run {report.run_id}: {report.outcome}, "
                    f"{_counts(report)}",
                )
            ],
        )
        return report

    def approve(self, run_id: int, user: User, *, force: bool = False) -> Report:
        """Apply exactly the plan of dry run ``run_id``, as ``lienthong sync approve`` does."""
        planned = self.queries.sync_run(run_id)
        if planned is None:
            raise RejectedError(f"no sync run {run_id}. Hint: the syncs page lists the latest runs")
        spec = self._sync_job(planned.job)
        who = f"{user.name} ({user.role})"
        try:
            with self._lock:
                report = run_job(
                    self,
                    spec,
                    force=force,
                    trigger="approval",
                    approve_run=run_id,
                    approved_by=who,
                )
        except PlanChanged as exc:
            self._audit(
                user,
                [(f"sync-run:{exc.run_id}", self._target(spec), f"approval refused: {exc}")],
            )
            raise
        except LienthongError as exc:
            self._audit(
                user,
                [(f"sync-run:{run_id}", self._target(spec), f"approval refused: {exc}")],
            )
            raise
        self._audit(
            user,
            [
                (
                    f"sync-run:{report.run_id}",
                    report.target,
                    f"approved the plan of sync run {run_id} ('{spec.name}'"
                    f"{', forced' if force else ''}), run {report.run_id}: {report.outcome}, "
                    f"{_counts(report)}",
                )
            ],
        )
        return report

    def _sync_job(self, job: str) -> JobSpec:
        spec = self.jobs.get(job)
        if spec is None or spec.sync is None:
            raise RejectedError(f"no sync job '{job}' in the config. Hint: see the syncs page")
        return spec

    @staticmethod
    def _target(spec: JobSpec) -> str | None:
        return spec.sync.target_endpoint if spec.sync else None

    # --- the audit chain ---

    def _audit(self, user: User, records: list[tuple[str, str | None, str]]) -> None:
        """Append one record per (subject, endpoint, what was done), naming ``user``."""
        if not records:
            return
        now = utcnow()
        who = f"{user.name} ({user.role}, {user.via})"
        rows = [
            {
                "message_id": subject,
                "at": now,
                "event": "operator",
                "endpoint": endpoint,
                "detail": f"{who} {what}",
            }
            for subject, endpoint, what in records
        ]
        with self.engine.begin() as conn:
            if conn.dialect.name == "sqlite":
                # pysqlite begins a transaction at its first write: take the write lock
                # before the chain's last hash is read, so no other writer comes between.
                conn.execute(update(audit).where(false()).values(event="operator"))
            conn.execute(
                insert(audit), audit_chain.chain(conn, audit, rows, self.bus.store.audit_key)
            )


def _counts(report: Report) -> str:
    return ", ".join(f"{name} {value}" for name, value in report.counts.items()) or "no changes"
