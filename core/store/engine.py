"""The store's engine: SQLite made safe and private, PostgreSQL as given; errors in one line.

Also what every opener of the store checks first: that its schema is the one
this code needs (:func:`prepare_schema`; :func:`open_read_only` for a command
that only reads, which migrates and creates nothing).
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, make_url
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError

from ..errors import ConfigError, StoreUnavailable

log = logging.getLogger(__name__)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers (status, dlq list) work beside the bus; NORMAL sync is
    # durable against process crashes, which is what the bus promises.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    # SQLite's default page cache (2 MB) holds little of the indexes of a store of a
    # million messages, and each new row's keys land all over them: 64 MB a
    # connection (filled only as used) took the one-stop benchmark 12% faster.
    cursor.execute("PRAGMA cache_size=-65536")
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


class Transaction:
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


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest migration (``lienthong db upgrade``)."""
    from ..migrations import upgrade as migrate

    try:
        migrate(engine)
    except OperationalError as exc:
        raise StoreUnavailable(store_error(engine, "could not be upgraded", exc)) from exc


def prepare_schema(engine: Engine) -> None:
    """Make sure the schema is the one this code needs before anything reads or writes.

    The embedded default (SQLite, one file only this installation uses) is brought
    up to date on the spot; a shared PostgreSQL store is upgraded once, by
    ``lienthong db upgrade``, so a worker or a command of another version refuses it.
    """
    if engine.dialect.name == "sqlite":
        upgrade(engine)
        return
    _check_schema(engine)


def open_read_only(url: str) -> Engine:
    """An engine on the store at ``url`` for a command that only reads: it creates nothing.

    The schema is checked, never migrated, on SQLite as on PostgreSQL: a store
    behind this code is refused with the hint to run ``lienthong db upgrade``.
    An SQLite file that is not there (or holds no tables) has nothing to show
    yet, and is not made.
    """
    database = _sqlite_file(url)
    if database is not None and not Path(database).exists():
        raise ConfigError([_nothing_yet(database)])
    engine = make_engine(url)
    try:
        _check_schema(engine, empty=_nothing_yet(database) if database is not None else None)
    except BaseException:
        engine.dispose()
        raise
    return engine


def _sqlite_file(url: str) -> str | None:
    """The file of an SQLite ``url``; None for another database or SQLite in memory."""
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise ConfigError([f"bus.store: cannot use database URL ({exc})"]) from exc
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return parsed.database


def _nothing_yet(database: str) -> str:
    return (
        f"bus.store: nothing is stored yet: the SQLite file {database} "
        f"{'holds no tables' if Path(database).exists() else 'does not exist'}. Hint: "
        "'lienthong run' makes it on its first start; if the bus has run, check bus.store"
    )


def _check_schema(engine: Engine, *, empty: str | None = None) -> None:
    """Refuse a schema that is not this code's; ``empty``: the problem if it has none at all."""
    from .. import migrations

    try:
        current, head = migrations.current(engine), migrations.head()
    except OperationalError as exc:
        raise StoreUnavailable(f"the store is not reachable: {exc.orig}") from exc
    if current is None and empty is not None:
        raise ConfigError([empty])
    if current != head:
        raise ConfigError(
            [
                f"bus.store: the database schema is at {current or 'nothing'}, this version "
                f"needs {head}. Hint: run 'lienthong db upgrade' first"
            ]
        )
