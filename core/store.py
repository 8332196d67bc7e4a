"""The store: messages, deliveries and their attempts, dead letters, cursors, audit.

The store is the bus's source of truth and its durable queue: a message is
accepted when its row and its deliveries are committed, and a delivery is done
when its row says so. Queues (kombu) only say *which* delivery to work on next,
so a lost or duplicated queue entry never loses or duplicates an effect.

SQLite (the embedded default) and PostgreSQL (production) run the same code;
the schema comes from the Alembic migrations in ``migrations/``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    create_engine,
    delete,
    event,
    exists,
    func,
    insert,
    make_url,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError

from . import audit as audit_module
from .errors import ConfigError, RejectedError, StoreUnavailable
from .message import Message
from .model import Delivery, DeliveryState, Intake, MessageState, Outcome, Outgoing, Result

if TYPE_CHECKING:
    from .mapping import MappingVersion

log = logging.getLogger(__name__)

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
    Column("created_at", DateTime, nullable=False),
    Column("accepted_at", DateTime, nullable=False),
    # lienthong.model.MessageState: routed (has deliveries) or parked (a dead letter).
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
    Column("next_attempt_at", DateTime, nullable=False),
    Column("claimed_by", String(100)),
    Column("claimed_until", DateTime),
    Column("enqueued_at", DateTime),
    Column("last_error", Text),
    Column("created_at", DateTime, nullable=False),
    Column("delivered_at", DateTime),
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

# Each mapping version's text (MappingVersion.to_text) by its hash, stored the
# first time a process uses it (last_used: the latest such first use; the
# deliveries say when it was last used exactly).
mapping_versions = Table(
    "mapping_versions",
    metadata,
    Column("hash", String(64), primary_key=True),
    Column("mapping", String(300), nullable=False, index=True),
    Column("text", Text, nullable=False),
    Column("first_used", DateTime, nullable=False),
    Column("last_used", DateTime, nullable=False),
)

# The body a mapped message was mapped from, kept bus.mapping_inputs_days for
# 'lienthong mapping diff'; one row per message, whatever its number of deliveries.
mapping_inputs = Table(
    "mapping_inputs",
    metadata,
    Column("message_id", String(64), ForeignKey("messages.id"), primary_key=True),
    Column("kept_at", DateTime, nullable=False, index=True),
    Column("body", LargeBinary, nullable=False),
)

attempts = Table(
    "attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("delivery_id", String(64), ForeignKey("deliveries.id"), nullable=False, index=True),
    Column("number", Integer, nullable=False),
    Column("at", DateTime, nullable=False),
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
    Column("created_at", DateTime, nullable=False),
    Column("replayed_at", DateTime),
)

audit = Table(
    "audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("message_id", String(64), nullable=False, index=True),
    Column("at", DateTime, nullable=False),
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
    Column("updated_at", DateTime, nullable=False),
)

# Per source endpoint: new messages accepted, and repeats (offered again, already
# accepted: not stored twice), for 'lienthong status'.
source_counts = Table(
    "source_counts",
    metadata,
    Column("endpoint", String(100), primary_key=True),
    Column("received", BigInteger, nullable=False),
    Column("repeats", BigInteger, nullable=False),
    Column("updated_at", DateTime, nullable=False),
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
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("heartbeat_at", DateTime(timezone=True), nullable=False),
    # Seconds without a heartbeat after which this holder counts as dead: its own
    # setting (bus.heartbeat_timeout), so every reaper judges it the same way.
    Column("timeout_s", Float, nullable=False),
)


cursors = Table(
    "cursors",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)


def utcnow() -> datetime:
    """Naive UTC, the one time form the store keeps (SQLite has no time zones)."""
    return datetime.now(UTC).replace(tzinfo=None)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers (status, dlq list) work beside the bus; NORMAL sync is
    # durable against process crashes, which is what the bus promises.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    # Checkpoints fsync; the bus runs them on a thread of their own (Store.checkpoint)
    # so a commit never waits for the disk. The last connection to close checkpoints too.
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()


def _private_file(path: Path) -> None:
    """Create the SQLite file readable by its owner only, before SQLite does.

    The store holds every message; SQLite gives its -wal and -shm files the
    database file's mode, so they are private too. An existing file keeps its
    mode (an admin may have chosen it), with a warning when others may read it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            log.warning(
                "the store %s can be read by other users (mode %04o), and it holds every "
                "message. Hint: chmod 600 %s (and its -wal and -shm files)",
                path,
                mode,
                path,
            )


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite files get their folder, owner-only mode and safe pragmas."""
    try:
        parsed = make_url(url)
        engine = create_engine(url, pool_pre_ping=True, future=True)
    except Exception as exc:
        raise ConfigError([f"bus.store: cannot use database URL ({exc})"]) from exc
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        try:
            _private_file(Path(parsed.database))
        except OSError as exc:
            raise ConfigError(
                [
                    f"bus.store: cannot create the SQLite file {parsed.database}: "
                    f"{exc.strerror}. Hint: check the folder exists and may be written"
                ]
            ) from exc
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _dumps(headers: dict[str, str]) -> str:
    return json.dumps(headers, ensure_ascii=False) if headers else "{}"


def _headers(text: str) -> dict[str, str]:
    return json.loads(text) if text else {}


class Store:
    """The bus's tables behind the operations the bus, the workers and the CLI need."""

    def __init__(self, engine: Engine, audit_key: bytes | None = None) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self.audit_key = audit_key  # HMAC key of the audit chain (lienthong.audit)
        # Whether mapped messages' inputs are kept (bus.mapping_inputs_days > 0).
        self.keep_mapping_inputs = True
        # Hashes of the mapping versions this process has stored.
        self._versions_stored: set[str] = set()

    def checkpoint(self) -> None:
        """Copy the SQLite write-ahead log into the database file, without blocking writers."""
        if self.dialect == "sqlite":
            with self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    # --- schema ---

    def upgrade(self) -> None:
        """Bring the schema to the newest migration (``lienthong db upgrade``)."""
        from .migrations import upgrade

        try:
            upgrade(self.engine)
        except OperationalError as exc:
            raise StoreUnavailable(store_error(self.engine, "could not be upgraded", exc)) from exc

    # --- accept ---

    def _insert_ignoring_duplicates(self, conn: Connection, row: dict[str, Any]) -> bool:
        """Insert one message unless its source key is stored; True if it was new.

        Driver-level SQL, as in :meth:`_insert_many`: building a Core statement per
        message cost several times the insert itself (every polled item has a key).
        """
        sqlite = self.dialect == "sqlite"
        mark = "?" if sqlite else "%s"
        sql = (
            f"INSERT INTO messages ({', '.join(row)}) VALUES ({', '.join([mark] * len(row))}) "
            "ON CONFLICT DO NOTHING RETURNING id"  # rowcount is not reliable on every driver
        )
        values = tuple(
            v.isoformat(" ", "microseconds") if sqlite and isinstance(v, datetime) else v
            for v in row.values()
        )
        return conn.exec_driver_sql(sql, values).first() is not None

    def _insert_many(self, conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
        """Insert rows with the driver's executemany: the hot path skips Core's per-value work.

        Rows must carry every column of ``table`` except autoincrement keys.
        SQLite gets times as text in the layout SQLAlchemy reads back.
        """
        if not rows:
            return
        targets = [c for c in table.columns if not (c.primary_key and c.autoincrement is True)]
        columns = [c.name for c in targets]
        sqlite = self.dialect == "sqlite"
        mark = "?" if sqlite else "%s"
        placeholders = ", ".join([mark] * len(columns))
        sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({placeholders})"
        values = [[row.get(name) for name in columns] for row in rows]
        if sqlite:
            times = [i for i, c in enumerate(targets) if isinstance(c.type, DateTime)]
            shown: dict[datetime, str] = {}  # a batch shares a handful of timestamps
            for record in values:
                for i in times:
                    value = record[i]
                    if value is not None:
                        text = shown.get(value)
                        if text is None:
                            text = shown[value] = value.isoformat(" ", "microseconds")
                        record[i] = text
        conn.exec_driver_sql(sql, [tuple(record) for record in values])

    def _append_audit(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        """Append records to the audit trail, chained by hash (see lienthong.audit).

        Called last in a transaction: on PostgreSQL the chain's lock is held
        from here to the commit.
        """
        if rows:
            self._insert_many(conn, audit, audit_module.chain(conn, audit, rows, self.audit_key))

    def accept(
        self,
        intakes: Sequence[Intake],
        *,
        enqueued: bool = False,
        claim: tuple[str, timedelta] | None = None,
    ) -> list[tuple[Intake, bool]]:
        """Store messages with their deliveries or dead letters, all in one transaction.

        Returns each intake with ``True`` when it was new, ``False`` when the
        store already had its source key (a redelivery by the source).
        ``enqueued`` notes that the caller publishes the deliveries to a queue
        right after the commit; if it never does, the relay does after a while.
        ``claim`` (worker, lease) claims the new deliveries for the caller, which
        sends them straight from memory; if it dies, the lease runs out.
        """
        now = utcnow()
        claimed_by, claimed_until = (claim[0], now + claim[1]) if claim else (None, None)
        results: list[tuple[Intake, bool]] = []
        delivery_rows: list[dict[str, Any]] = []
        dead_rows: list[dict[str, Any]] = []
        audit_rows: list[dict[str, Any]] = []
        input_rows: list[dict[str, Any]] = []
        versions: dict[str, MappingVersion] = {}
        with self._begin() as conn:
            plain_rows: list[dict[str, Any]] = []
            for intake in intakes:
                m = intake.message
                row = {
                    "id": m.id,
                    "correlation_id": m.correlation_id,
                    "kind": m.kind,
                    "source": m.source,
                    "source_key": m.source_key,
                    "headers": _dumps(m.headers),
                    "body": m.body,
                    "created_at": m.created_at.astimezone(UTC).replace(tzinfo=None),
                    "accepted_at": now,
                    "state": MessageState.PARKED if intake.parked else MessageState.ROUTED,
                }
                if m.source_key is None:
                    plain_rows.append(row)
                elif not self._insert_ignoring_duplicates(conn, row):
                    results.append((intake, False))
                    continue
                results.append((intake, True))
                # Accepting and routing are one transaction, so one hop: the record
                # names where the message goes.
                routed = "; ".join(f"to {o.endpoint} by route {o.route}" for o in intake.outgoing)
                audit_rows.append(
                    {
                        "message_id": m.id,
                        "at": now,
                        "event": "accepted",
                        "endpoint": m.source,
                        "detail": f"{m.kind}, {len(m.body)} bytes"
                        + (f"; {routed}" if routed else ""),
                    }
                )
                if intake.parked:
                    dead_rows.append(
                        {
                            "message_id": m.id,
                            "delivery_id": None,
                            "endpoint": None,
                            "stage": intake.stage,
                            "reason": intake.parked,
                            "created_at": now,
                        }
                    )
                    audit_rows.append(
                        {
                            "message_id": m.id,
                            "at": now,
                            "event": "dead-lettered",
                            "endpoint": None,
                            "detail": intake.parked,
                        }
                    )
                mapped = False
                for out in intake.outgoing:
                    version = out.mapping
                    if version is not None:
                        mapped = True
                        if version.hash not in self._versions_stored:
                            versions[version.hash] = version
                    delivery_rows.append(
                        {
                            "id": out.key,
                            "message_id": m.id,
                            "route": out.route,
                            "endpoint": out.endpoint,
                            "headers": _dumps(out.headers),
                            "body": out.body,
                            "state": DeliveryState.PENDING,
                            "attempts": 0,
                            "next_attempt_at": now,
                            "created_at": now,
                            "enqueued_at": now if enqueued else None,
                            # An ordered delivery waits for the store's check of its group.
                            "claimed_by": None if out.order else claimed_by,
                            "claimed_until": None if out.order else claimed_until,
                            "order_group": out.order[0] if out.order else None,
                            "order_seq": out.order[1] if out.order else None,
                            "mapping": version.name if version else None,
                            "mapping_hash": version.hash if version else None,
                            "mapping_params": _dumps(out.params) if version else None,
                        }
                    )
                if mapped and self.keep_mapping_inputs:
                    input_rows.append({"message_id": m.id, "kept_at": now, "body": m.body})
            if plain_rows:
                self._insert_many(conn, messages, plain_rows)
            if delivery_rows:
                self._insert_many(conn, deliveries, delivery_rows)
            if input_rows:
                self._insert_many(conn, mapping_inputs, input_rows)
            stored_versions = self._store_versions(conn, versions.values(), now)
            if dead_rows:
                conn.execute(insert(dead_letters), dead_rows)
            self._count_sources(conn, results, now)
            self._append_audit(conn, audit_rows)
        self._versions_stored.update(stored_versions)
        return results

    def _store_versions(
        self, conn: Connection, versions: Iterable[MappingVersion], now: datetime
    ) -> set[str]:
        """Keep each version's text under its hash (once) and note it as used now.

        Called only with versions this process has not stored yet, so the hot
        path writes nothing here. Returns the hashes to remember once the
        transaction commits.
        """
        from sqlalchemy.dialects import postgresql, sqlite

        dialect = postgresql if self.dialect == "postgresql" else sqlite
        done: set[str] = set()
        for version in versions:
            conn.execute(
                dialect.insert(mapping_versions)
                .values(
                    hash=version.hash,
                    mapping=version.name,
                    text=version.to_text(),
                    first_used=now,
                    last_used=now,
                )
                .on_conflict_do_nothing(index_elements=[mapping_versions.c.hash])
            )
            conn.execute(
                update(mapping_versions)
                .where(mapping_versions.c.hash == version.hash)
                .values(last_used=now)
            )
            done.add(version.hash)
        return done

    def _count_sources(
        self, conn: Connection, results: Sequence[tuple[Intake, bool]], now: datetime
    ) -> None:
        """Add a batch's new messages and repeats to each source's totals."""
        from sqlalchemy.dialects import postgresql, sqlite

        tally: dict[str, list[int]] = {}
        for intake, is_new in results:
            counts = tally.setdefault(intake.message.source, [0, 0])
            counts[0 if is_new else 1] += 1
        dialect = postgresql if self.dialect == "postgresql" else sqlite
        for source, (new, repeats) in sorted(tally.items()):
            statement = dialect.insert(source_counts).values(
                endpoint=source, received=new, repeats=repeats, updated_at=now
            )
            conn.execute(
                statement.on_conflict_do_update(
                    index_elements=[source_counts.c.endpoint],
                    set_={
                        "received": source_counts.c.received + new,
                        "repeats": source_counts.c.repeats + repeats,
                        "updated_at": now,
                    },
                )
            )

    def source_counts(self) -> dict[str, dict[str, int]]:
        """Per source endpoint: new messages accepted and repeats offered, since the start."""
        with self.engine.connect() as conn:
            return {
                r.endpoint: {"received": int(r.received), "repeats": int(r.repeats)}
                for r in conn.execute(select(source_counts))
            }

    # --- claim and finish ---

    @staticmethod
    def _in_turn() -> Any:
        """Not waiting behind an earlier pending delivery of its order group (``order_by``)."""
        earlier = deliveries.alias("earlier")
        return or_(
            deliveries.c.order_group.is_(None),
            ~exists().where(
                earlier.c.endpoint == deliveries.c.endpoint,
                earlier.c.order_group == deliveries.c.order_group,
                earlier.c.state == DeliveryState.PENDING,
                earlier.c.order_seq < deliveries.c.order_seq,
            ),
        )

    def claim_due(
        self, worker: str, *, limit: int, lease: timedelta, endpoints: Iterable[str] | None = None
    ) -> list[Delivery]:
        """Claim up to ``limit`` deliveries that are due and not claimed by a live worker."""
        now = utcnow()
        condition = and_(
            deliveries.c.state == DeliveryState.PENDING,
            deliveries.c.next_attempt_at <= now,
            or_(deliveries.c.claimed_until.is_(None), deliveries.c.claimed_until < now),
            self._in_turn(),
        )
        if endpoints is not None:
            condition = and_(condition, deliveries.c.endpoint.in_(list(endpoints)))
        with self._begin() as conn:
            ids_query = (
                select(deliveries.c.id)
                .where(condition)
                .order_by(deliveries.c.next_attempt_at)
                .limit(limit)
            )
            if self.dialect == "postgresql":
                ids_query = ids_query.with_for_update(skip_locked=True)
            ids = list(conn.execute(ids_query).scalars())
            if not ids:
                return []
            conn.execute(
                update(deliveries)
                .where(deliveries.c.id.in_(ids))
                .values(claimed_by=worker, claimed_until=now + lease)
            )
            return self._load_deliveries(conn, ids)

    def claim(self, keys: Sequence[str], worker: str, *, lease: timedelta) -> list[Delivery]:
        """Claim deliveries by key (a queue told us of them); those done or taken are left out."""
        now = utcnow()
        with self._begin() as conn:
            claimed = list(
                conn.execute(
                    update(deliveries)
                    .where(
                        deliveries.c.id.in_(list(keys)),
                        deliveries.c.state == DeliveryState.PENDING,
                        deliveries.c.next_attempt_at <= now,
                        or_(
                            deliveries.c.claimed_until.is_(None),
                            deliveries.c.claimed_until < now,
                        ),
                        self._in_turn(),
                    )
                    .values(claimed_by=worker, claimed_until=now + lease)
                    .returning(deliveries.c.id)
                ).scalars()
            )
            # Those waiting behind an earlier one of their order group: the relay
            # queues them again once it is their turn.
            taken = set(claimed)
            waiting = [k for k in keys if k not in taken]
            if waiting:
                conn.execute(
                    update(deliveries)
                    .where(
                        deliveries.c.id.in_(waiting),
                        deliveries.c.state == DeliveryState.PENDING,
                        deliveries.c.order_group.is_not(None),
                        or_(
                            deliveries.c.claimed_until.is_(None),
                            deliveries.c.claimed_until < now,
                        ),
                    )
                    .values(enqueued_at=None)
                )
            return self._load_deliveries(conn, [k for k in keys if k in taken]) if taken else []

    def _load_deliveries(self, conn: Connection, ids: list[str]) -> list[Delivery]:
        rows = conn.execute(
            select(
                deliveries.c.id,
                deliveries.c.message_id,
                messages.c.correlation_id,
                messages.c.kind,
                messages.c.source,
                deliveries.c.route,
                deliveries.c.endpoint,
                deliveries.c.headers,
                deliveries.c.body,
                deliveries.c.attempts,
            )
            .join(messages, messages.c.id == deliveries.c.message_id)
            .where(deliveries.c.id.in_(ids))
        )
        # In the order asked for (the order they were claimed in): a source's items go
        # out in the order it offered them, e.g. a dossier's progress steps.
        place = {key: i for i, key in enumerate(ids)}
        return [
            Delivery(
                r.id,
                r.message_id,
                r.correlation_id,
                r.kind,
                r.source,
                r.route,
                r.endpoint,
                _headers(r.headers),
                r.body,
                r.attempts,
            )
            for r in sorted(rows, key=lambda r: place[r.id])
        ]

    def finish(self, outcomes: Sequence[Outcome], worker: str) -> None:
        """Record attempts and move each delivery to delivered, back to pending, or dead."""
        if not outcomes:
            return
        now = utcnow()
        attempt_rows, dead_rows, audit_rows = [], [], []
        with self._begin() as conn:
            delivered = [o.delivery.key for o in outcomes if o.result == Result.OK]
            if delivered:
                # The hot path: one prepared statement, executemany at driver level.
                mark = "?" if self.dialect == "sqlite" else "%s"
                stamp = now.isoformat(" ", "microseconds") if self.dialect == "sqlite" else now
                conn.exec_driver_sql(
                    f"UPDATE deliveries SET state = '{DeliveryState.DELIVERED}', delivered_at = "
                    f"{mark}, claimed_until = NULL, attempts = attempts + 1 WHERE id = {mark}",
                    [(stamp, key) for key in delivered],
                )
            for o in outcomes:
                d = o.delivery
                if o.result == Result.DEFERRED:
                    conn.execute(
                        update(deliveries)
                        .where(deliveries.c.id == d.key)
                        .values(
                            next_attempt_at=o.retry_at or now, claimed_until=None, enqueued_at=None
                        )
                    )
                    continue
                number = d.attempts + 1
                attempt_rows.append(
                    {
                        "delivery_id": d.key,
                        "number": number,
                        "at": now,
                        "worker": worker,
                        "outcome": o.result,
                        "error": o.error,
                    }
                )
                if o.result == Result.OK:
                    audit_rows.append(
                        {
                            "message_id": d.message_id,
                            "at": now,
                            "event": "delivered",
                            "endpoint": d.endpoint,
                            "detail": f"attempt {number}",
                        }
                    )
                elif o.result == Result.TRANSIENT:
                    conn.execute(
                        update(deliveries)
                        .where(deliveries.c.id == d.key)
                        .values(
                            attempts=number,
                            next_attempt_at=o.retry_at or now,
                            claimed_until=None,
                            enqueued_at=None,
                            last_error=o.error,
                        )
                    )
                    audit_rows.append(
                        {
                            "message_id": d.message_id,
                            "at": now,
                            "event": "retry",
                            "endpoint": d.endpoint,
                            "detail": f"attempt {number}: {o.error}",
                        }
                    )
                else:
                    conn.execute(
                        update(deliveries)
                        .where(deliveries.c.id == d.key)
                        .values(
                            state=DeliveryState.DEAD,
                            attempts=number,
                            claimed_until=None,
                            last_error=o.error,
                        )
                    )
                    dead_rows.append(
                        {
                            "message_id": d.message_id,
                            "delivery_id": d.key,
                            "endpoint": d.endpoint,
                            "stage": o.stage,
                            "reason": o.error or "rejected",
                            "created_at": now,
                        }
                    )
                    audit_rows.append(
                        {
                            "message_id": d.message_id,
                            "at": now,
                            "event": "dead-lettered",
                            "endpoint": d.endpoint,
                            "detail": o.error or "",
                        }
                    )
            self._insert_many(conn, attempts, attempt_rows)
            if dead_rows:
                conn.execute(insert(dead_letters), dead_rows)
            self._append_audit(conn, audit_rows)

    def release(self, keys: Sequence[str]) -> None:
        """Give claimed deliveries back untouched (a clean shutdown mid-batch)."""
        if keys:
            with self._begin() as conn:
                conn.execute(
                    update(deliveries)
                    .where(
                        deliveries.c.id.in_(list(keys)), deliveries.c.state == DeliveryState.PENDING
                    )
                    .values(claimed_until=None, claimed_by=None, enqueued_at=None)
                )

    # --- the queue relay (production) ---

    def unmark_enqueued(self, keys: Sequence[str]) -> None:
        """Say these deliveries' keys never reached a queue: the relay's next pass queues them."""
        if keys:
            with self._begin() as conn:
                conn.execute(
                    update(deliveries)
                    .where(
                        deliveries.c.id.in_(list(keys)), deliveries.c.state == DeliveryState.PENDING
                    )
                    .values(enqueued_at=None)
                )

    def due_for_enqueue(self, *, limit: int, stale_after: timedelta) -> list[tuple[str, str]]:
        """Mark and return (key, endpoint) of due deliveries no queue holds a live entry for."""
        now = utcnow()
        with self._begin() as conn:
            query = (
                select(deliveries.c.id, deliveries.c.endpoint)
                .where(
                    deliveries.c.state == DeliveryState.PENDING,
                    deliveries.c.next_attempt_at <= now,
                    or_(deliveries.c.claimed_until.is_(None), deliveries.c.claimed_until < now),
                    or_(
                        deliveries.c.enqueued_at.is_(None),
                        deliveries.c.enqueued_at < now - stale_after,
                    ),
                    self._in_turn(),
                )
                .order_by(deliveries.c.next_attempt_at)
                .limit(limit)
            )
            if self.dialect == "postgresql":
                query = query.with_for_update(skip_locked=True)
            rows = [(r.id, r.endpoint) for r in conn.execute(query)]
            if rows:
                conn.execute(
                    update(deliveries)
                    .where(deliveries.c.id.in_([k for k, _ in rows]))
                    .values(enqueued_at=now)
                )
        return rows

    def counts(self) -> dict[str, int]:
        """Deliveries by state, messages parked and dead letters waiting."""
        with self.engine.connect() as conn:
            by_state: dict[str, int] = dict(
                conn.execute(
                    select(deliveries.c.state, func.count()).group_by(deliveries.c.state)
                ).all()
            )
            waiting = conn.execute(
                select(func.count())
                .select_from(dead_letters)
                .where(dead_letters.c.replayed_at.is_(None))
            ).scalar_one()
            total = conn.execute(select(func.count()).select_from(messages)).scalar_one()
        return {
            "messages": total,
            "pending": by_state.get(DeliveryState.PENDING, 0),
            "delivered": by_state.get(DeliveryState.DELIVERED, 0),
            "dead": by_state.get(DeliveryState.DEAD, 0),
            "dead_letters_waiting": waiting,
        }

    def set_endpoint_health(self, endpoint: str, state: str, detail: str, worker: str) -> None:
        """Record an endpoint's circuit state as one worker sees it."""
        with self._begin() as conn:
            conn.execute(delete(endpoint_health).where(endpoint_health.c.endpoint == endpoint))
            conn.execute(
                insert(endpoint_health).values(
                    endpoint=endpoint,
                    state=state,
                    detail=detail,
                    worker=worker,
                    updated_at=utcnow(),
                )
            )

    def endpoint_health(self) -> dict[str, dict[str, Any]]:
        with self.engine.connect() as conn:
            return {r.endpoint: dict(r._mapping) for r in conn.execute(select(endpoint_health))}

    def next_due(self) -> datetime | None:
        with self.engine.connect() as conn:
            return conn.execute(
                select(func.min(deliveries.c.next_attempt_at)).where(
                    deliveries.c.state == DeliveryState.PENDING, self._in_turn()
                )
            ).scalar_one()

    def dead_letters(
        self,
        *,
        endpoint: str | None = None,
        stage: str | None = None,
        reason: str | None = None,
        include_replayed: bool = False,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        """Dead letters, newest first, filtered by endpoint, stage or a reason substring."""
        query = (
            select(dead_letters, messages.c.kind, messages.c.source)
            .join(messages, messages.c.id == dead_letters.c.message_id)
            .order_by(dead_letters.c.id.desc())
            .limit(limit)
        )
        if not include_replayed:
            query = query.where(dead_letters.c.replayed_at.is_(None))
        if endpoint:
            query = query.where(dead_letters.c.endpoint == endpoint)
        if stage:
            query = query.where(dead_letters.c.stage == stage)
        if reason:
            query = query.where(dead_letters.c.reason.contains(reason))
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def dead_letter(self, dead_id: int) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(
                    dead_letters,
                    messages.c.kind,
                    messages.c.source,
                    messages.c.body,
                    messages.c.headers,
                    messages.c.correlation_id,
                )
                .join(messages, messages.c.id == dead_letters.c.message_id)
                .where(dead_letters.c.id == dead_id)
            ).first()
            if row is None:
                return None
            result = dict(row._mapping)
            result["headers"] = _headers(result["headers"])
            result["attempts"] = (
                [
                    dict(a._mapping)
                    for a in conn.execute(
                        select(attempts)
                        .where(attempts.c.delivery_id == row.delivery_id)
                        .order_by(attempts.c.number)
                    )
                ]
                if row.delivery_id
                else []
            )
            return result

    def message(self, message_id: str) -> Message | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(messages).where(messages.c.id == message_id)).first()
        if row is None:
            return None
        return Message(
            body=row.body,
            kind=row.kind,
            source=row.source,
            headers=_headers(row.headers),
            id=row.id,
            correlation_id=row.correlation_id,
            source_key=row.source_key,
            created_at=row.created_at.replace(tzinfo=UTC),
        )

    def mark_replayed(self, dead_id: int) -> None:
        with self._begin() as conn:
            conn.execute(
                update(dead_letters)
                .where(dead_letters.c.id == dead_id)
                .values(replayed_at=utcnow())
            )

    def retry_delivery(self, delivery_id: str, message_id: str) -> None:
        """Put a dead delivery back in the queue, with its attempts kept for the record."""
        now = utcnow()
        with self._begin() as conn:
            conn.execute(
                update(deliveries)
                .where(deliveries.c.id == delivery_id)
                .values(
                    state=DeliveryState.PENDING,
                    next_attempt_at=now,
                    claimed_until=None,
                    enqueued_at=None,
                )
            )
            self._append_audit(
                conn,
                [
                    {
                        "message_id": message_id,
                        "at": now,
                        "event": "replayed",
                        "endpoint": None,
                        "detail": f"delivery {delivery_id}",
                    }
                ],
            )

    def add_deliveries(
        self, message_id: str, outgoing: Sequence[Outgoing], body: bytes | None = None
    ) -> None:
        """Route a parked message after all (a replay): its deliveries join the queue.

        ``body`` is the message's, kept as the mapped deliveries' input.
        """
        now = utcnow()
        versions = {o.mapping.hash: o.mapping for o in outgoing if o.mapping is not None}
        with self._begin() as conn:
            conn.execute(
                insert(deliveries),
                [
                    {
                        "id": o.key,
                        "message_id": message_id,
                        "route": o.route,
                        "endpoint": o.endpoint,
                        "headers": json.dumps(o.headers, ensure_ascii=False),
                        "body": o.body,
                        "state": DeliveryState.PENDING,
                        "attempts": 0,
                        "next_attempt_at": now,
                        "created_at": now,
                        "mapping": o.mapping.name if o.mapping else None,
                        "mapping_hash": o.mapping.hash if o.mapping else None,
                        "mapping_params": _dumps(o.params) if o.mapping else None,
                        "order_group": o.order[0] if o.order else None,
                        "order_seq": o.order[1] if o.order else None,
                    }
                    for o in outgoing
                ],
            )
            stored = self._store_versions(conn, versions.values(), now)
            if versions and body is not None and self.keep_mapping_inputs:
                conn.execute(
                    delete(mapping_inputs).where(mapping_inputs.c.message_id == message_id)
                )
                conn.execute(
                    insert(mapping_inputs).values(message_id=message_id, kept_at=now, body=body)
                )
            conn.execute(
                update(messages)
                .where(messages.c.id == message_id)
                .values(state=MessageState.ROUTED)
            )
            self._append_audit(
                conn,
                [
                    {
                        "message_id": message_id,
                        "at": now,
                        "event": "replayed",
                        "endpoint": o.endpoint,
                        "detail": f"route {o.route}",
                    }
                    for o in outgoing
                ],
            )
        self._versions_stored.update(stored)

    def purge_dead_letters(self, ids: Sequence[int]) -> int:
        """Forget dead letters (the messages and the audit trail stay)."""
        if not ids:
            return 0
        with self._begin() as conn:
            return conn.execute(
                delete(dead_letters).where(dead_letters.c.id.in_(list(ids)))
            ).rowcount

    def trace(self, message_id: str) -> dict[str, Any] | None:
        """Every hop of a message and of the messages correlated with it."""
        with self.engine.connect() as conn:
            msg = conn.execute(
                select(messages)
                .where(or_(messages.c.id == message_id, messages.c.id.startswith(message_id)))
                .limit(2)
            ).all()
            if len(msg) != 1:
                return None
            m = msg[0]
            related = [
                dict(r._mapping)
                for r in conn.execute(
                    select(
                        messages.c.id,
                        messages.c.kind,
                        messages.c.source,
                        messages.c.accepted_at,
                        messages.c.state,
                        messages.c.headers,
                    )
                    .where(messages.c.correlation_id == m.correlation_id, messages.c.id != m.id)
                    .order_by(messages.c.accepted_at)
                )
            ]
            hops = [
                dict(r._mapping)
                for r in conn.execute(
                    select(audit).where(audit.c.message_id == m.id).order_by(audit.c.id)
                )
            ]
            dlv = [
                dict(r._mapping)
                for r in conn.execute(
                    select(
                        deliveries.c.id,
                        deliveries.c.route,
                        deliveries.c.endpoint,
                        deliveries.c.state,
                        deliveries.c.attempts,
                        deliveries.c.last_error,
                        deliveries.c.mapping,
                        deliveries.c.mapping_hash,
                        deliveries.c.mapping_params,
                    ).where(deliveries.c.message_id == m.id)
                )
            ]
            for d in dlv:
                d["mapping_params"] = _headers(d["mapping_params"] or "")
                d["attempt_log"] = [
                    dict(a._mapping)
                    for a in conn.execute(
                        select(attempts)
                        .where(attempts.c.delivery_id == d["id"])
                        .order_by(attempts.c.number)
                    )
                ]
        return {
            "id": m.id,
            "correlation_id": m.correlation_id,
            "kind": m.kind,
            "source": m.source,
            "source_key": m.source_key,
            "state": m.state,
            "accepted_at": m.accepted_at,
            "headers": _headers(m.headers),
            "hops": hops,
            "deliveries": dlv,
            "correlated": [{**r, "headers": _headers(r["headers"])} for r in related],
        }

    # --- mapping versions and inputs (lienthong.mapping_commands) ---

    def delivery(self, delivery_id: str) -> dict[str, Any] | None:
        """One delivery's route, endpoint, body as attempted, and the mapping that made it."""
        with self.engine.connect() as conn:
            row = conn.execute(select(deliveries).where(deliveries.c.id == delivery_id)).first()
        if row is None:
            return None
        found = dict(row._mapping)
        found["headers"] = _headers(found["headers"])
        found["mapping_params"] = _headers(found["mapping_params"] or "")
        return found

    def mapping_versions(self, mapping: str) -> list[dict[str, Any]]:
        """The versions of ``mapping`` the store knows, oldest first.

        Each: ``hash``, ``first_used``, ``last_used`` (its latest delivery, else
        when it was last taken up) and ``deliveries`` (how many it made).
        """
        with self.engine.connect() as conn:
            used = {
                r.mapping_hash: r
                for r in conn.execute(
                    select(
                        deliveries.c.mapping_hash,
                        func.count().label("made"),
                        func.min(deliveries.c.created_at).label("first"),
                        func.max(deliveries.c.created_at).label("last"),
                    )
                    .where(deliveries.c.mapping == mapping)
                    .group_by(deliveries.c.mapping_hash)
                )
            }
            rows = conn.execute(
                select(
                    mapping_versions.c.hash,
                    mapping_versions.c.first_used,
                    mapping_versions.c.last_used,
                ).where(mapping_versions.c.mapping == mapping)
            ).all()
        found = []
        for r in rows:
            u = used.get(r.hash)
            found.append(
                {
                    "hash": r.hash,
                    "first_used": min(r.first_used, u.first) if u else r.first_used,
                    "last_used": u.last if u else r.last_used,
                    "deliveries": int(u.made) if u else 0,
                }
            )
        return sorted(found, key=lambda v: (v["first_used"], v["hash"]))

    def mapping_version_text(self, mapping: str, hash_prefix: str) -> tuple[str, str]:
        """The full hash and text of the version of ``mapping`` whose hash starts so.

        Raises ``RejectedError`` naming the versions there are when none or several match.
        """
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(mapping_versions.c.hash, mapping_versions.c.text)
                .where(
                    mapping_versions.c.mapping == mapping,
                    mapping_versions.c.hash.startswith(hash_prefix.lower(), autoescape=True),
                )
                .limit(2)
            ).all()
        if len(rows) == 1:
            return rows[0].hash, rows[0].text
        known = ", ".join(v["hash"][:12] for v in self.mapping_versions(mapping)) or "none"
        what = "several versions" if rows else "no version"
        raise RejectedError(
            f"mapping '{mapping}': {what} in the store with a hash starting {hash_prefix!r} "
            f"(known: {known}). Hint: 'lienthong mapping versions {mapping}'"
        )

    def mapping_inputs(
        self,
        mapping: str,
        *,
        version: str | None = None,
        endpoint: str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
        chunk: int = 500,
    ) -> Iterator[tuple[str, str, dict[str, str], bytes]]:
        """The kept inputs of deliveries ``mapping`` made, newest first.

        Yields (delivery id, version hash, params, input body), read ``chunk``
        rows at a time so ten thousand bodies are never all in memory.
        """
        query = (
            select(
                deliveries.c.id,
                deliveries.c.mapping_hash,
                deliveries.c.mapping_params,
                mapping_inputs.c.body,
            )
            .join(mapping_inputs, mapping_inputs.c.message_id == deliveries.c.message_id)
            .where(deliveries.c.mapping == mapping)
            .order_by(deliveries.c.created_at.desc(), deliveries.c.id.desc())
        )
        if version is not None:
            query = query.where(deliveries.c.mapping_hash == version)
        if endpoint is not None:
            query = query.where(deliveries.c.endpoint == endpoint)
        if since is not None:
            query = query.where(deliveries.c.created_at >= since)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=chunk).execute(query)
            for rows in result.partitions(chunk):
                for r in rows:
                    yield r.id, r.mapping_hash, _headers(r.mapping_params or ""), r.body

    def purge_mapping_inputs(self, before: datetime) -> int:
        """Forget the inputs kept before ``before`` (bus.mapping_inputs_days)."""
        with self._begin() as conn:
            return conn.execute(
                delete(mapping_inputs).where(mapping_inputs.c.kept_at < before)
            ).rowcount

    def _begin(self) -> Any:
        return _Transaction(self.engine)

    # --- reading, for metrics, health and status ---

    def pending_overview(self) -> dict[str, dict[str, Any]]:
        """Per endpoint: deliveries pending, how many failed before, and the oldest one's time."""
        retrying = func.count().filter(deliveries.c.attempts > 0)
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    deliveries.c.endpoint,
                    func.count(),
                    retrying,
                    func.min(deliveries.c.created_at),
                )
                .where(deliveries.c.state == DeliveryState.PENDING)
                .group_by(deliveries.c.endpoint)
            ).all()
        return {
            endpoint: {"pending": count, "retrying": int(again or 0), "oldest": oldest}
            for endpoint, count, again, oldest in rows
        }

    def dead_letters_waiting(self) -> int:
        """Dead letters neither replayed nor purged."""
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(dead_letters)
                    .where(dead_letters.c.replayed_at.is_(None))
                ).scalar_one()
            )

    def messages_by_correlation(self, correlation_id: str) -> list[dict[str, Any]]:
        """Every message sharing ``correlation_id``, oldest first, with its hops and dead letters.

        Each is a dict of the message's columns but the body (``headers``
        decoded), plus ``hops`` (its audit rows in order) and ``dead_letters``.
        """
        with self.engine.connect() as conn:
            found = [
                dict(r._mapping)
                for r in conn.execute(
                    select(*[c for c in messages.columns if c.name != "body"])
                    .where(messages.c.correlation_id == correlation_id)
                    .order_by(messages.c.accepted_at, messages.c.created_at)
                )
            ]
            ids = [m["id"] for m in found]
            hops: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
            dead: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
            if ids:
                for r in conn.execute(
                    select(audit).where(audit.c.message_id.in_(ids)).order_by(audit.c.id)
                ):
                    hops[r.message_id].append(dict(r._mapping))
                for r in conn.execute(
                    select(dead_letters)
                    .where(dead_letters.c.message_id.in_(ids))
                    .order_by(dead_letters.c.id)
                ):
                    dead[r.message_id].append(dict(r._mapping))
        for m in found:
            m["headers"] = _headers(m["headers"])
            m["hops"] = hops[m["id"]]
            m["dead_letters"] = dead[m["id"]]
        return found


