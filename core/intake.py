"""Intake, the first stage: poll the sources, then accept: parse, check, route, map, store.

An inbound adapter hands messages to :meth:`IntakeStage.accept` (it is the
adapter's ``Inbox``), from whichever thread polled. Each message is parsed once
(hardened), routed and mapped (lienthong.router), checked against the access
rules, and stored with its deliveries, or as a dead letter with its reason, in
ONE transaction (lienthong.store.ledger) before the source is acknowledged. A
routing error that may pass (a directory lookup that is down) refuses the
batch instead, so the source keeps it and offers it again.

What happens next is lienthong.dispatch's: on the embedded default the fresh
deliveries are already claimed and handed over in memory (:class:`Handoff`);
with a broker their keys are published (lienthong.relay) for any worker.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import timedelta

from .adapter import INVALID_HEADER, Acceptance, Capability
from .config import Config
from .disposition import Disposition, decide, describe, endpoint_up, undeclared
from .endpoints import Endpoints
from .errors import LienthongError, RejectedError, StoreUnavailable, TransientError
from .host import PluginHost
from .lease import PollLease
from .message import Message
from .metrics import Metrics
from .model import Delivery, Intake, Stage
from .relay import Relay
from .router import Router
from .scheduler import PollReport
from .store import Store
from .store.ledger import skipped_detail
from .threads import DaemonPool

# The stages log as the bus did before they were split out: admins filter on it.
log = logging.getLogger("lienthong.bus")

#: Acceptance times kept for the lag metric at most; more means they were lost.
_LAG_TRACKED = 100_000


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


class Handoff:
    """What the accepting threads (polls, jobs) pass to the worker loop, under one lock.

    The deliveries accepted and claimed here on the embedded default, waiting to
    be sent from memory; when each was accepted (the lag metric); the counts
    since the loop last looked; and the event that wakes the loop.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.claimed: list[Delivery] = []
        self.accepted_at: dict[str, float] = {}  # monotonic, by delivery key
        self.counts = CycleResult()
        self.wake = threading.Event()  # set when there is something to deliver

    def take_counts(self) -> CycleResult:
        """What was accepted (on any thread) since the loop last looked."""
        with self.lock:
            counts, self.counts = self.counts, CycleResult()
        return counts

    def take_claimed(self, limit: int | None = None) -> list[Delivery]:
        """Up to ``limit`` (all, without one) claimed deliveries, oldest first."""
        with self.lock:
            if limit is None:
                taken, self.claimed = self.claimed, []
            else:
                taken, self.claimed = self.claimed[:limit], self.claimed[limit:]
        return taken


@dataclass
class Parts:
    """What both stages work with, built once by the bus (lienthong.bus)."""

    config: Config
    host: PluginHost
    store: Store
    endpoints: Endpoints
    metrics: Metrics
    relay: Relay | None
    handoff: Handoff
    worker: str
    lease: timedelta  # how long a claim holds if its worker dies


