"""A document's history: its life in one agency's store, in time order.

Built from the store's messages, audit trail and dead letters that share the
document's correlation id (see :mod:`.correlation`): when the document came in
(from the agency's DMS or from the axis), when it was sent to the axis and
delivered on, each status 01…06, 13, 15, 16 with who sent it, the status 02
refusals the axis adapter sent, retries and dead letters; then from the axis
register (:mod:`.register`) the documents it revokes, updates or replaces, or
that do so to it, and each party's statuses in order (its life).
``lienthong edxml history DOCUMENT_ID`` prints it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Protocol

from . import refusal, register
from .correlation import (
    DOCUMENT_ID_HEADER,
    FROM_HEADER,
    KIND_HEADER,
    PREFIX,
    STATUS_HEADER,
    correlation_id,
)
from .edxml import STATUS_MEANINGS

#: Audit events the history shows after a message's arrival (``routed`` is noise
#: here, ``dead-lettered`` comes from the dead letters, which carry their id).
_HOPS = {"delivered", "retry", "replayed"}


class _Store(Protocol):
    engine: Any

    def messages_by_correlation(self, correlation_id: str) -> list[dict[str, Any]]: ...


#: How a document is linked to another by its business: (this one's relation, the other's).
RELATIONS = {
    "revoke": ("revokes", "revoked by"),
    "update": ("updates", "updated by"),
    "replace": ("replaces", "replaced by"),
}


@dataclass(frozen=True)
class Event:
    """One step of a document's life."""

    at: datetime
    event: str  # document, status, sent, delivered, retry, replayed, dead-letter, refused
    message_id: str
    kind: str = ""  # document or status: what the message is
    status_code: str = ""
    meaning: str = ""
    sender: str = ""
    endpoint: str = ""
    detail: str = ""
    dead_letter_id: int | None = None
    party: str = ""  # a refusal's: the agency that refused

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["at"] = self.at.isoformat()
        return data

    def line(self) -> str:
        """The event as one line of ``lienthong edxml history``."""
        when = self.at.strftime("%Y-%m-%d %H:%M:%S")
        if self.event == "status":
            what = f"status {self.status_code}"
            text = f"from {self.sender or '?'} via {self.endpoint}: {self.meaning}"
        elif self.event == "document":
            what = "document"
            text = f"from {self.sender or '?'} via {self.endpoint}"
        elif self.event in ("sent", "delivered"):
            what = self.event
            subject = self.kind
            if self.kind == "status":
                subject = f"status {self.status_code} from {self.sender or '?'}"
            text = f"{subject} to {self.endpoint} ({self.detail})"
        elif self.event == "refused":
            what = "status 02"
            text = f"sent to {self.sender} via {self.endpoint}: {self.meaning}: {self.detail}"
        elif self.event == "dead-letter":
            what = "dead letter"
            where = f" at {self.endpoint}" if self.endpoint else ""
            text = (
                f"#{self.dead_letter_id}{where}: {self.detail} "
                f"(see 'lienthong dlq show {self.dead_letter_id}')"
            )
        else:
            what = self.event
            text = f"{self.endpoint or '-'}: {self.detail}"
        return f"{when}  {what:<11}  {text}"


@dataclass(frozen=True)
class Link:
    """Another document this one revokes, updates or replaces, or that does so to this one."""

    relation: str  # revokes, updates, replaces, revoked by, updated by, replaced by
    document_id: str
    sender: str
    at: datetime
    subject: str = ""

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["at"] = self.at.isoformat()
        return data

    def line(self) -> str:
        return f"{self.relation} {self.document_id} (from {self.sender}, {self.at:%Y-%m-%d %H:%M})"


@dataclass(frozen=True)
class Step:
    """One status a party sent about the document, and when the bus took it."""

    code: str
    at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "meaning": STATUS_MEANINGS.get(self.code, ""),
            "at": self.at.isoformat(),
        }


