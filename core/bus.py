"""The bus: accepts messages from endpoints, routes them, delivers them, never loses one.

Data path: an inbound adapter hands messages to :meth:`Bus.accept`, which
parses each once (hardened), routes and maps it, and stores the message with
its deliveries in one transaction before the source is acknowledged. A bad
message is stored too, as a dead letter with its reason. Workers then claim
due deliveries (from the store on the embedded default, from RabbitMQ in
production), call the target adapter's ``send`` with the delivery's
idempotency key, and record the outcome: delivered, retried later with
exponential back-off and jitter, or dead-lettered.
"""

from __future__ import annotations

import functools
import gc
import logging
import os
import random
import signal
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import sqlalchemy.exc

from . import audit, sync
from .adapter import INVALID_HEADER, Acceptance, Adapter, Capability, Change, Services, SyncBatch
from .breaker import CircuitBreaker
from .config import Config
from .disposition import (
    Disposition,
    decide,
    describe,
    endpoint_up,
    failed_send,
    undeclared,
)
from .errors import (
    ConfigError,
    FatalError,
    LienthongError,
    RejectedError,
    StoreUnavailable,
    TransientError,
)
from .holders import Holder
from .host import PluginHost
from .mapping import MappingLibrary
from .message import Message
from .metrics import Metrics, MetricsServer
from .model import Delivery, Intake, Outcome, Result, Stage
from .relay import Relay
from .router import Router
from .scheduler import PollReport, Scheduler
from .store import Cursors, Store, make_engine, prepare_schema, store_error, utcnow
from .store import audit as audit_table
from .sync import Report, SyncSpec
from .threads import DaemonPool
from .xmldiff import Difference, diff

log = logging.getLogger(__name__)


@dataclass
class PreviewTarget:
    """One delivery a replay preview found: made now, against what was attempted."""

    endpoint: str
    route: str
    mapping: str | None  # name@hash of the mapping that makes it now
    attempted_mapping: str | None  # name@hash of the one that made the attempted body
    differences: list[Difference]
    body: bytes


@dataclass
class ReplayPreview:
    """What ``lienthong dlq replay --dry-run`` shows for one dead letter."""

    dead_id: int
    action: str
    targets: list[PreviewTarget] = field(default_factory=list)
    now_fails: str | None = None
    attempted: bool = True  # False: a message parked before routing, nothing was sent

    def lines(self) -> list[str]:
        """The preview as the command prints it."""
        shown = [f"#{self.dead_id}: {self.action}"]
        if self.now_fails:
            shown.append(f"  with the current routes and mappings it fails: {self.now_fails}")
        for t in self.targets:
            via = f"route {t.route}" + (f", mapping {t.mapping}" if t.mapping else "")
            if not self.attempted:
                shown.append(f"  to {t.endpoint} by {via}: {len(t.body)} bytes")
                continue
            was = f" (attempted: {t.attempted_mapping})" if t.attempted_mapping else ""
            if not t.differences:
                shown.append(f"  to {t.endpoint} by {via}: the same as attempted{was}")
                continue
            shown.append(
                f"  to {t.endpoint} by {via}: {len(t.differences)} difference(s) from what "
                f"was attempted{was}"
            )
            shown.extend(f"    {d}" for d in t.differences)
        return shown


def _mapping_label(delivery: dict[str, Any] | None) -> str | None:
    if delivery is None or not delivery.get("mapping"):
        return None
    return f"{delivery['mapping']}@{(delivery['mapping_hash'] or '')[:12]}"


#: Acceptance times kept for the lag metric at most; more means they were lost.
_LAG_TRACKED = 100_000
# Seconds between purges of mapping inputs older than bus.mapping_inputs_days.
_PURGE_EVERY = 3600.0

#: How long a deferred delivery waits when its endpoint is busy in another thread.
_BUSY_WAIT_S = 0.2


def _fields(delivery: Delivery) -> dict[str, str]:
    """The fields a log line about a delivery carries (lienthong.logs)."""
    return {
        "message_id": delivery.message_id,
        "correlation_id": delivery.correlation_id,
        "endpoint": delivery.endpoint,
        "route": delivery.route,
        "delivery": delivery.key,
    }


