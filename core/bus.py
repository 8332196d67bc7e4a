"""The bus: the composition root that builds the stages along the data path and runs the loop.

A message goes, one module per step (docs/architecture.md):

1. **intake** (lienthong.intake): an inbound adapter, polled on the pool or by a
   job, hands messages to ``accept``; each is parsed once, routed and mapped
   (lienthong.router, lienthong.mapping), checked (lienthong.access) and stored
   with its deliveries, or as a dead letter, in one transaction
   (lienthong.store.ledger) before the source is acknowledged;
2. **relay** (lienthong.relay, production only): the deliveries' keys go to a
   RabbitMQ queue per target endpoint, and due ones no entry covers are queued again;
3. **dispatch** (lienthong.dispatch): a worker claims due deliveries, calls the
   target adapter's ``send`` with the delivery's idempotency key, and records the
   outcome: delivered, retried later with back-off, or dead-lettered
   (lienthong.disposition decides which);
4. **replay** (lienthong.replay): a dead letter sent through again.

:class:`Bus` builds these over one store, one router and the endpoints
(lienthong.endpoints: adapters, gates, circuits), starts and stops them, and
runs the worker loop (:meth:`Bus.run`).
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import sqlalchemy.exc

from . import audit, replay
from .adapter import Acceptance, Adapter, Capability, Services
from .config import BusSettings, Config
from .dispatch import DispatchStage
from .endpoints import Endpoints
from .errors import StoreUnavailable, TransientError
from .holders import Holder
from .host import PluginHost
from .intake import CycleResult, Handoff, IntakeStage, Parts
from .mapping import MappingLibrary
from .message import Message
from .metrics import Metrics, MetricsServer
from .model import Delivery
from .relay import Relay
from .replay import ReplayPreview
from .router import Router
from .scheduler import Scheduler
from .store import Cursors, Store, make_engine, prepare_schema, store_error, utcnow
from .store import audit as audit_table
from .sync import Report, SyncSpec
from .threads import DaemonPool

log = logging.getLogger(__name__)

# Seconds between purges of mapping inputs older than bus.mapping_inputs_days.
_PURGE_EVERY = 3600.0

__all__ = ["Bus", "CycleResult", "ReplayPreview"]


def open_store(settings: BusSettings) -> Store:
    """The bus's store, its schema checked and its audit key loaded and checked."""
    store = Store(make_engine(settings.store.reveal()))
    store.keep_mapping_inputs = settings.mapping_inputs_days > 0
    prepare_schema(store.engine)
    # The audit chain's anchors outside the database (lienthong.audit).
    store.audit_key = audit.load_key(
        settings.audit_key, settings.var_dir, embedded=store.dialect == "sqlite"
    )
    audit.check_key(store.engine, audit_table, store.audit_key)
    return store


def build_adapters(config: Config, host: PluginHost, store: Store) -> dict[str, list[Adapter]]:
    """Each endpoint's adapters, built (not started) with the services the core injects.

    As many as its ``concurrency``: the first is the endpoint's own, the others
    its extra send lanes (lienthong.endpoints).
    """
    settings = config.bus
    services = Services(
        engine=store.engine,
        base_dir=config.base_dir,
        var_dir=settings.var_dir,
        max_message_bytes=settings.max_message_bytes,
        cursors=Cursors(store.engine),
        mappings_dir=settings.mappings,
    )
    return {
        name: [host.adapter(ep.adapter)(name, ep.settings, services) for _ in range(ep.concurrency)]
        for name, ep in config.endpoints.items()
    }