class IntakeStage:
    """Sources in: polls on the pool or for a job, and the accept every inbound adapter calls."""

    def __init__(self, parts: Parts, router: Router) -> None:
        self.config, self.host, self.store = parts.config, parts.host, parts.store
        self.endpoints, self.metrics, self.relay = parts.endpoints, parts.metrics, parts.relay
        self.handoff, self.worker, self.lease = parts.handoff, parts.worker, parts.lease
        self.router = router
        # Endpoints a job polls on a schedule: the loop's rounds leave them alone.
        self.scheduled = {job.poll for job in self.config.jobs.values() if job.poll}
        self._tally = threading.local()  # this thread's poll: new and repeats
        # Each source polled by one worker at a time (taken under the endpoint's gate).
        self._poll_leases: dict[str, PollLease] = {}

    # --- accept: the Inbox every receiving adapter is handed (from any thread) ---

    def accept(self, messages: Sequence[Message]) -> list[Acceptance]:
        """Route and store ``messages``; when this returns, the source may acknowledge them."""
        intakes = [self.intake(m) for m in messages]
        # On the embedded default this process delivers what it accepts straight
        # from memory, already claimed; with a broker, any worker may.
        claim = None if self.relay else (self.worker, self.lease)
        enqueued_by = self.worker if self.relay else None
        stored = self.store.accept(intakes, enqueued_by=enqueued_by, claim=claim)
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
                for skip in intake.skipped:
                    log.info(
                        "message %s: %s",
                        m.id,
                        skipped_detail(skip),
                        extra={
                            "message_id": m.id,
                            "correlation_id": m.correlation_id,
                            "endpoint": skip.outgoing.endpoint,
                            "route": skip.outgoing.route,
                        },
                    )
                if info and intake.outgoing:
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
        handoff = self.handoff
        with handoff.lock:
            handoff.counts.received += new_count
            handoff.counts.repeats += repeats
            handoff.counts.dead += parked
            if claimed:
                if len(handoff.accepted_at) > _LAG_TRACKED:
                    handoff.accepted_at.clear()  # lost to a crash or another worker
                handoff.accepted_at.update((d.key, accepted_at) for d in claimed)
                handoff.claimed.extend(claimed)
        tally = getattr(self._tally, "counts", None)
        if tally is not None:
            tally[0] += new_count
            tally[1] += repeats
        if claim and new_count:
            handoff.wake.set()  # the loop sends them (an ordered one after its turn check)
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

    def intake(self, message: Message) -> Intake:
        """What ``message`` becomes: routed to its deliveries, or parked with why and where."""
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

    def receivers(self) -> list[str]:
        """The endpoints the worker loop polls (those a job polls are left to the job)."""
        return [
            name
            for name, adapter in self.endpoints.adapters.items()
            if Capability.RECEIVE in adapter.capabilities and name not in self.scheduled
        ]

    def poll(self) -> int:
        """Poll every receiving endpoint once, on this thread; returns how many messages came."""
        return sum(self.poll_one(name) for name in self.receivers())

    def poll_one(self, name: str, *, scheduled: bool = False) -> int:
        """Poll one endpoint unless its circuit is open; errors open its circuit, not ours.

        The worker loop's poll round logs an error and goes on; a ``scheduled`` poll
        (a job's) raises it for the job's record, a passing one as a
        ``TransientError`` (the run is interrupted, the next tick tries again).
        The circuit is told the same either way (lienthong.disposition).
        """
        endpoints = self.endpoints
        adapter = endpoints.adapters[name]
        if name in endpoints.waiting:
            if scheduled:
                raise TransientError(
                    f"endpoint '{name}' has not started: {endpoints.not_started()[name]}. Hint: "
                    "'lienthong status' shows when its start is tried again"
                )
            return 0
        with endpoints.gates[name]:
            breaker = endpoints.breakers[name]
            if not breaker.allow():
                # It keeps failing: leave it alone until its circuit half-opens.
                if scheduled:
                    raise TransientError(
                        f"endpoint '{name}' not polled: circuit {breaker.describe()}"
                    )
                return 0
            try:
                with self._poll_lease(name, scheduled) as ours:
                    if not ours:
                        return 0  # another worker is polling it right now
                    handed = adapter.receive(self)
            except Exception as exc:
                disposition = decide(exc, adapter)
                endpoints.tell_circuit(name, endpoint_up(exc, disposition))
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
            endpoints.breaker_result(name, ok=True)
            return handed

    def _poll_lease(self, name: str, scheduled: bool) -> AbstractContextManager[bool]:
        """The source's poll lease, for a poll of the loop's (a job's poll has the job's)."""
        if scheduled:
            return nullcontext(True)
        lease = self._poll_leases.get(name)
        if lease is None:
            lease = PollLease(self.store.engine, f"poll:{name}", self.worker)
            self._poll_leases[name] = lease
        return lease.turn()

    def _poll_task(self, name: str) -> None:
        try:
            self.poll_one(name)
        except StoreUnavailable as exc:
            log.warning("endpoint %s: polled, but %s; its source keeps the messages", name, exc)

    def poll_round(self, pool: DaemonPool) -> None:
        """Poll the sources concurrently on the pool; wait a while for them, not for a hung one.

        Each endpoint has one poll at a time: one still running from an earlier
        round is left to finish. The wait is bounded, so a source that takes its
        whole timeout to answer delays neither the others nor the deliveries.
        """
        submitted = [
            name
            for name in self.receivers()
            if pool.submit(name, functools.partial(self._poll_task, name))
        ]
        pool.wait(submitted, timeout=max(1.0, self.config.bus.poll_interval))

    def polling(self, pool: DaemonPool | None) -> bool:
        """Whether a poll (not a start attempt) is still running on the pool."""
        if pool is None:
            return False
        return bool(pool.busy(self.receivers()) - self.endpoints.starts_running())

    def scheduled_poll(self, name: str) -> PollReport:
        """A job's poll, through the endpoint's circuit, with how many messages were new."""
        self._tally.counts = [0, 0]
        try:
            self.poll_one(name, scheduled=True)
            new, repeats = self._tally.counts
        finally:
            del self._tally.counts
        return PollReport(new, repeats)
