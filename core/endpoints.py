"""The endpoints of one bus process: their adapters, gates, circuits, and starts that failed.

Both stages call into adapters through here: intake polls (lienthong.intake),
dispatch sends (lienthong.dispatch), a job syncs (:class:`Gated`). Each endpoint
has a gate (a lock): one thread at a time in its adapter, since zeep clients,
LDAP handles and HTTP sessions are not made to be shared. An endpoint with
``concurrency: N`` has N send lanes (:class:`Lane`): its adapter behind its gate,
and N - 1 more adapters of the same settings, each behind a gate of its own, so
N sends are in flight at once and no adapter is ever in two threads. Each
endpoint has one circuit breaker; a change of its state is logged and stored
(``endpoint_health``) by the one thread that saw it, so ``lienthong status`` in
another process shows it.
"""

from __future__ import annotations

import functools
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from . import sync
from .adapter import Adapter, Change, SyncBatch
from .breaker import CircuitBreaker
from .config import BusSettings
from .errors import ConfigError, FatalError, LienthongError, TransientError
from .store import Store
from .sync import Report, SyncSpec
from .threads import DaemonPool

log = logging.getLogger("lienthong.bus")


@dataclass
class Lane:
    """One adapter of an endpoint and the gate that keeps it to one thread at a time.

    The first lane's adapter is the endpoint's own, started with it and shared
    with polls and syncs; the others only send, and start on their first send.
    """

    adapter: Adapter
    gate: threading.Lock
    started: bool = False

    def ensure_started(self) -> None:
        """Start this lane's adapter if it has not been; call with the gate held."""
        if not self.started:
            self.adapter.start()
            self.started = True


@dataclass
class NotStarted:
    """An endpoint whose start failed: why, and when it is tried again."""

    attempts: int
    error: str
    retry_at: float  # monotonic


