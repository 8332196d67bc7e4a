"""Everything the console reads, in one place: an adapter from the pages to the read models.

The pages never touch the tables: each reads through a method here, which
asks the store's read models (:mod:`lienthong.store.reads`), the scheduler's
``jobs_overview`` or the sync's stored runs (:mod:`lienthong.sync`), the same
code the CLI reads through. What is left here is the pages' own shape: a
filter from a form, an endpoint's line, a page of a list.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from .. import audit as audit_chain
from ..config import Config
from ..host import PluginHost
from ..message import Message
from ..model import Stage
from ..scheduler import JobOverview, jobs_overview
from ..store import Store, audit
from ..store.reads import DeadLetterQuery, age_seconds
from ..sync import Item, Report, load_report, recent_runs, run_items
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

    def query(self) -> DeadLetterQuery:
        """The filter as the read models take it: Hanoi days as UTC bounds."""
        return DeadLetterQuery(
            endpoint=self.endpoint or None,
            stage=self.stage or None,
            reason=self.reason or None,
            since=_utc_start(self.since) if self.since else None,
            until=_utc_start(self.until + timedelta(days=1)) if self.until else None,
        )


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
    """The console's reads over one store and the config that names its endpoints and jobs.

    ``engine`` and ``config`` are there for the plugins that tell documents
    (``lienthong_list_documents``, ``lienthong_describe_document``).
    """

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
        waiting = self.store.waiting_by_endpoint()
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
                    lag_seconds=age_seconds(oldest) if oldest else None,
                    circuit=circuit["state"] if circuit else "closed",
                    circuit_detail=circuit["detail"] if circuit else "",
                    dead_letters=waiting.get(name, 0),
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
        return self.store.dead_letter_page(chosen.query(), before=before, limit=limit)

    def count_dead_letters(self, chosen: DeadLetterFilter) -> tuple[int, int | None]:
        """How many dead letters match, and the newest one's id (an action's upper bound)."""
        return self.store.count_dead_letters(chosen.query())

    def dead_letter_ids(self, chosen: DeadLetterFilter, upto: int) -> list[int]:
        """The ids an action on a filter means: those matching, up to the one counted last."""
        return self.store.dead_letter_ids(chosen.query(), upto)

    def waiting_among(self, ids: list[int]) -> list[int]:
        """Which of ``ids`` are dead letters still waiting (a selection posted from a page)."""
        return self.store.waiting_among(ids)

    def dead_letter_refs(self, ids: list[int]) -> dict[int, tuple[str, str | None]]:
        """Each dead letter's message id and endpoint, for the audit records of an action."""
        return self.store.dead_letter_refs(ids)

    def dead_letter(self, dead_id: int) -> dict[str, Any] | None:
        """One dead letter with its message, every attempt, and the body its delivery carried."""
        found = self.store.dead_letter(dead_id)
        if found is None or not found["delivery_id"]:
            return found
        sent = self.store.delivery(found["delivery_id"])
        found["delivery_body"] = sent["body"] if sent else None
        return found

    def endpoints_with_dead_letters(self) -> list[str]:
        return self.store.dead_letter_endpoints()

    # --- messages ---

    def message(self, message_id: str) -> Message | None:
        return self.store.message(message_id)

    def trace(self, message_id: str) -> dict[str, Any] | None:
        """Every hop of a message, given its id or a unique beginning of it; 200 correlated."""
        return self.store.trace(message_id, correlated_limit=200)

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
        return self.store.recent_correlations(prefix, name_header, limit)

    def recent_documents(self, limit: int = 30) -> list[dict[str, Any]]:
        """The documents most recently active, as a plugin lists them (none without one)."""
        return self.host.list_documents(self, limit)

    def document_history(self, document_id: str) -> Any:
        """A document's life as the plugin that knows it tells it, or ``None``."""
        return self.host.describe_document(self, document_id)

    # --- syncs ---

    def sync_runs(self, limit: int = 30) -> list[Report]:
        """The latest sync runs without their items, newest first."""
        return recent_runs(self.engine, None, limit)

    def sync_run(self, run_id: int) -> Report | None:
        """One sync run without its items (a page shows them a page at a time)."""
        return load_report(self.engine, run_id, with_items=False)

    def sync_items(
        self, run_id: int, *, action: str | None = None, offset: int = 0, limit: int = 200
    ) -> tuple[list[Item], dict[str, int]]:
        """A page of a run's items (``action`` alone if given) and the count by action."""
        return run_items(self.engine, run_id, action=action, offset=offset, limit=limit)