@dataclass
class CycleResult:
    """What one pass of the worker loop did.

    ``received`` counts new messages; ``repeats`` those a source offered again
    that the store already had (not stored twice). ``polling`` says a poll was
    still running when the pass ended: its messages come in a later pass.
    """

    received: int = 0
    delivered: int = 0
    retried: int = 0
    dead: int = 0
    repeats: int = 0
    polling: bool = False
    #: Set when a run ended at its ``max_seconds`` bound, with work still coming or due.
    bounded: float | None = None

    @property
    def worked(self) -> bool:
        return bool(self.received or self.delivered or self.retried or self.dead)

    @property
    def idle(self) -> bool:
        """Nothing happened and nothing is on its way."""
        return not (self.worked or self.polling)

    def add(self, other: CycleResult) -> None:
        for name in ("received", "delivered", "retried", "dead", "repeats"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class _NotStarted:
    """An endpoint whose start failed: why, and when it is tried again."""

    attempts: int
    error: str
    retry_at: float  # monotonic


class _Gated:
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


class Bus:
    """One process of the bus: its endpoints, router, store and (in production) queues.

    Threads and what they own (docs/architecture.md, "Threads"): the thread that
    calls :meth:`run` delivers, consumes the queues and owns the consumer's
    connection; sources are polled on a pool of ``bus.poll_threads`` daemon
    threads, and scheduled jobs on the scheduler's. Each endpoint has a gate:
    one thread at a time calls into its adapter (start, receive, send, sync).
    Every thread that publishes has a broker connection of its own (the relay).
    """

    def __init__(
        self, config: Config, host: PluginHost | None = None, *, worker: str | None = None
    ) -> None:
        self.config = config
        self.host = host or PluginHost()
        self.worker = worker or f"{socket.gethostname()}:{os.getpid()}"
        settings = config.bus
        self.store = Store(make_engine(settings.store.reveal()))
        self.store.keep_mapping_inputs = settings.mapping_inputs_days > 0
        prepare_schema(self.store.engine)
        # The audit chain's anchors outside the database (lienthong.audit).
        self.store.audit_key = audit.load_key(
            settings.audit_key, settings.var_dir, embedded=self.store.dialect == "sqlite"
        )
        audit.check_key(self.store.engine, audit_table, self.store.audit_key)
        self.anchor = audit.AnchorKeeper(
            self.store.engine, audit_table, settings.anchor_path, settings.audit_anchor_seconds
        )
        self.mappings = MappingLibrary(
            settings.mappings,
            functions=self.host.xpath_functions,
            max_bytes=settings.max_message_bytes,
        )
        self.router = Router(config.routes, self.mappings, max_bytes=settings.max_message_bytes)
        services = Services(
            engine=self.store.engine,
            base_dir=config.base_dir,
            var_dir=settings.var_dir,
            max_message_bytes=settings.max_message_bytes,
            cursors=Cursors(self.store.engine),
            mappings_dir=settings.mappings,
        )
        self.adapters: dict[str, Adapter] = {
            name: self.host.adapter(ep.adapter)(name, ep.settings, services)
            for name, ep in config.endpoints.items()
        }
        # One thread at a time in each adapter: zeep clients, LDAP handles and HTTP
        # sessions are not made to be shared.
        self.gates = {name: threading.Lock() for name in self.adapters}
        self.relay: Relay | None = None
        if not settings.embedded:
            senders = [n for n, a in self.adapters.items() if Capability.SEND in a.capabilities]
            self.relay = Relay(settings.broker.reveal(), senders, prefetch=settings.batch_size)
        self.scheduler: Scheduler | None = None
        self._scheduled_polls = {job.poll for job in config.jobs.values() if job.poll}
        self.breakers = {
            name: CircuitBreaker(settings.breaker_failures, settings.breaker_reset_seconds)
            for name in self.adapters
        }
        self.metrics = Metrics(
            self.store, self.breakers, broker=None if settings.embedded else settings.broker
        )
        self.host.prepare_metrics(registry=self.metrics.registry, engine=self.store.engine)
        self.metrics_server: MetricsServer | None = None
        self.console_server: Any = None  # lienthong.console.server.ConsoleServer
        self.holder = Holder(
            self.store.engine,
            self.worker,
            heartbeat_s=settings.heartbeat_seconds,
            timeout_s=settings.heartbeat_timeout,
        )
        self._lease = timedelta(seconds=settings.claim_seconds)
        self._stop = threading.Event()
        self._wake = threading.Event()  # set when there is something to deliver
        self._closing = threading.Event()
        self._checkpointer: threading.Thread | None = None
        self._pool: DaemonPool | None = None
        self._started = False
        self._registered = False
        self._last_relay = 0.0
        self._last_purge = -_PURGE_EVERY  # the first cycle purges
        self._queued: list[tuple[str, Any]] = []
        # Shared between the poll and job threads that accept and the loop that delivers:
        self._lock = threading.Lock()
        self._claimed: list[Delivery] = []  # accepted here, claimed, not sent yet (embedded)
        self._accepted_at: dict[str, float] = {}  # monotonic, for the lag metric
        self._counts = CycleResult()  # accepted since the loop last looked
        self._not_started: dict[str, _NotStarted] = {}
        self._starting: set[str] = set()  # start attempts running on the pool
        self._abandoned: set[str] = set()  # endpoints left behind with a call hanging, at close
        self._tally = threading.local()  # this thread's poll: new and repeats

    # --- lifecycle ---

    def start(self) -> None:
        """Start every endpoint's adapter, the scheduler and the pollers.

        An endpoint whose system does not answer (its start raises a transient or
        fatal error) starts degraded: its circuit open, its deliveries waiting, its
        start tried again with back-off while every other endpoint runs. Only a
        configuration error stops the start.
        """
        if self._started:
            return
        settings = self.config.bus
        if settings.metrics_port is not None and self.metrics_server is None:
            # First, so a port already taken stops the bus before it connects anywhere.
            self.metrics_server = MetricsServer(
                self.metrics, settings.metrics_host, settings.metrics_port
            )
            self.metrics_server.start()
        if settings.console_port is not None and self.console_server is None:
            from .console.server import ConsoleServer

            self.console_server = ConsoleServer(
                self.config, self.host, listen=settings.console_host, port=settings.console_port
            ).start()
        try:
            # Before anything is claimed: what dead predecessors held is released now.
            self.holder.start()
        except sqlalchemy.exc.OperationalError as exc:
            raise StoreUnavailable(store_error(self.store.engine, "is not reachable", exc)) from exc
        self._registered = True
        for name in self.adapters:
            self._start_endpoint(name, first=True)
        self._pool = DaemonPool(settings.poll_threads, "lienthong-poll")
        self._started = True
        if self.store.audit_key is None:
            log.warning(
                "bus.audit_key is not set: the audit trail is chained but not keyed, so whoever "
                "can write the database can rewrite it with new hashes; only the anchor file "
                "%s would show it. Hint: bus.audit_key: {file: /etc/lienthong/audit.key}, "
                "the same on every worker",
                settings.anchor_path,
            )
        self.anchor.start()
        if self.store.dialect == "sqlite":
            self._checkpointer = threading.Thread(
                target=self._checkpoint_loop, name="sqlite-checkpoint", daemon=True
            )
            self._checkpointer.start()
        if self.config.jobs:
            # Every process runs the scheduler; a lease per job makes each tick run once.
            self.scheduler = Scheduler(
                self.store.engine,
                self.config.jobs,
                self._scheduled_poll,
                self.run_sync,
                holder=self.worker,
            )
            self.scheduler.start()
        self.host.after_start(adapters=self.adapters, config=self.config)

    def _start_endpoint(self, name: str, *, first: bool = False) -> bool:
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
            was = self._not_started.pop(name, None)
        if was is not None:
            log.warning(
                "endpoint %s started after %d failed attempt(s): its deliveries go now",
                name,
                was.attempts,
            )
            self._breaker_result(name, ok=True)
            self._wake.set()
        return True

    def _not_started_again(self, name: str, exc: BaseException) -> None:
        settings = self.config.bus
        with self._lock:
            before = self._not_started.get(name)
            attempts = (before.attempts if before else 0) + 1
            # 1, 2, 4 ... seconds, up to the circuit's reset time, jittered.
            wait = min(settings.breaker_reset_seconds, 2.0 ** (attempts - 1))
            wait *= random.uniform(0.8, 1.2)
            text = str(exc) if isinstance(exc, LienthongError) else f"{type(exc).__name__}: {exc}"
            self._not_started[name] = _NotStarted(attempts, text, time.monotonic() + wait)
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
        self._record_health(name, changed=before_state != after_state or attempts == 1)

    def _retry_starts(self) -> None:
        """Try again to start the endpoints whose back-off has passed, on the pool."""
        assert self._pool is not None
        now = time.monotonic()
        with self._lock:
            due = [n for n, s in self._not_started.items() if s.retry_at <= now]
        for name in due:
            if self._pool.submit(name, functools.partial(self._start_attempt, name)):
                with self._lock:
                    self._starting.add(name)

    def _start_attempt(self, name: str) -> None:
        try:
            self._start_endpoint(name)
        finally:
            with self._lock:
                self._starting.discard(name)

    def not_started(self) -> dict[str, str]:
        """Endpoints running degraded because their start failed, with why."""
        with self._lock:
            return {name: s.error for name, s in self._not_started.items()}

    def stop(self) -> None:
        """Ask the loop to finish its current batch and return."""
        self._stop.set()
        self._wake.set()

    def _checkpoint_loop(self) -> None:
        while not self._closing.wait(1.0):
            try:
                self.store.checkpoint()
            except sqlalchemy.exc.SQLAlchemyError as exc:
                log.warning("SQLite checkpoint failed; the next one retries: %s", exc)

    def close(self) -> None:
        """Stop everything; calls still hanging in a source are left behind, not waited for."""
        if self.scheduler:
            self.scheduler.shutdown()
            self.scheduler = None
        if self._pool is not None:
            left = self._pool.shutdown(timeout=5)
            if left:
                log.warning(
                    "stopping while these endpoints still have a call running, left behind "
                    "(their source offers again what was not stored): %s",
                    ", ".join(sorted(left)),
                )
            self._abandoned |= left
            self._pool = None
        with self._lock:
            claimed, self._claimed = self._claimed, []
        if claimed:
            # Accepted here but not sent yet: give them back now, not when the claim runs out.
            self.store.release([d.key for d in claimed])
        self._closing.set()
        if self._checkpointer is not None:
            self._checkpointer.join(timeout=10)
            self._checkpointer = None
        self._closing.clear()
        if self._started:
            self.anchor.stop()
        for name, adapter in self.adapters.items():
            if name in self._abandoned:
                continue  # a call is still hanging in it: stopping would wait for that call
            gate = self.gates[name]
            if not gate.acquire(timeout=5):
                log.warning("endpoint %s is still busy in another thread; not stopped", name)
                continue
            try:
                adapter.stop()
            except Exception:
                log.exception("endpoint %s did not stop cleanly", adapter.endpoint)
            finally:
                gate.release()
        if self.metrics_server:
            self.metrics_server.stop()
            self.metrics_server = None
        if self.console_server:
            self.console_server.stop()
            self.console_server = None
        if self.relay:
            self.relay.close()
        if self._registered:
            self.holder.stop()
            self._registered = False
        self.store.engine.dispose()
        self._started = False

    def __enter__(self) -> Bus:
        self.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # --- accept: the Inbox every receiving adapter is handed (from any thread) ---

    def accept(self, messages: Sequence[Message]) -> list[Acceptance]:
        """Route and store ``messages``; when this returns, the source may acknowledge them."""
        intakes = [self._intake(m) for m in messages]
        # On the embedded default this process delivers what it accepts straight
        # from memory, already claimed; with a broker, any worker may.
        claim = None if self.relay else (self.worker, self._lease)
        stored = self.store.accept(intakes, enqueued=self.relay is not None, claim=claim)
        accepted_at = time.monotonic()
        self.metrics.accepted(stored)
        if self.relay:
            self._publish([(o.key, o.endpoint) for i, new in stored if new for o in i.outgoing])
        info = log.isEnabledFor(logging.INFO)
        acceptances = []
        claimed: list[Delivery] = []
        new_count = parked = 0
        for intake, new in stored:
            m = intake.message
            acceptances.append(Acceptance(m.id, intake.parked, duplicate=not new))
            if not new:
                if info:
                    log.info(
                        "message from %s already accepted (source key %s): not stored again",
                        m.source,
                        m.source_key,
                        extra={"endpoint": m.source},
                    )
                continue
            new_count += 1
            if claim:
                claimed.extend(
                    Delivery(
                        o.key,
                        m.id,
                        m.correlation_id,
                        m.kind,
                        m.source,
                        o.route,
                        o.endpoint,
                        o.headers,
                        o.body,
                        0,
                    )
                    for o in intake.outgoing
                    if o.order is None  # an ordered one waits for the store's turn check
                )
            self.host.after_accept(message=m, parked=intake.parked)
            if intake.parked:
                parked += 1
                log.warning(
                    "message %s from %s dead-lettered at %s: %s",
                    m.id,
                    m.source,
                    intake.stage,
                    intake.parked,
                    extra={
                        "message_id": m.id,
                        "correlation_id": m.correlation_id,
                        "endpoint": m.source,
                    },
                )
                self.host.after_dead_letter(message=m, endpoint=None, reason=intake.parked)
            else:
                if info:
                    log.info(
                        "message %s (%s) accepted from %s, routed to %s",
                        m.id,
                        m.kind,
                        m.source,
                        ", ".join(o.endpoint for o in intake.outgoing),
                        extra={
                            "message_id": m.id,
                            "correlation_id": m.correlation_id,
                            "endpoint": m.source,
                            "route": ",".join(dict.fromkeys(o.route for o in intake.outgoing)),
                        },
                    )
                self.host.after_route(message=m, targets=[o.endpoint for o in intake.outgoing])
        repeats = len(stored) - new_count
        with self._lock:
            self._counts.received += new_count
            self._counts.repeats += repeats
            self._counts.dead += parked
            if claimed:
                if len(self._accepted_at) > _LAG_TRACKED:
                    self._accepted_at.clear()  # lost to a crash or another worker
                self._accepted_at.update((d.key, accepted_at) for d in claimed)
                self._claimed.extend(claimed)
        tally = getattr(self._tally, "counts", None)
        if tally is not None:
            tally[0] += new_count
            tally[1] += repeats
        if claim and new_count:
            self._wake.set()  # the loop sends them (an ordered one after its turn check)
        return acceptances

    def _publish(self, items: list[tuple[str, str]]) -> None:
        """Queue fresh deliveries' keys; if the broker is gone, leave them to the relay."""
        assert self.relay is not None
        try:
            self.relay.publish(items)
        except TransientError as exc:
            log.warning("queueing %d deliveries failed; the relay queues them: %s", len(items), exc)
            try:
                self.store.unmark_enqueued([key for key, _ in items])
            except StoreUnavailable:
                log.warning("the relay queues them after bus.requeue_seconds")

    def _intake(self, message: Message) -> Intake:
        invalid = message.headers.get(INVALID_HEADER)
        if invalid:
            return Intake(message, parked=f"invalid at the source: {invalid}", stage=Stage.ACCEPT)
        try:
            message.tree(max_bytes=self.config.bus.max_message_bytes)
            self.host.prepare_message(message)
        except RejectedError as exc:
            return Intake(message, parked=str(exc), stage=Stage.ACCEPT)
        try:
            outgoing = self.router.route(message)
        except TransientError:
            raise
        except LienthongError as exc:
            return Intake(message, parked=str(exc), stage=Stage.ROUTE)
        refusal = self.config.access.refusal(message.source, [o.endpoint for o in outgoing])
        if refusal:
            return Intake(message, parked=refusal, stage=Stage.ACCESS)
        return Intake(message, outgoing=outgoing)

    # --- receive ---

    def _receivers(self) -> list[str]:
        """The endpoints the worker loop polls (those a job polls are left to the job)."""
        return [
            name
            for name, adapter in self.adapters.items()
            if Capability.RECEIVE in adapter.capabilities and name not in self._scheduled_polls
        ]

    def poll(self) -> int:
        """Poll every receiving endpoint once, on this thread; returns how many messages came.

        An endpoint that a job polls on a schedule (``poll:`` in ``jobs``) is left
        to that job.
        """
        return sum(self._poll_one(name) for name in self._receivers())

    def _poll_one(self, name: str, *, scheduled: bool = False) -> int:
        """Poll one endpoint unless its circuit is open; errors open its circuit, not ours.

        The worker loop's poll round logs an error and goes on; a ``scheduled`` poll
        (a job's) raises it for the job's record, a passing one as a
        ``TransientError`` (the run is interrupted, the next tick tries again).
        The circuit is told the same either way (lienthong.disposition).
        """
        adapter = self.adapters[name]
        if name in self._not_started:
            if scheduled:
                raise TransientError(
                    f"endpoint '{name}' has not started: {self.not_started()[name]}. Hint: "
                    "'lienthong status' shows when its start is tried again"
                )
            return 0
        with self.gates[name]:
            breaker = self.breakers[name]
            if not breaker.allow():
                # It keeps failing: leave it alone until its circuit half-opens.
                if scheduled:
                    raise TransientError(
                        f"endpoint '{name}' not polled: circuit {breaker.describe()}"
                    )
                return 0
            try:
                handed = adapter.receive(self)
            except Exception as exc:
                disposition = decide(exc, adapter)
                self._tell_circuit(name, endpoint_up(exc, disposition))
                if disposition is Disposition.HOLD:
                    raise  # the bus's own store: the run loop waits for it
                passing = disposition is Disposition.RETRY
                if scheduled:
                    if passing and not isinstance(exc, TransientError):
                        raise TransientError(
                            f"endpoint '{name}' could not be polled: {describe(exc)}"
                        ) from exc
                    raise
                if passing:
                    log.warning("endpoint %s could not be polled: %s", name, describe(exc))
                else:
                    log.error(
                        "endpoint %s failed while polling: %s",
                        name,
                        describe(exc),
                        exc_info=undeclared(exc, disposition),
                    )
                return 0
            self._breaker_result(name, ok=True)
            return handed

    def _poll_task(self, name: str) -> None:
        try:
            self._poll_one(name)
        except StoreUnavailable as exc:
            log.warning("endpoint %s: polled, but %s; its source keeps the messages", name, exc)

    def _poll_round(self) -> None:
        """Poll the sources concurrently on the pool; wait a while for them, not for a hung one.

        Each endpoint has one poll at a time: one still running from an earlier
        round is left to finish. The wait is bounded, so a source that takes its
        whole timeout to answer delays neither the others nor the deliveries.
        """
        assert self._pool is not None
        submitted = [
            name
            for name in self._receivers()
            if self._pool.submit(name, functools.partial(self._poll_task, name))
        ]
        self._pool.wait(submitted, timeout=max(1.0, self.config.bus.poll_interval))

    def _polling(self) -> bool:
        """Whether a poll (not a start attempt) is still running on the pool."""
        if self._pool is None:
            return False
        with self._lock:
            starting = set(self._starting)
        return bool(self._pool.busy(self._receivers()) - starting)

    def poll_endpoint(self, name: str) -> int:
        """Poll one endpoint now (a scheduled poll job); errors go to the job's record.

        Through the endpoint's circuit, as the worker loop's polls: an open
        circuit is not called, and a failure counts (``Bus._poll_one``).
        """
        return self._poll_one(name, scheduled=True)

    def _scheduled_poll(self, name: str) -> PollReport:
        """A scheduled poll, with how many of the messages it handed over were new."""
        self._tally.counts = [0, 0]
        try:
            self.poll_endpoint(name)
            new, repeats = self._tally.counts
        finally:
            del self._tally.counts
        return PollReport(new, repeats)

    def run_sync(self, spec: SyncSpec, dry_run: bool) -> Report:
        """Run one sync between two endpoints (the scheduler holds the job's lease)."""
        for name in (spec.source_endpoint, spec.target_endpoint):
            if name in self.not_started():
                raise TransientError(
                    f"sync '{spec.name}': endpoint '{name}' has not started: "
                    f"{self.not_started()[name]}"
                )
        return sync.run(
            spec,
            _Gated(self.adapters[spec.source_endpoint], self.gates[spec.source_endpoint]),
            _Gated(self.adapters[spec.target_endpoint], self.gates[spec.target_endpoint]),
            self.store.engine,
            dry_run=dry_run,
            holder=self.worker,
        )

    # --- deliver ---

    def deliver_due(self) -> CycleResult:
        """Claim due deliveries from the store and send them (the embedded default's worker)."""
        result = CycleResult()
        claimed_at = time.monotonic()
        batch_size = self.config.bus.batch_size
        with self._lock:
            claimed, self._claimed = self._claimed[:batch_size], self._claimed[batch_size:]
        if claimed:
            self._finish([self._send(d) for d in claimed], result, claimed_at)
            return result
        claimed = self.store.claim_due(self.worker, limit=batch_size, lease=self._lease)
        if claimed:
            self._finish([self._send(d) for d in claimed], result, claimed_at)
        return result

    def deliver_keys(self, keys: Sequence[str]) -> CycleResult:
        """Claim and send deliveries a queue told us about; those done or taken are skipped."""
        result = CycleResult()
        claimed_at = time.monotonic()
        claimed = self.store.claim(keys, self.worker, lease=self._lease)
        if claimed:
            self._finish([self._send(d) for d in claimed], result, claimed_at)
        return result

    def _send(self, delivery: Delivery) -> Outcome:
        name = delivery.endpoint
        adapter = self.adapters.get(name)
        if adapter is None:
            return Outcome(
                delivery, Result.REJECTED, f"endpoint '{name}' is not configured in this process"
            )
        refusal = self.config.access.refusal(delivery.source, [name])
        if refusal:
            # A rule added after the message was accepted: checked again at every send.
            return Outcome(delivery, Result.REJECTED, refusal, stage=Stage.ACCESS)
        if name in self._not_started:  # a read: the lock guards the changes
            wait = max(self.breakers[name].retry_in(), _BUSY_WAIT_S)
            return Outcome(delivery, Result.DEFERRED, retry_at=utcnow() + timedelta(seconds=wait))
        gate = self.gates[name]
        if not gate.acquire(blocking=False):
            # Another thread is in this adapter (a poll, a sync): not an attempt, back soon.
            return Outcome(
                delivery, Result.DEFERRED, retry_at=utcnow() + timedelta(seconds=_BUSY_WAIT_S)
            )
        try:
            return self._send_through(adapter, delivery)
        finally:
            gate.release()

    def _send_through(self, adapter: Adapter, delivery: Delivery) -> Outcome:
        breaker = self.breakers[delivery.endpoint]
        if not breaker.allow():
            # Not an attempt: the endpoint keeps failing, so it is left alone for a while.
            wait = max(breaker.retry_in(), 0.05)
            return Outcome(delivery, Result.DEFERRED, retry_at=utcnow() + timedelta(seconds=wait))
        try:
            adapter.send(delivery.to_message(), key=delivery.key)
        except Exception as exc:
            # What happens next is decided in one place: lienthong.disposition.
            disposition = decide(exc, adapter)
            self._tell_circuit(delivery.endpoint, endpoint_up(exc, disposition))
            if disposition is Disposition.RETRY_SLOW:  # a person must look
                log.error(
                    "endpoint %s: %s",
                    delivery.endpoint,
                    describe(exc),
                    exc_info=undeclared(exc, disposition),
                    extra=_fields(delivery),
                )
            return failed_send(delivery, exc, disposition, self.config.bus.retry, utcnow())
        self._breaker_result(delivery.endpoint, ok=True)
        return Outcome(delivery, Result.OK)

    def _tell_circuit(self, endpoint: str, up: bool | None) -> None:
        """Record a failed call's verdict on the endpoint; ``None`` gives back a trial call."""
        if up is None:
            self.breakers[endpoint].cancel_trial()
        else:
            self._breaker_result(endpoint, ok=up)

    def _breaker_result(self, endpoint: str, *, ok: bool) -> None:
        before, after = self.breakers[endpoint].record(ok=ok)
        if after != before:
            self._record_health(endpoint, changed=True)

    def _record_health(self, endpoint: str, *, changed: bool) -> None:
        breaker = self.breakers[endpoint]
        if changed:
            log.warning("endpoint %s: circuit %s", endpoint, breaker.describe())
        try:
            self.store.set_endpoint_health(
                endpoint, breaker.state.value, breaker.describe(), self.worker
            )
        except TransientError:
            log.warning("could not record the circuit state of %s", endpoint)

    def _finish(self, outcomes: list[Outcome], result: CycleResult, claimed_at: float) -> None:
        self.store.finish(outcomes, self.worker)
        self.metrics.finished(outcomes, claimed_at, self._accepted_at)
        info = log.isEnabledFor(logging.INFO)
        for o in outcomes:
            d = o.delivery
            if o.result == Result.OK:
                result.delivered += 1
                if info:
                    log.info(
                        "message %s delivered to %s (attempt %d)",
                        d.message_id,
                        d.endpoint,
                        d.attempts + 1,
                        extra=_fields(d),
                    )
                if "lienthong_after_deliver" not in self.host.observed:
                    continue
                self.host.after_deliver(
                    message=d.to_message(), endpoint=d.endpoint, attempts=d.attempts + 1
                )
            elif o.result == Result.DEFERRED:
                continue
            elif o.result == Result.TRANSIENT:
                result.retried += 1
                log.info(
                    "message %s to %s will be retried (attempt %d failed): %s",
                    d.message_id,
                    d.endpoint,
                    d.attempts + 1,
                    o.error,
                    extra=_fields(d),
                )
            else:
                result.dead += 1
                log.warning(
                    "message %s to %s dead-lettered after %d attempt(s): %s",
                    d.message_id,
                    d.endpoint,
                    d.attempts + 1,
                    o.error,
                    extra=_fields(d),
                )
                self.host.after_dead_letter(
                    message=d.to_message(), endpoint=d.endpoint, reason=o.error or ""
                )

    # --- dead letters ---

    def replay(self, dead_id: int) -> str:
        """Send a dead letter through again; returns what was done, or raises ``RejectedError``.

        A failed delivery goes back to its endpoint's queue (its key unchanged, so
        an effect that did happen is not repeated) if the access rules still let
        its source send there; a message parked before routing is routed again
        with the current routes, mappings and access rules.
        """
        dead = self.store.dead_letter(dead_id)
        if dead is None:
            raise RejectedError(f"no dead letter #{dead_id}. Hint: 'lienthong dlq list'")
        if dead["replayed_at"] is not None:
            raise RejectedError(f"dead letter #{dead_id} was already replayed")
        if dead["delivery_id"]:
            refusal = self.config.access.refusal(dead["source"], [dead["endpoint"]])
            if refusal:
                raise RejectedError(f"dead letter #{dead_id} cannot be replayed: {refusal}")
            self.store.retry_delivery(dead["delivery_id"], dead["message_id"])
            self.store.mark_replayed(dead_id)
            return f"delivery to '{dead['endpoint']}' queued again"
        message = self.store.message(dead["message_id"])
        assert message is not None
        intake = self._intake(message)
        if intake.parked:
            raise RejectedError(f"dead letter #{dead_id} still fails: {intake.parked}")
        self.store.add_deliveries(message.id, intake.outgoing, message.body)
        self.store.mark_replayed(dead_id)
        targets = ", ".join(o.endpoint for o in intake.outgoing)
        return f"routed again to {targets}"

    def replay_preview(self, dead_id: int) -> ReplayPreview:
        """What :meth:`replay` would do for a dead letter, changing nothing.

        For each delivery the current routes and mappings make of the message:
        its node-level differences from the body that was attempted (a parked
        message had none attempted).
        """
        dead = self.store.dead_letter(dead_id)
        if dead is None:
            raise RejectedError(f"no dead letter #{dead_id}. Hint: 'lienthong dlq list'")
        if dead["replayed_at"] is not None:
            at = f"{dead['replayed_at']:%Y-%m-%d %H:%M:%S}"
            return ReplayPreview(dead_id, f"already replayed at {at}: replay refuses it")
        message = self.store.message(dead["message_id"])
        assert message is not None
        attempted = self.store.delivery(dead["delivery_id"]) if dead["delivery_id"] else None
        if attempted is not None:
            refusal = self.config.access.refusal(dead["source"], [dead["endpoint"]])
            action = (
                f"cannot be replayed: {refusal}"
                if refusal
                else f"would queue the delivery to '{dead['endpoint']}' again "
                "(the attempted body, key unchanged)"
            )
        else:
            action = "would route the message again"
        sent = attempted is not None
        intake = self._intake(message)
        if intake.parked:
            return ReplayPreview(dead_id, action, now_fails=intake.parked, attempted=sent)
        targets = []
        for out in intake.outgoing:
            if attempted is not None and out.key != attempted["id"]:
                continue
            before = attempted["body"] if attempted is not None else None
            targets.append(
                PreviewTarget(
                    endpoint=out.endpoint,
                    route=out.route,
                    mapping=f"{out.mapping.name}@{out.mapping.hash[:12]}" if out.mapping else None,
                    attempted_mapping=_mapping_label(attempted),
                    differences=diff(before, out.body) if before is not None else [],
                    body=out.body,
                )
            )
        if attempted is not None and not targets:
            return ReplayPreview(
                dead_id,
                action,
                now_fails=f"the current routes no longer send this message to "
                f"'{dead['endpoint']}' by route '{attempted['route']}'",
            )
        return ReplayPreview(dead_id, action, targets, attempted=sent)

    # --- production: queue relay and consumer ---

    def republish(self) -> int:
        """Queue due deliveries that no live queue entry covers (retries, lost publishes)."""
        if self.relay is None:
            return 0
        stale = timedelta(seconds=self.config.bus.requeue_seconds)
        return self.relay.republish(self.store, stale_after=stale)

    def _on_queue_entry(self, key: str, ack: Any) -> None:
        self._queued.append((key, ack))

    def _flush_queued(self, result: CycleResult) -> None:
        """Deliver the entries drained so far as one batch, then ack them."""
        if not self._queued:
            return
        batch, self._queued = self._queued, []
        result.add(self.deliver_keys(list(dict.fromkeys(key for key, _ in batch))))
        for _, ack in batch:
            ack()

    # --- the loop ---

    def _take_counts(self) -> CycleResult:
        """What was accepted (on any thread) since the loop last looked."""
        with self._lock:
            counts, self._counts = self._counts, CycleResult()
        return counts

    def run_cycle(self) -> CycleResult:
        """One pass: poll the sources (concurrently), then deliver what is due."""
        self._wake.clear()
        self._retry_starts()
        self._housekeeping()
        self._poll_round()
        result = self._take_counts()
        if self.relay is None:
            while not self._stop.is_set():
                step = self.deliver_due()
                result.add(step)
                if step.idle:
                    break
            result.polling = self._polling()
            return result
        if not self.relay.consuming:
            self.relay.consume(self._on_queue_entry)
        if time.monotonic() - self._last_relay >= 1.0:
            self.republish()
            self._last_relay = time.monotonic()
        deadline = time.monotonic() + self.config.bus.poll_interval
        while not self._stop.is_set() and time.monotonic() < deadline:
            waiting = bool(self._queued)
            # With entries in hand, take only those already here: a batch is what came
            # in together, and nothing waits for a gap in a steady stream.
            if not self.relay.drain(timeout=0.001 if waiting else 0.2):
                if not waiting:
                    break  # the queues are idle: go back to polling the sources
                self._flush_queued(result)
            elif len(self._queued) >= self.config.bus.batch_size:
                self._flush_queued(result)
        self._flush_queued(result)
        result.add(self._take_counts())  # accepted by the polls meanwhile
        result.polling = self._polling()
        return result

    def _housekeeping(self) -> None:
        """Forget mapping inputs past bus.mapping_inputs_days, once an hour (any worker may)."""
        if time.monotonic() - self._last_purge < _PURGE_EVERY:
            return
        self._last_purge = time.monotonic()
        days = self.config.bus.mapping_inputs_days
        before = utcnow() - timedelta(days=days) if days > 0 else utcnow() + timedelta(days=1)
        try:
            purged = self.store.purge_mapping_inputs(before)
        except (StoreUnavailable, sqlalchemy.exc.OperationalError) as exc:
            log.warning("purging old mapping inputs failed; the next hour retries: %s", exc)
            return
        if purged:
            log.info("forgot %d mapping input(s) kept over %g days", purged, days)

    def run(self, *, once: bool = False, max_seconds: float | None = None) -> CycleResult:
        """Run until stopped (SIGTERM/SIGINT), or with ``once`` until nothing is due now.

        ``max_seconds`` bounds the run (a cron slot, a source that never runs dry):
        it ends after the cycle that reaches the bound, and says so in ``bounded``.
        """
        started = time.monotonic()
        self.start()
        # Everything built so far lives as long as the process: keep it out of the
        # collector's scans, which otherwise cost several percent of throughput.
        gc.freeze()
        total = CycleResult()
        self._install_signal_handlers()
        while not self._stop.is_set():
            try:
                step = self.run_cycle()
            except (TransientError, sqlalchemy.exc.OperationalError) as exc:
                # The store or the broker went away (a restart, a network cut): the
                # work stays in the store; wait and try again.
                log.warning("%s; trying again in %.1f s", exc, self.config.bus.poll_interval)
                if self.relay:
                    self.relay.reset()
                step = CycleResult(polling=self._polling())
                self._stop.wait(self.config.bus.poll_interval)
            total.add(step)
            if once and step.idle and not self._due_now():
                break
            if max_seconds is not None and time.monotonic() - started >= max_seconds:
                total.bounded = max_seconds
                break
            if not step.worked and self.relay is None:
                # Idle: wait for the next poll, or for a job's poll to hand something over.
                self._wake.wait(self.config.bus.poll_interval)
        return total

    def _due_now(self) -> bool:
        due = self.store.next_due()
        return due is not None and due <= utcnow()

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop())