@dataclass
class History:
    """Everything one store knows about one document."""

    document_id: str
    correlation_id: str
    messages: int
    events: list[Event]
    links: list[Link] = field(default_factory=list)
    #: Each party's statuses in time order: the recipients of a document sent
    #: (those without any status too), and this agency for a document received.
    life: dict[str, list[Step]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "document_id": self.document_id,
            "correlation_id": self.correlation_id,
            "messages": self.messages,
            "links": [link.as_dict() for link in self.links],
            "life": {party: [s.as_dict() for s in steps] for party, steps in self.life.items()},
            "events": [e.as_dict() for e in self.events],
        }

    def life_lines(self) -> list[str]:
        """One line per party: its statuses in order, with times (UTC)."""
        lines = []
        for party, steps in self.life.items():
            shown = " -> ".join(f"{s.code} {s.at:%Y-%m-%d %H:%M:%S}" for s in steps)
            lines.append(f"{party:<15} {shown or 'no status yet'}")
        return lines


def history(store: _Store, document_id: str, *, axis_endpoints: set[str]) -> History:
    """The history of ``document_id`` (or of an ``edxml-…`` correlation id) in ``store``.

    Deliveries to an endpoint in ``axis_endpoints`` show as ``sent``, others as
    ``delivered``.
    """
    given = document_id.strip()
    is_correlation = given.startswith(PREFIX) and len(given) == len(PREFIX) + 32
    correlation = given if is_correlation else correlation_id(given)
    rows = store.messages_by_correlation(correlation)
    events: list[Event] = []
    for row in rows:
        headers = row["headers"]
        kind = headers.get(KIND_HEADER, "")
        code = headers.get(STATUS_HEADER, "")
        if is_correlation and headers.get(DOCUMENT_ID_HEADER):
            given = headers[DOCUMENT_ID_HEADER]
        base = {
            "message_id": row["id"],
            "kind": kind or row["kind"],
            "status_code": code,
            "sender": headers.get(FROM_HEADER) or headers.get("from", ""),
        }
        meaning = STATUS_MEANINGS.get(code, f"unknown status code {code!r}") if code else ""
        events.append(
            Event(
                at=row["accepted_at"],
                event="status" if kind == "status" else "document",
                endpoint=row["source"],
                meaning=meaning,
                **base,
            )
        )
        for hop in row["hops"]:
            if hop["event"] not in _HOPS:
                continue
            name = hop["event"]
            if name == "delivered" and hop["endpoint"] in axis_endpoints:
                name = "sent"
            events.append(
                Event(
                    at=hop["at"],
                    event=name,
                    endpoint=hop["endpoint"] or "",
                    detail=hop["detail"],
                    **base,
                )
            )
        for dead in row["dead_letters"]:
            events.append(
                Event(
                    at=dead["created_at"],
                    event="dead-letter",
                    endpoint=dead["endpoint"] or "",
                    detail=f"({dead['stage']}) {dead['reason']}",
                    dead_letter_id=dead["id"],
                    **base,
                )
            )
    links, parties = _register(store.engine, given, correlation)
    for refused in refusal.of_correlation(store.engine, correlation):
        events.append(
            Event(
                at=refused.sent_at,
                event="refused",
                message_id="",
                kind="status",
                status_code="02",
                meaning=STATUS_MEANINGS["02"],
                sender=refused.sender,
                endpoint=refused.endpoint,
                detail=refused.reason,
                party=refused.organ_id,
            )
        )
    # Stable: events at the same instant keep their message's order.
    events.sort(key=lambda e: e.at)
    life: dict[str, list[Step]] = {party: [] for party in parties}
    for e in events:
        if e.event == "status" and e.status_code:
            life.setdefault(e.sender or "?", []).append(Step(e.status_code, e.at))
        elif e.event == "refused":
            life.setdefault(e.party, []).append(Step("02", e.at))
    return History(given, correlation, len(rows), events, links, life)


def _register(engine: Any, document_id: str, correlation: str) -> tuple[list[Link], list[str]]:
    """The document's links to others, and the parties expected to answer it."""
    entries = register.of_correlation(engine, correlation)
    links: list[Link] = []
    parties: list[str] = []
    for entry in entries:
        relation = RELATIONS.get(entry.business)
        if relation is not None:
            links.extend(
                Link(relation[0], other, entry.sender, entry.at) for other in entry.concerns
            )
        expected = entry.recipients if entry.direction == "out" else (entry.organ_id,)
        parties.extend(p for p in expected if p not in parties)
    for entry in register.concerning(engine, document_id):
        relation = RELATIONS.get(entry.business)
        if relation is not None:
            links.append(
                Link(relation[1], entry.document_id, entry.sender, entry.at, entry.subject)
            )
    return list(dict.fromkeys(links)), parties
