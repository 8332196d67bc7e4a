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

import gc
import logging
import os
import random
import signal
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy.exc

from . import sync
from .adapter import INVALID_HEADER, Acceptance, Adapter, Capability, Services
from .breaker import CircuitBreaker
from .config import Config, RetryPolicy
from .errors import (
    ConfigError,
    FatalError,
    LienthongError,
    RejectedError,
    StoreUnavailable,
    TransientError,
)
from .host import PluginHost
from .mapping import MappingLibrary
from .message import Message
from .metrics import Metrics, MetricsServer
from .router import Router
from .scheduler import Scheduler
from .store import Cursors, Delivery, Intake, Outcome, Store, make_engine, utcnow
from .sync import Report, SyncSpec
from .transport import AmqpTransport

log = logging.getLogger(__name__)


def retry_delay(policy: RetryPolicy, attempt: int, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based): exponential, capped, jittered."""
    base = min(policy.max_delay, policy.initial_delay * policy.multiplier ** (attempt - 1))
    spread = base * policy.jitter
    return max(0.0, base + (rng or random).uniform(-spread, spread))


#: Acceptance times kept for the lag metric at most; more means they were lost.
_LAG_TRACKED = 100_000


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
    """What one pass of the worker loop did."""

    received: int = 0
    delivered: int = 0
    retried: int = 0
    dead: int = 0

    @property
    def idle(self) -> bool:
        return not (self.received or self.delivered or self.retried or self.dead)


class Bus:
    """One process of the bus: its endpoints, router, store and (in production) queues."""

    def __init__(
        self, config: Config, host: PluginHost | None = None, *, worker: str | None = None
    ) -> None:
        self.config = config
        self.host = host or PluginHost()
        self.worker = worker or f"{socket.gethostname()}:{os.getpid()}"
        settings = config.bus
        self.store = Store(make_engine(settings.store.reveal()))
        self._prepare_schema()
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
        self.transport: AmqpTransport | None = None
        if not settings.embedded:
            senders = [n for n, a in self.adapters.items() if Capability.SEND in a.capabilities]
            self.transport = AmqpTransport(
                settings.broker.reveal(), senders, prefetch=settings.batch_size
            )
        self.scheduler: Scheduler | None = None
        self._scheduled_polls = {job.poll for job in config.jobs.values() if job.poll}
        self.breakers = {
            name: CircuitBreaker(settings.breaker_failures, settings.breaker_reset_seconds)
            for name in self.adapters
        }
        self.metrics = Metrics(
            self.store, self.breakers, broker=None if settings.embedded else settings.broker
        )
        self.metrics_server: MetricsServer | None = None
        # Monotonic acceptance times of deliveries this process sends from memory (for the lag).
        self._accepted_at: dict[str, float] = {}
        self._lease = timedelta(seconds=settings.claim_seconds)
        self._stop = threading.Event()
        self._closing = threading.Event()
        self._checkpointer: threading.Thread | None = None
        self._started = False
        self._last_relay = 0.0
        self._queued: list[tuple[str, Any]] = []
        self._parked = 0  # messages parked at accept since the last cycle began
        self._claimed: list[Delivery] = []

    def _prepare_schema(self) -> None:
        from . import migrations

        if self.store.dialect == "sqlite":
            self.store.upgrade()
            return
        try:
            current, head = migrations.current(self.store.engine), migrations.head()
        except sqlalchemy.exc.OperationalError as exc:
            raise StoreUnavailable(f"the store is not reachable: {exc.orig}") from exc
        if current != head:
            raise ConfigError(
                [
                    f"bus.store: the database schema is at {current or 'nothing'}, this version "
                    f"needs {head}. Hint: run 'lienthong db upgrade' first"
                ]
            )

    # --- lifecycle ---

    def start(self) -> None:
        """Start every endpoint's adapter (and the queue consumer in production)."""
        if self._started:
            return
        settings = self.config.bus
        if settings.metrics_port is not None and self.metrics_server is None:
            # First, so a port already taken stops the bus before it connects anywhere.
            self.metrics_server = MetricsServer(
                self.metrics, settings.metrics_host, settings.metrics_port
            )
            self.metrics_server.start()
        for adapter in self.adapters.values():
            adapter.start()
        self._started = True
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
                self.poll_endpoint,
                self.run_sync,
                holder=self.worker,
            )
            self.scheduler.start()
        self.host.after_start(adapters=self.adapters, config=self.config)

    def stop(self) -> None:
        """Ask the loop to finish its current batch and return."""
        self._stop.set()

    def _checkpoint_loop(self) -> None:
        while not self._closing.wait(1.0):
            try:
                self.store.checkpoint()
            except sqlalchemy.exc.SQLAlchemyError as exc:
                log.warning("SQLite checkpoint failed; the next one retries: %s", exc)

    def close(self) -> None:
        if self._claimed:
            # Accepted here but not sent yet: give them back now, not when the claim runs out.
            self.store.release([d.key for d in self._claimed])
            self._claimed = []
        self._closing.set()
        if self._checkpointer is not None:
            self._checkpointer.join(timeout=10)
            self._checkpointer = None
        self._closing.clear()
        if self.scheduler:
            self.scheduler.shutdown()
            self.scheduler = None
        for adapter in self.adapters.values():
            try:
                adapter.stop()
            except Exception:
                log.exception("endpoint %s did not stop cleanly", adapter.endpoint)
        if self.metrics_server:
            self.metrics_server.stop()
            self.metrics_server = None
        if self.transport:
            self.transport.close()
        self.store.engine.dispose()
        self._started = False

    def __enter__(self) -> Bus:
        self.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # --- accept: the Inbox every receiving adapter is handed ---

    def accept(self, messages: Sequence[Message]) -> list[Acceptance]:
        """Route and store ``messages``; when this returns, the source may acknowledge them."""
        intakes = [self._intake(m) for m in messages]
        # On the embedded default this process delivers what it accepts straight
        # from memory, already claimed; with a broker, any worker may.
        claim = None if self.transport else (self.worker, self._lease)
        stored = self.store.accept(intakes, enqueued=self.transport is not None, claim=claim)
        accepted_at = time.monotonic()
        self.metrics.accepted(stored)
        info = log.isEnabledFor(logging.INFO)
        if self.transport:
            fresh = [(o.key, o.endpoint) for i, new in stored if new for o in i.outgoing]
            try:
                self.transport.publish(fresh)
            except TransientError:
                log.warning("queueing %d deliveries failed; the relay will queue them", len(fresh))
        acceptances = []
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
            if claim:
                if len(self._accepted_at) > _LAG_TRACKED:
                    self._accepted_at.clear()  # lost to a crash or another worker
                self._accepted_at.update((o.key, accepted_at) for o in intake.outgoing)
                self._claimed.extend(
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
                )
            self.host.after_accept(message=m, parked=intake.parked)
            if intake.parked:
                self._parked += 1
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
        return acceptances

    def _intake(self, message: Message) -> Intake:
        invalid = message.headers.get(INVALID_HEADER)
        if invalid:
            return Intake(message, parked=f"invalid at the source: {invalid}", stage="accept")
        try:
            message.tree(max_bytes=self.config.bus.max_message_bytes)
            self.host.prepare_message(message)
        except RejectedError as exc:
            return Intake(message, parked=str(exc), stage="accept")
        try:
            outgoing = self.router.route(message)
        except TransientError:
            raise
        except LienthongError as exc:
            return Intake(message, parked=str(exc), stage="route")
        refusal = self.config.access.refusal(message.source, [o.endpoint for o in outgoing])
        if refusal:
            return Intake(message, parked=refusal, stage="access")
        return Intake(message, outgoing=outgoing)

    # --- receive ---

    def poll(self) -> int:
        """Poll every receiving endpoint once; returns how many messages were handed over.

        An endpoint that a job polls on a schedule (``poll:`` in ``jobs``) is left
        to that job.
        """
        total = 0
        for name, adapter in self.adapters.items():
            if Capability.RECEIVE not in adapter.capabilities or name in self._scheduled_polls:
                continue
            if not self.breakers[name].allow():
                continue  # it keeps failing: leave it alone until its circuit half-opens
            try:
                total += adapter.receive(self)
            except StoreUnavailable:
                raise  # the bus's own store, not this endpoint: the run loop waits for it
            except TransientError as exc:
                log.warning("endpoint %s could not be polled: %s", name, exc)
                self._breaker_result(name, ok=False)
            except FatalError as exc:
                log.error("endpoint %s: %s", name, exc)
                self._breaker_result(name, ok=False)
            except LienthongError as exc:
                log.error("endpoint %s: %s", name, exc)
            except Exception as exc:
                if not adapter.is_transient(exc):
                    log.exception("endpoint %s failed while polling", name)
                else:
                    log.warning("endpoint %s could not be polled: %s", name, exc)
                    self._breaker_result(name, ok=False)
            else:
                self._breaker_result(name, ok=True)
        return total

    def poll_endpoint(self, name: str) -> int:
        """Poll one endpoint now (a scheduled poll job); errors go to the job's record."""
        return self.adapters[name].receive(self)

    def run_sync(self, spec: SyncSpec, dry_run: bool) -> Report:
        """Run one sync between two endpoints (the scheduler holds the job's lease)."""
        return sync.run(
            spec,
            self.adapters[spec.source_endpoint],
            self.adapters[spec.target_endpoint],
            self.store.engine,
            dry_run=dry_run,
            holder=self.worker,
        )

    # --- deliver ---

    def deliver_due(self) -> CycleResult:
        """Claim due deliveries from the store and send them (the embedded default's worker)."""
        result = CycleResult()
        claimed_at = time.monotonic()
        if self._claimed:
            claimed, self._claimed = (
                self._claimed[: self.config.bus.batch_size],
                self._claimed[self.config.bus.batch_size :],
            )
            self._finish([self._send(d) for d in claimed], result, claimed_at)
            return result
        claimed = self.store.claim_due(
            self.worker, limit=self.config.bus.batch_size, lease=self._lease
        )
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
        adapter = self.adapters.get(delivery.endpoint)
        if adapter is None:
            return Outcome(
                delivery,
                "rejected",
                f"endpoint '{delivery.endpoint}' is not configured in this process",
            )
        breaker = self.breakers[delivery.endpoint]
        if not breaker.allow():
            # Not an attempt: the endpoint keeps failing, so it is left alone for a while.
            wait = max(breaker.retry_in(), 0.05)
            return Outcome(delivery, "deferred", retry_at=utcnow() + timedelta(seconds=wait))
        try:
            adapter.send(delivery.to_message(), key=delivery.key)
        except RejectedError as exc:
            self._breaker_result(delivery.endpoint, ok=True)  # it answered: it is up
            return Outcome(delivery, "rejected", str(exc))
        except (FatalError, ConfigError) as exc:
            # The endpoint itself is wrong (a refused password, a missing key): a person
            # must act, so wait long between tries and let the circuit open.
            log.error("endpoint %s: %s", delivery.endpoint, exc)
            self._breaker_result(delivery.endpoint, ok=False)
            return self._retry(delivery, str(exc), delay=self.config.bus.retry.max_delay)
        except Exception as exc:
            transient = isinstance(exc, TransientError) or adapter.is_transient(exc)
            text = str(exc) if isinstance(exc, LienthongError) else f"{type(exc).__name__}: {exc}"
            if not transient:
                log.warning(
                    "endpoint %s raised an undeclared error; retrying: %s", delivery.endpoint, text
                )
            self._breaker_result(delivery.endpoint, ok=getattr(exc, "endpoint_up", False))
            return self._retry(delivery, text, at_least=getattr(exc, "retry_after", None))
        self._breaker_result(delivery.endpoint, ok=True)
        return Outcome(delivery, "ok")

    def _breaker_result(self, endpoint: str, *, ok: bool) -> None:
        breaker = self.breakers[endpoint]
        before = breaker.state
        if ok:
            breaker.record_success()
        else:
            breaker.record_failure()
        after = breaker.state
        if after != before:
            log.warning("endpoint %s: circuit %s", endpoint, breaker.describe())
            try:
                self.store.set_endpoint_health(
                    endpoint, after.value, breaker.describe(), self.worker
                )
            except TransientError:
                log.warning("could not record the circuit state of %s", endpoint)

    def _retry(
        self,
        delivery: Delivery,
        error: str,
        delay: float | None = None,
        at_least: float | None = None,
    ) -> Outcome:
        policy = self.config.bus.retry
        attempt = delivery.attempts + 1
        if attempt >= policy.max_attempts:
            return Outcome(delivery, "rejected", f"gave up after {attempt} attempts: {error}")
        wait = retry_delay(policy, attempt) if delay is None else delay
        if at_least is not None:
            wait = max(wait, at_least)  # the system asked for this much (Retry-After)
        return Outcome(delivery, "transient", error, retry_at=utcnow() + timedelta(seconds=wait))

    def _finish(self, outcomes: list[Outcome], result: CycleResult, claimed_at: float) -> None:
        self.store.finish(outcomes, self.worker)
        self.metrics.finished(outcomes, claimed_at, self._accepted_at)
        info = log.isEnabledFor(logging.INFO)
        for o in outcomes:
            d = o.delivery
            if o.result == "ok":
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
            elif o.result == "deferred":
                continue
            elif o.result == "transient":
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
        an effect that did happen is not repeated); a message parked before
        routing is routed again with the current routes and mappings.
        """
        dead = self.store.dead_letter(dead_id)
        if dead is None:
            raise RejectedError(f"no dead letter #{dead_id}. Hint: 'lienthong dlq list'")
        if dead["replayed_at"] is not None:
            raise RejectedError(f"dead letter #{dead_id} was already replayed")
        if dead["delivery_id"]:
            self.store.retry_delivery(dead["delivery_id"], dead["message_id"])
            self.store.mark_replayed(dead_id)
            return f"delivery to '{dead['endpoint']}' queued again"
        message = self.store.message(dead["message_id"])
        assert message is not None
        intake = self._intake(message)
        if intake.parked:
            raise RejectedError(f"dead letter #{dead_id} still fails: {intake.parked}")
        self.store.add_deliveries(message.id, intake.outgoing)
        self.store.mark_replayed(dead_id)
        targets = ", ".join(o.endpoint for o in intake.outgoing)
        return f"routed again to {targets}"

    # --- production: queue relay and consumer ---

    def relay(self) -> int:
        """Queue due deliveries that no live queue entry covers (retries, lost publishes)."""
        if self.transport is None:
            return 0
        stale = timedelta(seconds=self.config.bus.requeue_seconds)
        items = self.store.due_for_enqueue(limit=1000, stale_after=stale)
        self.transport.publish(items)
        return len(items)

    def _on_queue_entry(self, key: str, ack: Any) -> None:
        self._queued.append((key, ack))

    def _flush_queued(self, result: CycleResult) -> None:
        """Deliver the entries drained so far as one batch, then ack them."""
        if not self._queued:
            return
        batch, self._queued = self._queued, []
        step = self.deliver_keys(list(dict.fromkeys(key for key, _ in batch)))
        for name in ("delivered", "retried", "dead"):
            setattr(result, name, getattr(result, name) + getattr(step, name))
        for _, ack in batch:
            ack()

    # --- the loop ---

    def run_cycle(self) -> CycleResult:
        """One pass: poll the sources, then deliver what is due."""
        self._parked = 0
        result = CycleResult(received=self.poll())
        result.dead += self._parked
        if self.transport is None:
            while not self._stop.is_set():
                step = self.deliver_due()
                result.delivered += step.delivered
                result.retried += step.retried
                result.dead += step.dead
                if step.idle:
                    break
            return result
        if not self.transport.consuming:
            self.transport.consume(self._on_queue_entry)
        if time.monotonic() - self._last_relay >= 1.0:
            self.relay()
            self._last_relay = time.monotonic()
        deadline = time.monotonic() + self.config.bus.poll_interval
        while not self._stop.is_set() and time.monotonic() < deadline:
            waiting = bool(self._queued)
            if not self.transport.drain(timeout=0.01 if waiting else 0.2):
                if not waiting:
                    break  # the queues are idle: go back to polling the sources
                self._flush_queued(result)
            elif len(self._queued) >= self.config.bus.batch_size:
                self._flush_queued(result)
        self._flush_queued(result)
        return result

    def run(self, *, once: bool = False) -> CycleResult:
        """Run until stopped (SIGTERM/SIGINT), or with ``once`` until nothing is due now."""
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
                if self.transport:
                    self.transport.reset()
                step = CycleResult()
                self._stop.wait(self.config.bus.poll_interval)
            for name in ("received", "delivered", "retried", "dead"):
                setattr(total, name, getattr(total, name) + getattr(step, name))
            if once and step.idle and not self._due_now():
                break
            if step.idle and self.transport is None:
                self._stop.wait(self.config.bus.poll_interval)
        return total

    def _due_now(self) -> bool:
        due = self.store.next_due()
        return due is not None and due <= utcnow()

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop())
