"""Holders: the live processes that claim deliveries, hold leases and run jobs and syncs.

Each bus worker (and each manual ``lienthong sync run``) registers in the
``holders`` table who it is: its name (the ``claimed_by`` of its deliveries and
the holder of its leases and runs), host, pid, the pid's start time and when it
started, and a heartbeat it renews every ``heartbeat_seconds``. Whoever finds a
holder dead releases what it held at once, instead of waiting for claims and
leases to run out:

- on the same host, a holder whose process is gone (or whose pid now belongs to
  another process) is dead as soon as anyone looks: the embedded default's
  restart finds its predecessor's claims released before it claims anything;
- on any host, a holder whose heartbeat lapsed for its ``heartbeat_timeout``
  seconds (each holder records its own) is dead: a worker killed on another
  host, or cut off from the store.

Releasing means: its pending deliveries are unclaimed (another worker takes them
now), its job and sync runs still ``running`` become ``killed`` (with when and
by whom it was noticed; a sync's cursor stays where it was), its lease rows go.
``claim_seconds`` and lease expiries stay as the outer bound, for holders that
never registered. A live holder wrongly taken for dead (a store outage longer
than the timeout) loses nothing: its deliveries may be sent twice, and the
idempotency key keeps the effect once.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import (
    ColumnElement,
    and_,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from .model import DeliveryState
from .store import deliveries, holders

log = logging.getLogger(__name__)


def process_start(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks after boot; None if it is gone or unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: count from its end.
    return int(stat.rsplit(")", 1)[1].split()[19])


def process_alive(pid: int, pid_start: int | None) -> bool:
    """Whether ``pid`` is still the process that registered with ``pid_start``."""
    if pid_start is not None and Path("/proc/self/stat").exists():
        return process_start(pid) == pid_start
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by someone else
    return True


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class DeadHolder:
    """A holder found dead, and what was released."""

    name: str
    why: str
    deliveries: int
    runs: int


class Holder:
    """This process as a holder: registered, beating, and reaping the dead it notices.

    ``start()`` registers (after releasing what dead holders held, so nothing of
    a predecessor waits) and starts the heartbeat thread, which also reaps every
    beat; ``stop()`` unregisters. One thread owns the heartbeat; the others only
    read ``name``.
    """

    def __init__(
        self,
        engine: Engine,
        name: str,
        *,
        heartbeat_s: float = 2.0,
        timeout_s: float = 10.0,
    ) -> None:
        if not 0 < heartbeat_s < timeout_s:
            raise ValueError(
                f"heartbeat every {heartbeat_s:g} s must be shorter than the "
                f"{timeout_s:g} s after which a silent holder counts as dead"
            )
        self.engine = engine
        self.name = name
        self.heartbeat_s = heartbeat_s
        self.timeout_s = timeout_s
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.pid_start = process_start(self.pid)
        self.started_at = _now()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    def start(self) -> list[DeadHolder]:
        """Release what dead holders held, register, and start beating; returns the dead."""
        dead = reap(self.engine, self.name, me=self)
        self._register()
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name="holder-heartbeat", daemon=True)
        self._thread.start()
        return dead

    def stop(self) -> None:
        """Stop beating and unregister (a clean exit: nothing is left to release)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        try:
            with self.engine.begin() as conn:
                conn.execute(delete(holders).where(self._mine()))
        except SQLAlchemyError as exc:
            log.warning("could not unregister holder %s: %s", self.name, exc)

    def _mine(self) -> ColumnElement[bool]:
        return and_(
            holders.c.name == self.name, holders.c.pid == self.pid, holders.c.host == self.host
        )

    def _register(self) -> None:
        now = _now()
        values = {
            "host": self.host,
            "pid": self.pid,
            "pid_start": self.pid_start,
            "started_at": self.started_at,
            "heartbeat_at": now,
            "timeout_s": self.timeout_s,
        }
        with self.engine.begin() as conn:
            if not conn.execute(
                update(holders).where(holders.c.name == self.name).values(**values)
            ).rowcount:
                conn.execute(insert(holders).values(name=self.name, **values))

    def beat(self) -> None:
        """Renew the heartbeat (re-registering if someone took us for dead), then reap."""
        with self.engine.begin() as conn:
            renewed = conn.execute(
                update(holders).where(self._mine()).values(heartbeat_at=_now())
            ).rowcount
        if not renewed:
            log.warning(
                "holder %s was taken for dead (no heartbeat for %g s, or unregistered): what "
                "it had claimed may be sent again by another worker, once in effect thanks to "
                "the idempotency keys. Registering again",
                self.name,
                self.timeout_s,
            )
            self._register()
        reap(self.engine, self.name, me=self)

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                self.beat()
            except SQLAlchemyError as exc:
                if not self._failing:
                    log.warning("heartbeat of %s failed; trying again: %s", self.name, exc)
                self._failing = True
            else:
                self._failing = False


