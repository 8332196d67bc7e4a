"""A document's history: its life in one agency's store, in time order.

Built from the store's messages, audit trail and dead letters that share the
document's correlation id (see :mod:`.correlation`): when the document came in
(from the agency's DMS or from the axis), when it was sent to the axis and
delivered on, each status 01…06 with who sent it, retries and dead letters.
``lienthong edxml history DOCUMENT_ID`` prints it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

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
    def messages_by_correlation(self, correlation_id: str) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class Event:
    """One step of a document's life."""

    at: datetime
    event: str  # document, status, sent, delivered, retry, replayed, dead-letter
    message_id: str
    kind: str = ""  # document or status: what the message is
    status_code: str = ""
    meaning: str = ""
    sender: str = ""
    endpoint: str = ""
    detail: str = ""
    dead_letter_id: int | None = None

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


@dataclass
class History:
    """Everything one store knows about one document."""

    document_id: str
    correlation_id: str
    messages: int
    events: list[Event]

    def as_dict(self) -> dict[str, Any]:
        return {
            "document_id": self.document_id,
            "correlation_id": self.correlation_id,
            "messages": self.messages,
            "events": [e.as_dict() for e in self.events],
        }


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


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
                at=_utc(row["accepted_at"]),
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
                    at=_utc(hop["at"]),
                    event=name,
                    endpoint=hop["endpoint"] or "",
                    detail=hop["detail"],
                    **base,
                )
            )
        for dead in row["dead_letters"]:
            events.append(
                Event(
                    at=_utc(dead["created_at"]),
                    event="dead-letter",
                    endpoint=dead["endpoint"] or "",
                    detail=f"({dead['stage']}) {dead['reason']}",
                    dead_letter_id=dead["id"],
                    **base,
                )
            )
    # Stable: events at the same instant keep their message's order.
    events.sort(key=lambda e: e.at)
    return History(given, correlation, len(rows), events)
