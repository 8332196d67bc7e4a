"""The tamper-evident audit trail: every hop's record is chained by hash to the one before.

Each record's ``hash`` is SHA-256 over the previous record's hash and this
record's own fields, so altering a record breaks its own hash, and removing or
inserting one breaks the link of the next. :func:`verify` walks the chain in id
order and names the first record that does not fit.

Writers append under a lock (a transaction-level advisory lock on PostgreSQL;
SQLite has one writer at a time anyway), so concurrent workers extend one chain.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.engine import Connection, Engine

GENESIS = "0" * 64
_LOCK_KEY = 0x6C74_6175  # "ltau": one advisory lock for the audit chain


def record_hash(previous: str, row: dict[str, Any]) -> str:
    """The hash of one record, given the previous record's hash."""
    at = row["at"]
    stamp = at.isoformat(" ", "microseconds") if isinstance(at, datetime) else str(at)
    fields = [
        previous,
        row["message_id"],
        stamp,
        row["event"],
        row.get("endpoint") or "",
        row.get("detail") or "",
    ]
    return hashlib.sha256("\x1f".join(fields).encode("utf-8")).hexdigest()


def chain(conn: Connection, table: Any, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Give ``rows`` their ``prev_hash`` and ``hash``, continuing the stored chain.

    Call inside the transaction that inserts them; on PostgreSQL this takes the
    chain's lock until that transaction ends.
    """
    if not rows:
        return []
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    last = conn.execute(
        select(table.c.hash).order_by(table.c.id.desc()).limit(1)
    ).scalar_one_or_none()
    previous = last or GENESIS
    chained = []
    for row in rows:
        digest = record_hash(previous, row)
        chained.append({**row, "prev_hash": previous, "hash": digest})
        previous = digest
    return chained


@dataclass(frozen=True)
class Verdict:
    """What :func:`verify` found."""

    records: int
    broken_at: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.broken_at is None


def verify(engine: Engine, table: Any) -> Verdict:
    """Walk the chain in id order; name the first record altered, removed or inserted."""
    previous = GENESIS
    count = 0
    with engine.connect() as conn:
        rows: Iterable[Any] = conn.execute(select(table).order_by(table.c.id)).mappings()
        for row in rows:
            count += 1
            if row["prev_hash"] != previous:
                return Verdict(
                    count,
                    row["id"],
                    (
                        f"record #{row['id']} does not follow the record before it: a record "
                        "was removed or inserted just before it"
                    ),
                )
            if record_hash(previous, dict(row)) != row["hash"]:
                return Verdict(
                    count,
                    row["id"],
                    (
                        f"record #{row['id']} ({row['event']} of message {row['message_id']}) "
                        "was altered after it was written"
                    ),
                )
            previous = row["hash"]
    return Verdict(count)
