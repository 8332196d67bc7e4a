"""The lease: one holder at a time for a named piece of work, across processes and hosts.

A scheduled tick and a manual ``lienthong sync run`` of the same job take the
same lease, so they never overlap.

- PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock`` on a stable
  64-bit hash of the schema and the name: advisory locks are database-wide, and
  two buses in two schemas of one database must not block each other) held on a
  dedicated connection. The lock dies with that connection, so a holder killed
  with SIGKILL frees it at once.
- SQLite (one host): a row in the ``leases`` table with the holder and an expiry;
  another holder takes it over once it has expired, so a killed holder frees it
  after ``ttl_s`` at most. A long holder keeps it with :meth:`Lease.renew`.

On both, the ``leases`` row tells others who holds the lease and since when.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Column, String, Table, delete, insert, select, text, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from .errors import LienthongError, StoreUnavailable
from .store import UtcDateTime, metadata
from .store.engine import store_error

leases = Table(
    "leases",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("holder", String(200), nullable=False),
    Column("acquired_at", UtcDateTime(timezone=True), nullable=False),
    Column("expires_at", UtcDateTime(timezone=True), nullable=False),
)


class LeaseLost(LienthongError):
    """The lease was taken over or its connection died while we thought we held it."""


class LeaseHeld(LienthongError):
    """Someone else holds the lease and did not let go in time."""

    def __init__(self, name: str, holder: LeaseHolder | None, waited_s: float) -> None:
        self.name = name
        self.holder = holder
        who = (
            f"held by {holder.holder} since {holder.acquired_at:%Y-%m-%d %H:%M:%S %Z}"
            if holder
            else "held by another process"
        )
        waited = f" after waiting {waited_s:g} s" if waited_s else ""
        super().__init__(
            f"lease '{name}' is {who}{waited}. Hint: wait for that run to end, "
            f"or pass --wait SECONDS to queue behind it"
        )


@dataclass(frozen=True)
class LeaseHolder:
    """Who holds a lease, as the ``leases`` row says."""

    holder: str
    acquired_at: datetime
    expires_at: datetime


def default_holder() -> str:
    """``host:pid``, which names a process across hosts."""
    return f"{socket.gethostname()}:{os.getpid()}"


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_lock`` (Python's hash() is salted)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class Lease:
    """One named lease; :meth:`acquire` never blocks, :meth:`wait` polls up to a timeout."""

    def __init__(
        self, engine: Engine, name: str, holder: str | None = None, ttl_s: float = 60.0
    ) -> None:
        if ttl_s <= 0:
            raise ValueError(f"lease '{name}': ttl_s must be positive, got {ttl_s!r}")
        self.engine = engine
        self.name = name
        self.holder = holder or default_holder()
        self.ttl_s = ttl_s
        self._postgres = engine.dialect.name == "postgresql"
        self._conn: Connection | None = None
        self._key: int | None = None  # the advisory lock's, on PostgreSQL
        self._held = False
        self._keeper: threading.Thread | None = None
        self._stop_keeper = threading.Event()

    @property
    def held(self) -> bool:
        return self._held

    def acquire(self) -> bool:
        """Take the lease if it is free (or ours, or expired on SQLite); never waits."""
        if self._held:
            self.renew()
            return True
        got = self._acquire_postgres() if self._postgres else self._acquire_row()
        self._held = got
        return got

    def wait(self, timeout_s: float, poll_s: float = 0.5) -> bool:
        """Try to take the lease until ``timeout_s`` has passed; True if taken."""
        deadline = time.monotonic() + max(timeout_s, 0.0)
        while True:
            if self.acquire():
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(poll_s, left))

    def renew(self) -> None:
        """Push the expiry forward; raise :class:`LeaseLost` if the lease is no longer ours."""
        if not self._held:
            raise LeaseLost(f"lease '{self.name}' is not held by {self.holder}")
        if self._postgres:
            try:
                assert self._conn is not None
                self._conn.execute(text("SELECT 1"))
            except DBAPIError as exc:
                self._drop_connection()
                raise LeaseLost(
                    f"lease '{self.name}': the connection holding the lock died. "
                    "Hint: check the database connection; another process may now hold it"
                ) from exc
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            renewed = conn.execute(
                update(leases)
                .where(leases.c.name == self.name, leases.c.holder == self.holder)
                .values(expires_at=now + timedelta(seconds=self.ttl_s))
            ).rowcount
        if not renewed and not self._postgres:
            self._held = False
            raise LeaseLost(
                f"lease '{self.name}' expired and was taken over while {self.holder} held it. "
                f"Hint: raise the job's lease_ttl above {self.ttl_s:g} s"
            )

    def release(self) -> None:
        """Let go of the lease (a no-op when not held)."""
        self._stop_keeping()
        if not self._held:
            return
        self._held = False
        with self.engine.begin() as conn:
            conn.execute(
                delete(leases).where(leases.c.name == self.name, leases.c.holder == self.holder)
            )
        if self._postgres and self._conn is not None:
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
                self._conn.close()
            except DBAPIError:
                self._drop_connection()
            self._conn = None

    def current(self) -> LeaseHolder | None:
        """Who holds the lease now, from the ``leases`` row (None when free)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(leases).where(leases.c.name == self.name)).first()
        if row is None:
            return None
        holder = LeaseHolder(row.holder, row.acquired_at, row.expires_at)
        if not self._postgres and holder.expires_at < datetime.now(UTC):
            return None
        return holder

    @contextmanager
    def hold(self, wait_s: float = 0.0) -> Iterator[Lease]:
        """Hold the lease for a block, renewing it in the background; raise :class:`LeaseHeld`."""
        if not self.wait(wait_s):
            raise LeaseHeld(self.name, self.current(), wait_s)
        self._start_keeping()
        try:
            yield self
        finally:
            self.release()

    # --- PostgreSQL ---

    def _acquire_postgres(self) -> bool:
        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            schema = conn.execute(text("SELECT current_schema()")).scalar_one()
            self._key = advisory_key(f"{schema}/{self.name}")
            got = conn.execute(
                text("SELECT pg_try_advisory_lock(:k)"), {"k": self._key}
            ).scalar_one()
        except BaseException:
            conn.close()
            raise
        if not got:
            conn.close()
            return False
        self._conn = conn
        self._write_row(force=True)
        return True

    def _drop_connection(self) -> None:
        if self._conn is not None:
            self._conn.invalidate()
            self._conn.close()
            self._conn = None
        self._held = False

    # --- SQLite and others: a row with an expiry ---

    def _acquire_row(self) -> bool:
        return self._write_row(force=False)

    def _write_row(self, *, force: bool) -> bool:
        now = datetime.now(UTC)
        values = {
            "holder": self.holder,
            "acquired_at": now,
            "expires_at": now + timedelta(seconds=self.ttl_s),
        }
        condition = leases.c.name == self.name
        if not force:
            condition = condition & ((leases.c.holder == self.holder) | (leases.c.expires_at < now))
        with self.engine.begin() as conn:
            if conn.execute(update(leases).where(condition).values(**values)).rowcount:
                return True
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(leases).values(name=self.name, **values))
        except IntegrityError:
            return False
        return True

    # --- background renewal ---

    def _start_keeping(self) -> None:
        self._stop_keeper.clear()
        self._keeper = threading.Thread(target=self._keep, name=f"lease-{self.name}", daemon=True)
        self._keeper.start()

    def _keep(self) -> None:
        while not self._stop_keeper.wait(self.ttl_s / 3):
            try:
                self.renew()
            except LeaseLost:
                return

    def _stop_keeping(self) -> None:
        self._stop_keeper.set()
        keeper, self._keeper = self._keeper, None
        if keeper is not None and keeper is not threading.current_thread():
            keeper.join()


