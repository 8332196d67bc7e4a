"""The store's tables, as the Alembic migrations in ``lienthong/migrations`` make them.

Every module of the store reads and writes through these; times are aware UTC
in Python (:class:`UtcDateTime`, :func:`utcnow`), headers JSON text
(:func:`headers_text`, :func:`headers_of`).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)


class UtcDateTime(TypeDecorator[datetime]):
    """A time column read back as an aware UTC datetime, whatever the column keeps.

    The store's columns are ``timestamp without time zone`` holding UTC (SQLite
    has no time zones at all), and a few ``timezone=True`` ones: each keeps UTC
    its own way, so Python sees one form, aware UTC, and no caller converts.
    A naive value written is taken as UTC, as the store always read it.
    """

    impl = DateTime
    cache_ok = True

    def __init__(self, timezone: bool = False) -> None:
        super().__init__(timezone=timezone)
        self.timezone = timezone

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if self.timezone and dialect.name == "postgresql":
            return as_utc(value)  # timestamptz keeps the instant
        return naive_utc(value)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)


def as_utc(value: datetime) -> datetime:
    """``value`` as aware UTC; a naive value is taken as UTC (the store's old form)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def naive_utc(value: datetime) -> datetime:
    """``value`` as the naive UTC a ``timestamp without time zone`` column keeps."""
    return value if value.tzinfo is None else value.astimezone(UTC).replace(tzinfo=None)


def driver_value(value: Any, dialect: str) -> Any:
    """``value`` as a column keeps it, for SQL sent straight to the driver (no Core types).

    A time becomes naive UTC; on SQLite, the text SQLAlchemy reads back.
    """
    if not isinstance(value, datetime):
        return value
    naive = naive_utc(value)
    return naive.isoformat(" ", "microseconds") if dialect == "sqlite" else naive


metadata = MetaData()

messages = Table(
    "messages",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("correlation_id", String(64), nullable=False, index=True),
    Column("kind", String(100), nullable=False),
    Column("source", String(100), nullable=False),
    Column("source_key", String(300)),
    Column("headers", Text, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("accepted_at", UtcDateTime, nullable=False),
    # lienthong.model.MessageState: routed (has deliveries, or had each left out by
    # once_per) or parked (a dead letter).
    Column("state", String(20), nullable=False),
    UniqueConstraint("source", "source_key", name="uq_messages_source_key"),
)

deliveries = Table(
    "deliveries",
    metadata,
    # The id is the idempotency key: derived from message, route and endpoint.
    Column("id", String(64), primary_key=True),
    Column("message_id", String(64), ForeignKey("messages.id"), nullable=False, index=True),
    Column("route", String(100), nullable=False),
    Column("endpoint", String(100), nullable=False),
    Column("headers", Text, nullable=False),
    Column("body", LargeBinary, nullable=False),
    # lienthong.model.DeliveryState: pending -> delivered | dead
    Column("state", String(20), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("claimed_by", String(100)),
    Column("claimed_until", UtcDateTime),
    Column("enqueued_at", UtcDateTime),
    # Whose mark: the holder reaper clears a dead publisher's marks (0009).
    Column("enqueued_by", String(100)),
    Column("last_error", Text),
    Column("created_at", UtcDateTime, nullable=False),
    Column("delivered_at", UtcDateTime),
    # A route target's order_by: deliveries of one group to one endpoint go one at a
    # time, lowest order_seq first (compared as text); no group, no order.
    Column("order_group", String(200)),
    Column("order_seq", String(200)),
    # The mapping that made the body: its name, version hash (mapping_versions) and params.
    Column("mapping", String(300)),
    Column("mapping_hash", String(64)),
    Column("mapping_params", Text),
    Index("ix_deliveries_due", "state", "next_attempt_at"),
    Index("ix_deliveries_order", "endpoint", "order_group", "state"),
    Index("ix_deliveries_mapping", "mapping", "mapping_hash"),
)

# A route target's once_per: the first message with a value used it, by its delivery;
# a later message with that value gets no delivery to that endpoint by that route.
# The key is what decides: inserted in the accept's transaction, so of two workers
# accepting one value at once, one inserts and the other finds it taken.
once_per = Table(
    "once_per",
    metadata,
    Column("route", String(100), primary_key=True),
    Column("endpoint", String(100), primary_key=True),
    Column("value", String(200), primary_key=True),
    Column("message_id", String(64), nullable=False),
    Column("delivery_id", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

# Each mapping version's text (MappingVersion.to_text) by its hash, stored the
# first time a process uses it (last_used: the latest such first use; the
# deliveries say when it was last used exactly).
mapping_versions = Table(
    "mapping_versions",
    metadata,
    Column("hash", String(64), primary_key=True),
    Column("mapping", String(300), nullable=False, index=True),
    Column("text", Text, nullable=False),
    Column("first_used", UtcDateTime, nullable=False),
    Column("last_used", UtcDateTime, nullable=False),
)

# That a mapped message's body (in messages: the input it was mapped from, never
# changed) is kept bus.mapping_inputs_days for 'lienthong mapping diff'; one row
# per message, whatever its number of deliveries. A mark, not a copy of the body.
mapping_inputs = Table(
    "mapping_inputs",
    metadata,
    Column("message_id", String(64), ForeignKey("messages.id"), primary_key=True),
    Column("kept_at", UtcDateTime, nullable=False, index=True),
)

attempts = Table(
    "attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("delivery_id", String(64), ForeignKey("deliveries.id"), nullable=False, index=True),
    Column("number", Integer, nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("worker", String(100), nullable=False),
    # lienthong.model.Result: ok | transient | rejected
    Column("outcome", String(20), nullable=False),
    Column("error", Text),
)

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("message_id", String(64), ForeignKey("messages.id"), nullable=False, index=True),
    Column("delivery_id", String(64), ForeignKey("deliveries.id")),
    Column("endpoint", String(100)),
    # lienthong.model.Stage: accept | route | access | deliver
    Column("stage", String(20), nullable=False),
    Column("reason", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("replayed_at", UtcDateTime),
)

audit = Table(
    "audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("message_id", String(64), nullable=False, index=True),
    Column("at", UtcDateTime, nullable=False),
    Column("event", String(30), nullable=False),
    Column("endpoint", String(100)),
    Column("detail", Text, nullable=False, default=""),
    # The chain (lienthong.audit): this record's hash covers the previous one's.
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

# One row per endpoint whose circuit breaker opened, so 'lienthong status' in
# another process can show it.
endpoint_health = Table(
    "endpoint_health",
    metadata,
    Column("endpoint", String(100), primary_key=True),
    Column("state", String(20), nullable=False),
    Column("detail", Text, nullable=False),
    Column("worker", String(100), nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

# Per source endpoint: new messages accepted, and repeats (offered again, already
# accepted: not stored twice), for 'lienthong status'.
source_counts = Table(
    "source_counts",
    metadata,
    Column("endpoint", String(100), primary_key=True),
    Column("received", BigInteger, nullable=False),
    Column("repeats", BigInteger, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

# The live processes that hold claims, leases and runs, with their heartbeat
# (lienthong.holders).
holders = Table(
    "holders",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("host", String(200), nullable=False),
    Column("pid", Integer, nullable=False),
    # The pid's start time in clock ticks after boot (/proc), so a reused pid is not
    # taken for the dead process; None where the system does not say.
    Column("pid_start", BigInteger),
    Column("started_at", UtcDateTime(timezone=True), nullable=False),
    Column("heartbeat_at", UtcDateTime(timezone=True), nullable=False),
    # Seconds without a heartbeat after which this holder counts as dead: its own
    # setting (bus.heartbeat_timeout), so every reaper judges it the same way.
    Column("timeout_s", Float, nullable=False),
)


cursors = Table(
    "cursors",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)


def utcnow() -> datetime:
    """Now, aware UTC: the one time form the store's callers use."""
    return datetime.now(UTC)


def headers_text(headers: dict[str, str]) -> str:
    """Headers as the store keeps them: JSON text, ``{}`` when there are none."""
    return json.dumps(headers, ensure_ascii=False) if headers else "{}"


def headers_of(text: str) -> dict[str, str]:
    """Headers read back from their JSON text."""
    return json.loads(text) if text else {}