class _Transaction:
    """``engine.begin()`` that turns a lost or full database into a ``TransientError``.

    Both a failed commit and a statement that failed inside the transaction (a
    full disk shows there first on SQLite) become one clear error; the
    transaction is rolled back, so the source keeps what was not stored.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._ctx: Any = None

    def __enter__(self) -> Connection:
        try:
            self._ctx = self.engine.begin()
            return self._ctx.__enter__()
        except OperationalError as exc:
            raise StoreUnavailable(store_error(self.engine, "is not reachable", exc)) from exc

    def __exit__(self, *exc_info: Any) -> Any:
        try:
            result = self._ctx.__exit__(*exc_info)
        except OperationalError as exc:
            raise StoreUnavailable(store_error(self.engine, "could not commit", exc)) from exc
        failed = exc_info[1]
        if isinstance(failed, OperationalError):
            raise StoreUnavailable(store_error(self.engine, "failed", failed)) from failed
        return result


def store_error(engine: Engine, what: str, exc: OperationalError) -> str:
    """One line on a store error; for an SQLite file, where it is and how much room is left."""
    text = f"the store {what}: {exc.orig}"
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return text
    try:
        free = shutil.disk_usage(Path(database).parent).free
    except OSError:
        return f"{text} (SQLite file {database})"
    text += f" (SQLite file {database}; {free:,} bytes free on its disk)"
    cause = str(exc.orig).lower()
    if "full" in cause or "i/o error" in cause or free < 1024 * 1024:
        text += (
            ". Hint: free space on that disk or move bus.store to a larger one; nothing is "
            "lost: a message not stored stays at its source and is read again"
        )
    return text


class Cursors:
    """Named positions in the ``cursors`` table (see :class:`lienthong.adapter.Cursors`)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, name: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(
                select(cursors.c.value).where(cursors.c.name == name)
            ).scalar_one_or_none()

    def set(self, name: str, value: str) -> None:
        now = utcnow()
        with self.engine.begin() as conn:
            updated = conn.execute(
                update(cursors).where(cursors.c.name == name).values(value=value, updated_at=now)
            ).rowcount
            if not updated:
                conn.execute(insert(cursors).values(name=name, value=value, updated_at=now))