class Bus:
    """One process of the bus: builds the stages over its store and endpoints, runs the loop.

    Each step of the data path is its stage's module; what is here is the wiring,
    the lifecycle (start, close), the loop, and one-line doors into the stages
    for the CLI, the console, jobs and tests.

    Why it is long: it is the composition root; its lines are the lifecycle in
    order and one-line doors, each stage's logic lives in that stage's module.

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
        self.store = open_store(settings)
        self.anchor = audit.AnchorKeeper(
            self.store.engine, audit_table, settings.anchor_path, settings.audit_anchor_seconds
        )
        self.mappings = MappingLibrary(
            settings.mappings,
            functions=self.host.xpath_functions,
            max_bytes=settings.max_message_bytes,
        )
        self.router = Router(config.routes, self.mappings, max_bytes=settings.max_message_bytes)
        built = build_adapters(config, self.host, self.store)
        self.adapters = {name: adapters[0] for name, adapters in built.items()}
        self.handoff = Handoff()
        self.endpoints = Endpoints(
            self.adapters,
            self.store,
            settings,
            self.worker,
            on_started=self.handoff.wake.set,
            spares={name: adapters[1:] for name, adapters in built.items() if adapters[1:]},
        )
        self.gates = self.endpoints.gates
        self.breakers = self.endpoints.breakers
        self.relay: Relay | None = None
        if not settings.embedded:
            senders = [n for n, a in self.adapters.items() if Capability.SEND in a.capabilities]
            self.relay = Relay(settings.broker.reveal(), senders, batch=settings.batch_size)
        self.scheduler: Scheduler | None = None
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
        parts = Parts(
            config, self.host, self.store, self.endpoints, self.metrics, self.relay, self.handoff,
            worker=self.worker, lease=timedelta(seconds=settings.claim_seconds),
        )  # fmt: skip
        self.intake = IntakeStage(parts, self.router)
        self.dispatch = DispatchStage(parts)
        self._stop = threading.Event()
        self._closing = threading.Event()
        self._checkpointer: threading.Thread | None = None
        self._pool: DaemonPool | None = None
        self._started = False
        self._registered = False
        self._last_purge = -_PURGE_EVERY  # the first cycle purges

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
            self.endpoints.start(name, first=True)
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
                self.intake.scheduled_poll,
                self.run_sync,
                holder=self.worker,
            )
            self.scheduler.start()
        self.host.after_start(adapters=self.adapters, config=self.config)

    def stop(self) -> None:
        """Ask the loop to finish its current batch and return."""
        self._stop.set()
        self.handoff.wake.set()

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
            self.endpoints.abandoned |= left
            self._pool = None
        claimed = self.handoff.take_claimed()
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
        self.dispatch.close()
        self.endpoints.stop_all()
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

    # --- the stages, as the CLI, the console, jobs and tests call them ---

    def accept(self, messages: Sequence[Message]) -> list[Acceptance]:
        """Route and store ``messages`` (lienthong.intake); then the source may acknowledge them."""
        return self.intake.accept(messages)

    def poll(self) -> int:
        """Poll every receiving endpoint once, on this thread; returns how many messages came.

        An endpoint that a job polls on a schedule (``poll:`` in ``jobs``) is left
        to that job.
        """
        return self.intake.poll()

    def poll_endpoint(self, name: str) -> int:
        """Poll one endpoint now (a scheduled poll job); errors go to the job's record.

        Through the endpoint's circuit, as the worker loop's polls: an open
        circuit is not called, and a failure counts (``IntakeStage.poll_one``).
        """
        return self.intake.poll_one(name, scheduled=True)

    def run_sync(self, spec: SyncSpec, dry_run: bool) -> Report:
        """Run one sync between two endpoints (the scheduler holds the job's lease)."""
        return self.endpoints.run_sync(spec, dry_run)

    def deliver_due(self) -> CycleResult:
        """Claim due deliveries and send them (lienthong.dispatch), the embedded default's way."""
        return self.dispatch.deliver_due()

    def deliver_keys(self, keys: Sequence[str]) -> CycleResult:
        """Claim and send deliveries a queue told us about; those done or taken are skipped."""
        return self.dispatch.deliver_keys(keys)

    def replay(self, dead_id: int) -> str:
        """Send a dead letter through again (lienthong.replay); raises ``RejectedError`` if not."""
        return replay.replay(self.store, self.config.access, self.intake, dead_id)

    def replay_preview(self, dead_id: int) -> ReplayPreview:
        """What :meth:`replay` would do for a dead letter, changing nothing."""
        return replay.replay_preview(self.store, self.config.access, self.intake, dead_id)

    def republish(self) -> int:
        """Queue due deliveries that no live queue entry covers (retries, lost publishes)."""
        return self.dispatch.republish()

    def not_started(self) -> dict[str, str]:
        """Endpoints running degraded because their start failed, with why."""
        return self.endpoints.not_started()

    @property
    def _claimed(self) -> list[Delivery]:
        """Accepted here and claimed, not sent yet (embedded); for tests that look inside."""
        return self.handoff.claimed

    def _polling(self) -> bool:
        """Whether a poll (not a start attempt) is still running on the pool."""
        return self.intake.polling(self._pool)

    # --- the loop ---

    def run_cycle(self) -> CycleResult:
        """One pass: poll the sources (concurrently), then deliver what is due."""
        assert self._pool is not None
        self.handoff.wake.clear()
        self.endpoints.retry_starts(self._pool)
        self._housekeeping()
        self.intake.poll_round(self._pool)
        result = self.handoff.take_counts()
        if self.relay is None:
            self.dispatch.from_store(result, self._stop)
        else:
            self.dispatch.from_queues(result, self._stop)
            result.add(self.handoff.take_counts())  # accepted by the polls meanwhile
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
                self.handoff.wake.wait(self.config.bus.poll_interval)
        return total

    def _due_now(self) -> bool:
        due = self.store.next_due()
        return due is not None and due <= utcnow()

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop())
