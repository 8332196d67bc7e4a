"""Everything the console reads from the store, in one place.

The pages never touch the tables themselves: each reads through a method here,
built on the existing ``Store`` methods and SQLAlchemy Core over the tables of
``lienthong.store``, ``lienthong.sync`` and ``lienthong.scheduler``. When the
store's read queries move into read models, this file is what changes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import and_, func, select

from .. import audit as audit_chain
from ..config import Config
from ..host import PluginHost
from ..message import Message
from ..model import Stage
from ..scheduler import JobOverview, jobs_overview
from ..store import Store, attempts, audit, dead_letters, deliveries, messages, utcnow
from ..sync import sync_items, sync_runs
from .i18n import TIMEZONE

STAGES = tuple(Stage)


@dataclass(frozen=True)
class DeadLetterFilter:
    """Which dead letters a page or an action means: waiting ones matching every field given."""

    endpoint: str = ""
    stage: str = ""
    reason: str = ""
    since: date | None = None
    until: date | None = None

    @classmethod
    def from_args(cls, args: Any) -> DeadLetterFilter:
        """From a query string or form; a malformed date is ignored (the form shows it empty)."""
        stage = (args.get("stage") or "").strip()
        return cls(
            endpoint=(args.get("endpoint") or "").strip()[:100],
            stage=stage if stage in STAGES else "",
            reason=(args.get("reason") or "").strip()[:200],
            since=_day(args.get("since")),
            until=_day(args.get("until")),
        )

    def as_args(self) -> dict[str, str]:
        """The filter as query-string or hidden-field values (empty ones left out)."""
        values = {k: (v.isoformat() if isinstance(v, date) else v) for k, v in asdict(self).items()}
        return {k: v for k, v in values.items() if v}

    @property
    def empty(self) -> bool:
        return not self.as_args()

    def conditions(self) -> list[Any]:
        found: list[Any] = [dead_letters.c.replayed_at.is_(None)]
        if self.endpoint:
            found.append(dead_letters.c.endpoint == self.endpoint)
        if self.stage:
            found.append(dead_letters.c.stage == self.stage)
        if self.reason:
            found.append(dead_letters.c.reason.contains(self.reason, autoescape=True))
        if self.since:
            found.append(dead_letters.c.created_at >= _utc_start(self.since))
        if self.until:
            found.append(dead_letters.c.created_at < _utc_start(self.until + timedelta(days=1)))
        return found


def _day(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _utc_start(day: date) -> datetime:
    """Midnight of a day in Hanoi, as the store's naive UTC."""
    return datetime.combine(day, time(), TIMEZONE).astimezone(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class EndpointState:
    """One line of the overview's endpoint table."""

    name: str
    adapter: str
    pending: int
    retrying: int
    lag_seconds: float | None
    circuit: str  # closed | open | half-open
    circuit_detail: str
    dead_letters: int

    @property
    def state(self) -> str:
        """ok, retrying, lagging or failing: what an admin should look at first."""
        if self.circuit != "closed":
            return "failing"
        if self.retrying:
            return "retrying"
        if self.lag_seconds is not None and self.lag_seconds > 300:
            return "lagging"
        return "ok"


class Queries:
    """The console's reads over one store and the config that names its endpoints and jobs."""

    def __init__(self, store: Store, config: Config, host: PluginHost) -> None:
        self.store = store
        self.config = config
        self.host = host
        self.engine = store.engine

    # --- overview ---

    def counts(self) -> dict[str, int]:
        return self.store.counts()

    def endpoints(self) -> list[EndpointState]:
        pending = self.store.pending_overview()
        health = self.store.endpoint_health()
        with self.engine.connect() as conn:
            waiting: dict[str | None, int] = dict(
                conn.execute(
                    select(dead_letters.c.endpoint, func.count())
                    .where(dead_letters.c.replayed_at.is_(None))
                    .group_by(dead_letters.c.endpoint)
                ).all()
            )
        now = utcnow()
        rows = []
        for name, endpoint in self.config.endpoints.items():
            p = pending.get(name, {})
            circuit = health.get(name)
            oldest = p.get("oldest")
            rows.append(
                EndpointState(
                    name=name,
                    adapter=endpoint.adapter,
                    pending=int(p.get("pending", 0)),
                    retrying=int(p.get("retrying", 0)),
                    lag_seconds=max(0.0, (now - oldest).total_seconds()) if oldest else None,
                    circuit=circuit["state"] if circuit else "closed",
                    circuit_detail=circuit["detail"] if circuit else "",
                    dead_letters=int(waiting.get(name, 0)),
                )
            )
        return rows

    def jobs(self) -> list[JobOverview]:
        return jobs_overview(self.engine, self.config.jobs)

    def verify_audit(self) -> audit_chain.Verdict:
        """Walk the whole audit chain: slow on a big store, so the console does it aside."""
        anchor = audit_chain.read_anchor(self.config.bus.anchor_path)
        return audit_chain.verify(self.engine, audit, [self.store.audit_key], anchor)

    # --- dead letters ---

    def dead_letters(
        self, chosen: DeadLetterFilter, *, before: int | None = None, limit: int = 50
    ) -> tuple[list[dict[str, Any]], bool]:
        """A page of dead letters, newest first, and whether older ones follow."""
        conditions = chosen.conditions()
        if before is not None:
            conditions.append(dead_letters.c.id < before)
        query = (
            select(
                dead_letters.c.id,
                dead_letters.c.message_id,
                dead_letters.c.endpoint,
                dead_letters.c.stage,
                dead_letters.c.reason,
                dead_letters.c.created_at,
                messages.c.kind,
                messages.c.source,
            )
            .join(messages, messages.c.id == dead_letters.c.message_id)
            .where(and_(*conditions))
            .order_by(dead_letters.c.id.desc())
            .limit(limit + 1)
        )
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
        return rows[:limit], len(rows) > limit

    def count_dead_letters(self, chosen: DeadLetterFilter) -> tuple[int, int | None]:
        """How many dead letters match, and the newest one's id (an action's upper bound)."""
        with self.engine.connect() as conn:
            count, newest = conn.execute(
                select(func.count(), func.max(dead_letters.c.id)).where(and_(*chosen.conditions()))
            ).one()
        return int(count), newest

    def dead_letter_ids(self, chosen: DeadLetterFilter, upto: int) -> list[int]:
        """The ids an action on a filter means: those matching, up to the one counted last."""
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    select(dead_letters.c.id)
                    .where(and_(*chosen.conditions(), dead_letters.c.id <= upto))
                    .order_by(dead_letters.c.id)
                ).scalars()
            )

    def waiting_among(self, ids: list[int]) -> list[int]:
        """Which of ``ids`` are dead letters still waiting (a selection posted from a page)."""
        if not ids:
            return []
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    select(dead_letters.c.id)
                    .where(dead_letters.c.id.in_(ids), dead_letters.c.replayed_at.is_(None))
                    .order_by(dead_letters.c.id)
                ).scalars()
            )

    def dead_letter_refs(self, ids: list[int]) -> dict[int, tuple[str, str | None]]:
        """Each dead letter's message id and endpoint, for the audit records of an action."""
        if not ids:
            return {}
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(dead_letters.c.id, dead_letters.c.message_id, dead_letters.c.endpoint).where(
                    dead_letters.c.id.in_(ids)
                )
            )
            return {r.id: (r.message_id, r.endpoint) for r in rows}

    def dead_letter(self, dead_id: int) -> dict[str, Any] | None:
        """One dead letter with its message, every attempt, and the body its delivery carried."""
        found = self.store.dead_letter(dead_id)
        if found is None or not found["delivery_id"]:
            return found
        with self.engine.connect() as conn:
            found["delivery_body"] = conn.execute(
                select(deliveries.c.body).where(deliveries.c.id == found["delivery_id"])
            ).scalar_one_or_none()
        return found

    def endpoints_with_dead_letters(self) -> list[str]:
        with self.engine.connect() as conn:
            return sorted(
                e
                for e in conn.execute(
                    select(dead_letters.c.endpoint)
                    .where(
                        dead_letters.c.replayed_at.is_(None), dead_letters.c.endpoint.is_not(None)
                    )
                    .distinct()
                ).scalars()
                if e
            )

    # --- messages ---

    def message(self, message_id: str) -> Message | None:
        return self.store.message(message_id)

    def trace(self, message_id: str) -> dict[str, Any] | None:
        """Every hop of a message, given its id or a unique beginning of it."""
        found = self.full_id(message_id)
        if found is None:
            return None
        with self.engine.connect() as conn:
            m = conn.execute(select(messages).where(messages.c.id == found)).one()
            correlated = [
                dict(r._mapping)
                for r in conn.execute(
                    select(
                        messages.c.id,
                        messages.c.kind,
                        messages.c.source,
                        messages.c.accepted_at,
                        messages.c.state,
                    )
                    .where(messages.c.correlation_id == m.correlation_id, messages.c.id != m.id)
                    .order_by(messages.c.accepted_at)
                    .limit(200)
                )
            ]
            hops = [
                dict(r._mapping)
                for r in conn.execute(
                    select(audit).where(audit.c.message_id == m.id).order_by(audit.c.id)
                )
            ]
            sent = [
                dict(r._mapping, attempt_log=[])
                for r in conn.execute(
                    select(
                        deliveries.c.id,
                        deliveries.c.route,
                        deliveries.c.endpoint,
                        deliveries.c.state,
                        deliveries.c.attempts,
                        deliveries.c.last_error,
                    ).where(deliveries.c.message_id == m.id)
                )
            ]
            by_id = {d["id"]: d for d in sent}
            if by_id:
                for a in conn.execute(
                    select(attempts)
                    .where(attempts.c.delivery_id.in_(list(by_id)))
                    .order_by(attempts.c.number)
                ):
                    by_id[a.delivery_id]["attempt_log"].append(dict(a._mapping))
        return {
            **{k: v for k, v in m._mapping.items() if k != "body"},
            "headers": json.loads(m.headers or "{}"),
            "hops": hops,
            "deliveries": sent,
            "correlated": correlated,
        }

    def full_id(self, prefix: str) -> str | None:
        """The one message id that is ``prefix`` or starts with it (a whole id is quickest)."""
        if not prefix:
            return None
        with self.engine.connect() as conn:
            exact = conn.execute(
                select(messages.c.id).where(messages.c.id == prefix)
            ).scalar_one_or_none()
            if exact is not None:
                return str(exact)
            ids = list(
                conn.execute(
                    select(messages.c.id).where(self._starts(messages.c.id, prefix)).limit(2)
                ).scalars()
            )
        return ids[0] if len(ids) == 1 else None

    def _starts(self, column: Any, prefix: str) -> Any:
        """``column`` starts with ``prefix``, in the form each database answers from its index.

        SQLite compares text byte by byte, so a range uses the index (its LIKE
        ignores case and cannot); PostgreSQL's collation may order punctuation
        otherwise, so there it is LIKE.
        """
        if self.engine.dialect.name == "sqlite":
            upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
            return and_(column >= prefix, column < upper)
        return column.startswith(prefix, autoescape=True)

    def messages_by_correlation(self, correlation_id: str) -> list[dict[str, Any]]:
        return self.store.messages_by_correlation(correlation_id)

    # --- documents (told by the plugin that knows them: the axis's) ---

    def recent_correlations(
        self, prefix: str, name_header: str, limit: int = 30
    ) -> list[dict[str, Any]]:
        """The correlations starting with ``prefix`` most recently active, newest first.

        Each has its ``correlation_id``, ``messages``, ``last`` activity and, as
        ``document_id``, the first ``name_header`` header its messages carry.
        """
        last = func.max(messages.c.accepted_at).label("last")
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(messages.c.correlation_id, func.count().label("count"), last)
                .where(self._starts(messages.c.correlation_id, prefix))
                .group_by(messages.c.correlation_id)
                .order_by(last.desc())
                .limit(limit)
            ).all()
            ids = [r.correlation_id for r in rows]
            names: dict[str, str] = {}
            for cid, headers in conn.execute(
                select(messages.c.correlation_id, messages.c.headers).where(
                    messages.c.correlation_id.in_(ids)
                )
            ):
                document = json.loads(headers or "{}").get(name_header)
                if document:
                    names.setdefault(cid, document)
        return [
            {
                "correlation_id": r.correlation_id,
                "document_id": names.get(r.correlation_id, ""),
                "messages": r.count,
                "last": r.last,
            }
            for r in rows
        ]

    def recent_documents(self, limit: int = 30) -> list[dict[str, Any]]:
        """The documents most recently active, as a plugin lists them (none without one)."""
        return self.host.list_documents(self, limit)

    def document_history(self, document_id: str) -> Any:
        """A document's life as the plugin that knows it tells it, or ``None``."""
        return self.host.describe_document(self, document_id)

    # --- syncs ---

    def sync_runs(self, limit: int = 30) -> list[dict[str, Any]]:
        """The latest sync runs without their items, newest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(sync_runs).order_by(sync_runs.c.id.desc()).limit(limit))
            return [_run(r._mapping) for r in rows]

    def sync_run(self, run_id: int) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(sync_runs).where(sync_runs.c.id == run_id)).first()
        return _run(row._mapping) if row else None

    def sync_items(
        self, run_id: int, *, action: str | None = None, offset: int = 0, limit: int = 200
    ) -> tuple[list[dict[str, Any]], dict[str, int]]:
        """A page of a run's items (``action`` alone if given) and the count by action."""
        query = select(sync_items).where(sync_items.c.run_id == run_id)
        if action:
            query = query.where(sync_items.c.action == action)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(sync_items.c.seq).offset(offset).limit(limit))
            items = []
            for r in rows:
                detail = json.loads(r.detail)
                items.append(
                    {
                        "key": r.key,
                        "action": r.action,
                        "status": r.status,
                        "fields": detail.get("fields") or {},
                        "before": detail.get("before"),
                        "reason": detail.get("reason"),
                    }
                )
            counts: dict[str, int] = dict(
                conn.execute(
                    select(sync_items.c.action, func.count())
                    .where(sync_items.c.run_id == run_id)
                    .group_by(sync_items.c.action)
                ).all()
            )
        return items, counts


def _run(row: Any) -> dict[str, Any]:
    run = dict(row)
    run["counts"] = json.loads(run["counts"] or "{}")
    return run