class PollLease:
    """A source's poll, one worker at a time: taken for one poll, as cheaply as it can be.

    Every worker polls every source each ``bus.poll_interval``; without this, two
    workers would fetch the same items, map and route them twice, and leave the
    store to drop the repeats (the source key stays the guarantee: this only saves
    the work and the agency's system a second call). Unlike :class:`Lease` it is
    never renewed and, on PostgreSQL, writes no ``leases`` row: the advisory lock,
    taken and freed on a pooled connection held for the poll, is all. On SQLite it
    is the row, which outlives a killed poller by ``ttl_s`` at most.
    """

    def __init__(self, engine: Engine, name: str, holder: str, ttl_s: float = 60.0) -> None:
        self.engine = engine
        self.name = name
        self._row = (
            None if engine.dialect.name == "postgresql" else Lease(engine, name, holder, ttl_s)
        )
        self._key: int | None = None  # the advisory lock's, once the schema is known

    @contextmanager
    def turn(self) -> Iterator[bool]:
        """Hold the lease for a block if it is free; yields whether it is ours."""
        try:
            conn, got = self._take()
        except OperationalError as exc:
            raise StoreUnavailable(store_error(self.engine, "is not reachable", exc)) from exc
        try:
            yield got
        finally:
            self._give_back(conn, got)

    def _take(self) -> tuple[Connection | None, bool]:
        if self._row is not None:
            return None, self._row.acquire()
        conn = self.engine.connect()
        try:
            conn.execution_options(isolation_level="AUTOCOMMIT")
            if self._key is None:
                schema = conn.execute(text("SELECT current_schema()")).scalar_one()
                self._key = advisory_key(f"{schema}/{self.name}")
            lock = text("SELECT pg_try_advisory_lock(:k)")
            got = bool(conn.execute(lock, {"k": self._key}).scalar_one())
        except BaseException:
            conn.close()
            raise
        if not got:
            conn.close()
        return conn, got

    def _give_back(self, conn: Connection | None, got: bool) -> None:
        if self._row is not None:
            if got:
                self._row.release()
            return
        if conn is None or not got:
            return
        try:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
        except DBAPIError:
            conn.invalidate()  # the lock goes with the connection
        finally:
            conn.close()