def reap(engine: Engine, noticed_by: str, *, me: Holder | None = None) -> list[DeadHolder]:
    """Find dead holders and release what they held; returns them (see the module docstring)."""
    now = _now()
    host = socket.gethostname()
    with engine.connect() as conn:
        rows = conn.execute(select(holders)).all()
    found = []
    for row in rows:
        if me is not None and (row.name, row.host, row.pid, row.pid_start) == (
            me.name,
            me.host,
            me.pid,
            me.pid_start,
        ):
            continue
        why = None
        if row.host == host and not process_alive(row.pid, row.pid_start):
            why = f"its process {row.pid} on {row.host} is gone"
        elif row.heartbeat_at < now - timedelta(seconds=row.timeout_s):
            why = (
                f"no heartbeat since {row.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC "
                f"(over {row.timeout_s:g} s)"
            )
        if why is not None:
            dead = _release(engine, row, why, noticed_by)
            if dead is not None:
                found.append(dead)
    return found


def _release(engine: Engine, row: object, why: str, noticed_by: str) -> DeadHolder | None:
    from .lease import leases
    from .scheduler import job_runs
    from .sync import sync_runs

    name: str = row.name  # type: ignore[attr-defined]
    now = _now()
    note = f"killed: holder {name} died ({why}); noticed by {noticed_by} at {now:%H:%M:%S} UTC"
    with engine.begin() as conn:
        # Only the incarnation we judged: a holder that re-registered meanwhile is alive.
        gone = conn.execute(
            delete(holders).where(
                holders.c.name == name,
                holders.c.pid == row.pid,  # type: ignore[attr-defined]
                holders.c.heartbeat_at == row.heartbeat_at,  # type: ignore[attr-defined]
            )
        ).rowcount
        if not gone:
            return None
        released = conn.execute(
            update(deliveries)
            .where(deliveries.c.claimed_by == name, deliveries.c.state == DeliveryState.PENDING)
            .values(claimed_by=None, claimed_until=None, enqueued_at=None)
        ).rowcount
        # Keys it marked as queued may never have reached the queue (killed between
        # its commit and its publish): the relay's next pass queues them again; a
        # queue entry it did publish is then one more, which a claim skips.
        released += conn.execute(
            update(deliveries)
            .where(
                deliveries.c.enqueued_by == name,
                deliveries.c.enqueued_at.is_not(None),
                deliveries.c.claimed_by.is_(None),
                deliveries.c.state == DeliveryState.PENDING,
            )
            .values(enqueued_at=None, enqueued_by=None)
        ).rowcount
        runs = conn.execute(
            update(job_runs)
            .where(job_runs.c.holder == name, job_runs.c.outcome == "running")
            .values(outcome="killed", finished_at=now, detail=note)
        ).rowcount
        runs += conn.execute(
            update(sync_runs)
            .where(sync_runs.c.holder == name, sync_runs.c.outcome == "running")
            .values(outcome="killed", finished_at=now, message=note)
        ).rowcount
        conn.execute(delete(leases).where(leases.c.holder == name))
    log.warning(
        "holder %s is dead (%s): released %d claimed deliveries, marked %d run(s) killed",
        name,
        why,
        released,
        runs,
    )
    return DeadHolder(name, why, released, runs)


def live_holders(engine: Engine) -> list[dict[str, object]]:
    """The registered holders, for ``lienthong status``: name, host, pid, since, heartbeat age."""
    now = _now()
    with engine.connect() as conn:
        rows = conn.execute(select(holders).order_by(holders.c.started_at)).all()
    return [
        {
            "name": r.name,
            "host": r.host,
            "pid": r.pid,
            "started_at": r.started_at,
            "age": max(0.0, (now - r.heartbeat_at).total_seconds()),
        }
        for r in rows
    ]
