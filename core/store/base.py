"""What every writer of the store shares: its engine, transactions, fast inserts, the audit chain.

The write paths (:mod:`.ledger`, :mod:`.queue`, :mod:`.dead_letters`) are
classes over this base; :class:`lienthong.store.Store` puts them together.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, any_, bindparam, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, ProgrammingError
from sqlalchemy.types import String

from .. import audit as audit_module
from ..errors import StoreUnavailable
from .engine import Transaction
from .engine import upgrade as upgrade_schema
from .schema import UtcDateTime, audit, driver_value, mapping_versions

if TYPE_CHECKING:
    from ..mapping import MappingVersion

#: Parameters in one statement at most: SQLite before 3.32 takes 999 (PostgreSQL 65,535).
_MAX_PARAMETERS = 999


class Base:
    """The engine and the helpers each write path uses inside its transactions."""

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
        upgrade_schema(self.engine)

    # --- inside a transaction ---

    def _begin(self) -> Any:
        """A transaction whose lost or full database is one clear ``StoreUnavailable``."""
        return Transaction(self.engine)

    def _insert_new(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> set[str]:
        """Insert messages unless their id or source key is stored; the ids that were new.

        A multi-row INSERT, one round trip per chunk rather than per message: every
        polled item has a source key, and on PostgreSQL a statement per message
        cost a round trip each. Rows go in in order, so of two with one source key
        the first is kept, as it would be one at a time. All rows have the same
        columns. Driver-level SQL, as in :meth:`_insert_many`; on PostgreSQL one
        COPY and one INSERT (:func:`_insert_new_copied`).
        """
        if not rows:
            return set()
        if self.dialect == "postgresql":
            return _insert_new_copied(conn, rows)
        columns = list(rows[0])
        one = f"({', '.join(['?'] * len(columns))})"
        per_statement = max(1, _MAX_PARAMETERS // len(columns))
        new: set[str] = set()
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            sql = (
                f"INSERT INTO messages ({', '.join(columns)}) VALUES "
                f"{', '.join([one] * len(chunk))} "
                "ON CONFLICT DO NOTHING RETURNING id"  # rowcount is not reliable on every driver
            )
            values = [driver_value(row[c], self.dialect) for row in chunk for c in columns]
            new.update(conn.exec_driver_sql(sql, tuple(values)).scalars())
        return new

    def _insert_many(self, conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
        """Insert rows at driver level (COPY on PostgreSQL, executemany on SQLite): the hot
        path skips Core's per-value work.

        Rows must carry every column of ``table`` except autoincrement keys.
        Times go as the columns keep them (:func:`.schema.driver_value`).
        """
        if not rows:
            return
        targets = [c for c in table.columns if not (c.primary_key and c.autoincrement is True)]
        columns = [c.name for c in targets]
        values = [[row.get(name) for name in columns] for row in rows]
        times = [i for i, c in enumerate(targets) if isinstance(c.type, UtcDateTime)]
        kept: dict[datetime, Any] = {}  # a batch shares a handful of timestamps
        for record in values:
            for i in times:
                value = record[i]
                if value is not None:
                    stored = kept.get(value)
                    if stored is None:
                        stored = kept[value] = driver_value(value, self.dialect)
                    record[i] = stored
        if self.dialect == "postgresql":
            _copy(conn, table.name, columns, values)
            return
        marks = ", ".join(["?"] * len(columns))
        sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({marks})"
        conn.exec_driver_sql(sql, [tuple(record) for record in values])

    def _append_audit(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        """Append records to the audit trail, chained by hash (see lienthong.audit).

        Called last in a transaction: on PostgreSQL the chain's lock is held
        from here to the commit.
        """
        if rows:
            self._insert_many(conn, audit, audit_module.chain(conn, audit, rows, self.audit_key))

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


def among(column: Any, keys: Sequence[str], dialect: str) -> Any:
    """``column`` is one of ``keys``: on PostgreSQL one array parameter, not one per key.

    A claim names up to ``bus.batch_size`` keys. As ``IN (...)`` each key is a
    parameter of its own, so the statement's text changes with their number
    and the driver parses it again each time; ``= ANY(array)`` is one short
    statement, planned on the same index.
    """
    if dialect == "postgresql":
        return column == any_(bindparam(None, list(keys), type_=ARRAY(String)))
    return column.in_(list(keys))


#: PostgreSQL's "insufficient privilege" (here: no TEMPORARY on the database).
_INSUFFICIENT_PRIVILEGE = "42501"

#: Where a batch of messages waits in the session for :func:`_insert_new_copied`.
_STAGED_MESSAGES = "lienthong_staged_messages"


def _insert_new_copied(conn: Connection, rows: Sequence[dict[str, Any]]) -> set[str]:
    """:meth:`Base._insert_new` on PostgreSQL: COPY into a session's table, then one INSERT.

    A VALUES list of a page of messages was a new statement text of thousands
    of parameters each time, which the driver parsed in Python (a tenth of a
    worker's time in the one-stop year); arrays a column cost as much to
    build. COPY does a row's work in C, and the INSERT that moves the rows
    (in their order: of two with one source key the first is kept) is one
    text for every batch. The staged table is the session's own, emptied by
    that INSERT and truncated at commit (no dead rows pile up: temporary
    tables are never vacuumed).
    """
    columns = list(rows[0])
    names = ", ".join(columns)
    try:
        conn.exec_driver_sql(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGED_MESSAGES} "
            "(LIKE messages INCLUDING DEFAULTS, place integer NOT NULL) ON COMMIT DELETE ROWS"
        )
    except ProgrammingError as exc:
        if getattr(exc.orig, "sqlstate", None) != _INSUFFICIENT_PRIVILEGE:
            raise
        url = conn.engine.url
        role = url.username or "<the workers' role>"
        raise StoreUnavailable(
            f"the store refuses to stage messages: {exc.orig}. Hint: as the database's "
            f"owner, run 'GRANT TEMPORARY ON DATABASE {url.database} TO {role}'; "
            "nothing is lost: the messages stay at their source and are read again"
        ) from exc
    records = [
        [driver_value(row[c], "postgresql") for c in columns] + [n] for n, row in enumerate(rows)
    ]
    _copy(conn, _STAGED_MESSAGES, [*columns, "place"], records)
    sql = (
        f"WITH staged AS (DELETE FROM {_STAGED_MESSAGES} RETURNING *) "
        f"INSERT INTO messages ({names}) SELECT {names} FROM staged ORDER BY place "
        "ON CONFLICT DO NOTHING RETURNING id"
    )
    return set(conn.exec_driver_sql(sql).scalars())


def _copy(conn: Connection, table: str, columns: list[str], records: list[list[Any]]) -> None:
    """Insert ``records`` with PostgreSQL's COPY, inside ``conn``'s transaction.

    A batch's deliveries, audit records and attempts are hundreds of rows: as
    one COPY each the driver does a row's work in C, where an executemany
    pipelines a statement per row through Python (half the client's time per
    row, measured). Errors come out as SQLAlchemy's, as from any statement,
    and a lost connection is dropped from the pool.
    """
    sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    error = conn.dialect.loaded_dbapi.Error
    driver: Any = conn.connection.driver_connection
    try:
        with driver.cursor() as cursor, cursor.copy(sql) as copy:
            for record in records:
                copy.write_row(record)
    except error as exc:
        lost = conn.dialect.is_disconnect(exc, conn.connection.dbapi_connection, None)
        if lost:
            conn.invalidate(exc)
        raise DBAPIError.instance(sql, None, exc, error, connection_invalidated=lost) from exc
