"""Overdue: the documents without a status 06 (processing completed) after N days.

A clerk's daily question, both ways: of the documents this agency sent
through the axis, which recipients have not finished them; of those it
received (and took in), which it has not finished itself. The documents come
from the axis register (:mod:`.register`), their statuses from the bus's
store (every status shares its document's correlation id): a party is done
when a status 06 from it is there, whatever else it sent.
``lienthong edxml overdue --days N`` prints them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from lienthong.store import messages

from . import register
from .correlation import FROM_HEADER, KIND_HEADER, STATUS_HEADER
from .edxml import STATUS_MEANINGS

DONE = "06"
#: Correlation ids asked for in one query.
_BATCH = 500


@dataclass(frozen=True)
class Overdue:
    """A document some party has not finished: each such party with its last status."""

    document_id: str
    direction: str  # out: this agency sent it; in: this agency received it
    endpoint: str
    sender: str
    subject: str
    at: datetime  # when it crossed the axis endpoint (UTC)
    waiting: dict[str, str]  # party -> its last status code, "" when none came

    def as_dict(self) -> dict[str, Any]:
        return {
            "document_id": self.document_id,
            "direction": self.direction,
            "endpoint": self.endpoint,
            "sender": self.sender,
            "subject": self.subject,
            "at": self.at.isoformat(),
            "waiting": [
                {"party": party, "last_status": code, "meaning": STATUS_MEANINGS.get(code, "")}
                for party, code in self.waiting.items()
            ],
        }

    def lines(self, now: datetime) -> list[str]:
        days = (now - self.at).days
        way = f"sent to {len(self.waiting)} waiting" if self.direction == "out" else "received"
        head = f"{self.document_id}  ({way}, {days} day(s) ago via {self.endpoint})"
        lines = [head, f"    {self.subject}"] if self.subject else [head]
        for party, code in self.waiting.items():
            last = f"last status {code} ({STATUS_MEANINGS.get(code, '?')})" if code else "no status"
            lines.append(f"    {party}: {last}")
        return lines


def overdue(engine: Engine, days: float, now: datetime | None = None) -> list[Overdue]:
    """The documents that crossed an axis endpoint over ``days`` ago and lack a 06 from someone."""
    moment = now or datetime.now(UTC)
    cutoff = moment - timedelta(days=days)
    entries = register.before(engine, cutoff)
    statuses = _statuses(engine, {e.correlation_id for e in entries})
    found = []
    for entry in entries:
        expected = entry.recipients if entry.direction == "out" else (entry.organ_id,)
        last: dict[str, str] = {}
        done: set[str] = set()
        for sender, code in statuses.get(entry.correlation_id, []):
            last[sender] = code
            if code == DONE:
                done.add(sender)
        waiting = {party: last.get(party, "") for party in expected if party not in done}
        if waiting:
            found.append(
                Overdue(
                    document_id=entry.document_id,
                    direction=entry.direction,
                    endpoint=entry.endpoint,
                    sender=entry.sender,
                    subject=entry.subject,
                    at=entry.at,
                    waiting=waiting,
                )
            )
    return found


def _statuses(engine: Engine, correlations: Iterable[str]) -> dict[str, list[tuple[str, str]]]:
    """Each document's statuses (sender, code), in the order the bus took them."""
    wanted = sorted(correlations)
    found: dict[str, list[tuple[str, str]]] = {}
    with engine.connect() as conn:
        for start in range(0, len(wanted), _BATCH):
            rows = conn.execute(
                select(messages.c.correlation_id, messages.c.headers)
                .where(messages.c.correlation_id.in_(wanted[start : start + _BATCH]))
                .where(messages.c.state != "parked")
                .order_by(messages.c.accepted_at, messages.c.created_at)
            )
            for correlation, text in rows:
                headers = json.loads(text)
                if headers.get(KIND_HEADER) == "status" and headers.get(STATUS_HEADER):
                    found.setdefault(correlation, []).append(
                        (headers.get(FROM_HEADER, ""), headers[STATUS_HEADER])
                    )
    return found
