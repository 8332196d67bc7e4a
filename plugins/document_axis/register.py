"""The axis register: every document that crossed one of this bus's axis endpoints.

The axis adapter writes a row when it takes a document in (and the bus did
not park it) and when it sends one: who sent it to whom, what it does (new,
revoke, update, replace) and which earlier documents it concerns. The
messages themselves stay in the bus's store; this table is the index a clerk's
questions need and the store cannot answer by correlation alone:

- which documents revoked, updated or replaced this one (``edxml history``);
- which documents have no status 06 after N days (``edxml overdue``).

The table (``axis_documents``) is created by the store's migrations
(``0006_axis_register``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Column, MetaData, String, Table, Text, select
from sqlalchemy.engine import Connection, Engine

from lienthong.store import UtcDateTime

from .correlation import CONCERNS_SEPARATOR

metadata = MetaData()

documents = Table(
    "axis_documents",
    metadata,
    # One row per document (by its sender and DocumentId) and way through an endpoint:
    # the same document fetched again, or sent twice by its sender, is one entry.
    Column("endpoint", String(100), primary_key=True),
    Column("direction", String(3), primary_key=True),  # in | out
    Column("sender", String(64), primary_key=True),
    Column("document_id", String(300), primary_key=True),
    Column("message_id", String(64), nullable=False),  # the first message that carried it
    Column("organ_id", String(64), nullable=False),  # this endpoint's agency
    Column("correlation_id", String(64), nullable=False, index=True),
    Column("recipients", Text, nullable=False),  # comma-separated
    Column("business", String(16), nullable=False),
    Column("concerns", Text, nullable=False),  # DocumentIds joined by CONCERNS_SEPARATOR
    Column("subject", Text, nullable=False),
    Column("at", UtcDateTime, nullable=False, index=True),
)


@dataclass(frozen=True)
class Entry:
    """One document through one axis endpoint, in or out."""

    message_id: str
    endpoint: str
    direction: str
    organ_id: str
    document_id: str
    correlation_id: str
    sender: str
    recipients: tuple[str, ...]
    business: str
    concerns: tuple[str, ...]
    subject: str
    at: datetime

    def row(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "endpoint": self.endpoint,
            "direction": self.direction,
            "organ_id": self.organ_id,
            "document_id": self.document_id,
            "correlation_id": self.correlation_id,
            "sender": self.sender,
            "recipients": ",".join(self.recipients),
            "business": self.business,
            "concerns": CONCERNS_SEPARATOR.join(self.concerns),
            "subject": self.subject,
            "at": self.at,
        }

    @classmethod
    def from_row(cls, row: Any) -> Entry:
        return cls(
            message_id=row.message_id,
            endpoint=row.endpoint,
            direction=row.direction,
            organ_id=row.organ_id,
            document_id=row.document_id,
            correlation_id=row.correlation_id,
            sender=row.sender,
            recipients=tuple(r for r in row.recipients.split(",") if r),
            business=row.business,
            concerns=tuple(c for c in row.concerns.split(CONCERNS_SEPARATOR) if c),
            subject=row.subject,
            at=row.at,
        )


def insert_ignoring(conn: Connection, table: Table, rows: Iterable[dict[str, Any]]) -> None:
    """Insert rows, leaving any whose key is already there (a redelivery) as it was."""
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    for row in rows:
        conn.execute(dialect.insert(table).values(**row).on_conflict_do_nothing())


def record(engine: Engine, entries: Sequence[Entry]) -> None:
    """Add documents to the register; one that is already there is left alone."""
    if entries:
        with engine.begin() as conn:
            insert_ignoring(conn, documents, (e.row() for e in entries))


def concerning(engine: Engine, document_id: str) -> list[Entry]:
    """The documents that revoke, update or replace ``document_id``, oldest first."""
    pattern = "%" + document_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    with engine.connect() as conn:
        rows = conn.execute(
            select(documents)
            .where(documents.c.concerns.like(pattern, escape="\\"))
            .order_by(documents.c.at)
        ).all()
    found = [Entry.from_row(r) for r in rows]
    return [e for e in found if document_id in e.concerns]


def of_correlation(engine: Engine, correlation_id: str) -> list[Entry]:
    """The register's entries of one document (by its correlation id), oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(documents)
            .where(documents.c.correlation_id == correlation_id)
            .order_by(documents.c.at)
        ).all()
    return [Entry.from_row(r) for r in rows]


def before(engine: Engine, cutoff: datetime) -> list[Entry]:
    """Every document that crossed an axis endpoint before ``cutoff``, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(documents).where(documents.c.at < cutoff).order_by(documents.c.at)
        ).all()
    return [Entry.from_row(r) for r in rows]