class Endpoints:
    """The adapters by endpoint name, each behind its gate and circuit breaker."""

    def __init__(
        self,
        adapters: dict[str, Adapter],
        store: Store,
        settings: BusSettings,
        worker: str,
        *,
        on_started: Callable[[], None],
        spares: dict[str, list[Adapter]] | None = None,
    ) -> None:
        self.adapters = adapters
        self.store = store
        self.settings = settings
        self.worker = worker
        self._on_started = on_started  # an endpoint started late: its deliveries go now
        self.gates = {name: threading.Lock() for name in adapters}
        # The first lane is the endpoint's own adapter, started by start(), not by a send.
        self.lanes = {
            name: [Lane(adapter, self.gates[name], started=True)]
            + [Lane(spare, threading.Lock()) for spare in (spares or {}).get(name, [])]
            for name, adapter in adapters.items()
        }
        self.breakers = {
            name: CircuitBreaker(settings.breaker_failures, settings.breaker_reset_seconds)
            for name in adapters
        }
        self._lock = threading.Lock()
        self.waiting: dict[str, NotStarted] = {}  # read without the lock; changed with it
        self.starting: set[str] = set()  # start attempts running on the pool
        self.abandoned: set[str] = set()  # left behind with a call hanging, at close

    # --- starts ---

    def start(self, name: str, *, first: bool = False) -> bool:
        """Start one adapter; on a failure that may pass, leave it degraded and retry later."""
        adapter = self.adapters[name]
        try:
            with self.gates[name]:
                adapter.start()
        except Exception as exc:
            passing = isinstance(exc, (TransientError, FatalError)) or adapter.is_transient(exc)
            if first and not passing:
                raise  # a configuration error (or a bug) stops the start
            self._not_started_again(name, exc)
            return False
        with self._lock:
            was = self.waiting.pop(name, None)
        if was is not None:
            log.warning(
                "endpoint %s started after %d failed attempt(s): its deliveries go now",
                name,
                was.attempts,
            )
            self.breaker_result(name, ok=True)
            self._on_started()
        return True

    def _not_started_again(self, name: str, exc: BaseException) -> None:
        with self._lock:
            before = self.waiting.get(name)
            attempts = (before.attempts if before else 0) + 1
            # 1, 2, 4 ... seconds, up to the circuit's reset time, jittered.
            wait = min(self.settings.breaker_reset_seconds, 2.0 ** (attempts - 1))
            wait *= random.uniform(0.8, 1.2)
            text = str(exc) if isinstance(exc, LienthongError) else f"{type(exc).__name__}: {exc}"
            self.waiting[name] = NotStarted(attempts, text, time.monotonic() + wait)
        level = logging.ERROR if isinstance(exc, ConfigError) else logging.WARNING
        log.log(
            level,
            "endpoint %s did not start (attempt %d): %s. It runs degraded: its deliveries "
            "wait, its start is tried again in %.0f s, the other endpoints go on",
            name,
            attempts,
            text,
            wait,
            extra={"endpoint": name},
        )
        before_state, after_state = self.breakers[name].trip(f"(did not start: {text})", wait)
        self.record_health(name, changed=before_state != after_state or attempts == 1)

    def retry_starts(self, pool: DaemonPool) -> None:
        """Try again to start the endpoints whose back-off has passed, on the pool."""
        now = time.monotonic()
        with self._lock:
            due = [n for n, s in self.waiting.items() if s.retry_at <= now]
        for name in due:
            if pool.submit(name, functools.partial(self._start_attempt, name)):
                with self._lock:
                    self.starting.add(name)

    def _start_attempt(self, name: str) -> None:
        try:
            self.start(name)
        finally:
            with self._lock:
                self.starting.discard(name)

    def not_started(self) -> dict[str, str]:
        """Endpoints running degraded because their start failed, with why."""
        with self._lock:
            return {name: s.error for name, s in self.waiting.items()}

    def starts_running(self) -> set[str]:
        """The endpoints whose start is being tried again right now."""
        with self._lock:
            return set(self.starting)

    def stop_all(self) -> None:
        """Stop each adapter, but none with a call still hanging in it (that call would block)."""
        for name, lanes in self.lanes.items():
            if name in self.abandoned:
                continue
            for number, lane in enumerate(lanes):
                if lane.started:  # the endpoint's own adapter counts as started
                    self._stop_lane(name, number, lane)

    @staticmethod
    def _stop_lane(name: str, number: int, lane: Lane) -> None:
        which = f"endpoint {name}" + (f" (send lane {number + 1})" if number else "")
        if not lane.gate.acquire(timeout=5):
            log.warning("%s is still busy in another thread; not stopped", which)
            return
        try:
            lane.adapter.stop()
        except Exception:
            log.exception("%s did not stop cleanly", which)
        finally:
            if number:
                lane.started = False  # a spare starts again on its next send
            lane.gate.release()

    def run_sync(self, spec: SyncSpec, dry_run: bool) -> Report:
        """Run one sync between two endpoints, each call through its gate (lienthong.sync)."""
        waiting = self.not_started()
        for name in (spec.source_endpoint, spec.target_endpoint):
            if name in waiting:
                raise TransientError(
                    f"sync '{spec.name}': endpoint '{name}' has not started: {waiting[name]}"
                )
        source, target = spec.source_endpoint, spec.target_endpoint
        return sync.run(
            spec,
            Gated(self.adapters[source], self.gates[source]),
            Gated(self.adapters[target], self.gates[target]),
            self.store.engine,
            dry_run=dry_run,
            holder=self.worker,
        )

    # --- circuits ---

    def tell_circuit(self, endpoint: str, up: bool | None) -> None:
        """Record a failed call's verdict on the endpoint; ``None`` gives back a trial call."""
        if up is None:
            self.breakers[endpoint].cancel_trial()
        else:
            self.breaker_result(endpoint, ok=up)

    def breaker_result(self, endpoint: str, *, ok: bool) -> None:
        before, after = self.breakers[endpoint].record(ok=ok)
        if after != before:
            self.record_health(endpoint, changed=True)

    def record_health(self, endpoint: str, *, changed: bool) -> None:
        breaker = self.breakers[endpoint]
        if changed:
            log.warning("endpoint %s: circuit %s", endpoint, breaker.describe())
        try:
            self.store.set_endpoint_health(
                endpoint, breaker.state.value, breaker.describe(), self.worker
            )
        except TransientError:
            log.warning("could not record the circuit state of %s", endpoint)


class Gated:
    """An adapter seen through its endpoint's gate, for a sync run on a job thread.

    Each call holds the gate, so the worker loop's sends to the same endpoint
    wait between the sync's calls, not for the whole run. A read is consumed
    inside the call: records may come from a live cursor (a paged search).
    """

    def __init__(self, adapter: Adapter, gate: threading.Lock) -> None:
        self.adapter = adapter
        self.gate = gate

    def sync_read(self, entity: str, since: str | None) -> SyncBatch:
        with self.gate:
            batch = self.adapter.sync_read(entity, since)
            return SyncBatch(list(batch.records), batch.complete, batch.cursor)

    def sync_apply(self, entity: str, change: Change) -> None:
        with self.gate:
            self.adapter.sync_apply(entity, change)

    def is_transient(self, exc: BaseException) -> bool:
        return self.adapter.is_transient(exc)
