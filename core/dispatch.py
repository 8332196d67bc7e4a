"""Dispatch, the second stage: claim due deliveries, send each through its adapter, record it.

What happens when a send fails is answered here and in lienthong.disposition:

- the delivery is claimed (from memory, from the store, or by the key a queue
  entry carried: lienthong.store.queue), so one worker at a time has it;
- a batch's sends to one endpoint go one at a time on the worker loop's thread,
  or, with the endpoint's ``concurrency: N``, on N send lanes at once (the loop's
  thread and N - 1 threads of a pool, each lane an adapter of its own);
- an endpoint not started, busy in another thread, or whose circuit is open
  is not called: the delivery is *deferred*, which is not an attempt;
- ``adapter.send(message, key)`` raises: :func:`~lienthong.disposition.decide`
  sorts the error into retry (back-off with jitter), retry-slow (after
  ``retry.max_delay``; logged as an error, a person must look), park (a dead
  letter now) or hold (the bus's own store failed: nobody's circuit is
  blamed); :func:`~lienthong.disposition.failed_send` makes the outcome, a
  dead letter once ``retry.max_attempts`` are spent;
- the circuit breaker hears the verdict (lienthong.endpoints);
- the outcomes of a batch are recorded in one transaction, each with its
  attempt and audit record (:meth:`Store.finish`), before a queue entry is
  acked; then the hooks are told.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from datetime import timedelta

from .adapter import Adapter
from .disposition import Disposition, decide, describe, endpoint_up, failed_send, undeclared
from .endpoints import Lane
from .intake import CycleResult, Parts
from .model import Delivery, Outcome, Result, Stage
from .relay import Ack
from .store import utcnow
from .threads import DaemonPool

# The stages log as the bus did before they were split out: admins filter on it.
log = logging.getLogger("lienthong.bus")

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


class DispatchStage:
    """Deliveries out, on the worker loop's thread: from memory, the store, or the queues."""

    def __init__(self, parts: Parts) -> None:
        self.config, self.host, self.store = parts.config, parts.host, parts.store
        self.endpoints, self.metrics, self.relay = parts.endpoints, parts.metrics, parts.relay
        self.handoff, self.worker, self.lease = parts.handoff, parts.worker, parts.lease
        self._queued: list[tuple[str, Ack]] = []  # keys of queue entries drained, not delivered
        self._last_relay = 0.0
        self._lane_pool: DaemonPool | None = None  # the extra send lanes' threads, on first use

    def close(self) -> None:
        """Let the send lanes' threads end (a send still running is left behind)."""
        if self._lane_pool is not None:
            self._lane_pool.shutdown(timeout=5)
            self._lane_pool = None

    # --- claim ---

    def deliver_due(self) -> CycleResult:
        """Send what this process accepted, else claim due deliveries from the store."""
        result = CycleResult()
        claimed_at = time.monotonic()
        claimed = self.handoff.take_claimed(self.config.bus.batch_size)
        if not claimed:
            claimed = self.store.claim_due(
                self.worker, limit=self.config.bus.batch_size, lease=self.lease
            )
        if claimed:
            self.finish(self.send_batch(claimed), result, claimed_at)
        return result

    def deliver_keys(self, keys: Sequence[str]) -> CycleResult:
        """Claim and send deliveries a queue told us about; those done or taken are skipped."""
        result = CycleResult()
        claimed_at = time.monotonic()
        claimed = self.store.claim(keys, self.worker, lease=self.lease)
        if claimed:
            self.finish(self.send_batch(claimed), result, claimed_at)
        return result

    # --- send ---

    def send_batch(self, deliveries: Sequence[Delivery]) -> list[Outcome]:
        """Send a batch: one at a time per endpoint, or on its lanes at once; outcomes in order."""
        outcomes: list[Outcome | None] = [None] * len(deliveries)
        places: dict[str, list[int]] = {}
        for place, delivery in enumerate(deliveries):
            places.setdefault(delivery.endpoint, []).append(place)
        for name, at in places.items():
            lanes = self.endpoints.lanes.get(name, [])
            if len(lanes) < 2 or len(at) < 2:
                for place in at:
                    outcomes[place] = self.send(deliveries[place])
                continue
            ready = deque[int]()
            for place in at:
                refused = self._refusal(deliveries[place])
                if refused is None:
                    ready.append(place)
                else:
                    outcomes[place] = refused
            self._send_on_lanes(name, lanes, ready, deliveries, outcomes)
        pairs = zip(outcomes, deliveries, strict=True)
        return [o if o is not None else self._not_sent(d) for o, d in pairs]

    def _send_on_lanes(
        self,
        name: str,
        lanes: Sequence[Lane],
        ready: deque[int],
        deliveries: Sequence[Delivery],
        outcomes: list[Outcome | None],
    ) -> None:
        """Send ``ready`` (places in ``deliveries``) on ``lanes`` at once; each lane takes the
        next one until none is left. A lane busy in another thread (a poll) takes none."""

        def run(lane: Lane) -> None:
            if not lane.gate.acquire(blocking=False):
                return
            try:
                while True:
                    try:
                        place = ready.popleft()  # atomic: each place goes to one lane
                    except IndexError:
                        return
                    outcomes[place] = self._send_through(lane.adapter, deliveries[place], lane)
            finally:
                lane.gate.release()

        if self._lane_pool is None:
            most = max(map(len, self.endpoints.lanes.values()))
            self._lane_pool = DaemonPool(most - 1, "lienthong-send")
        keys = [f"{name}#{n}" for n in range(1, len(lanes))]
        for key, lane in zip(keys, lanes[1:], strict=True):
            self._lane_pool.submit(key, functools.partial(run, lane))
        run(lanes[0])
        while not self._lane_pool.wait(keys, timeout=60):
            log.warning("endpoint %s: a send has taken over a minute; waiting for it", name)

    def _not_sent(self, delivery: Delivery) -> Outcome:
        """A delivery no lane took (all busy elsewhere, or a lane failed): not an attempt."""
        return Outcome(
            delivery, Result.DEFERRED, retry_at=utcnow() + timedelta(seconds=_BUSY_WAIT_S)
        )

    def _refusal(self, delivery: Delivery) -> Outcome | None:
        """Why ``delivery`` is not sent now (not an adapter's error), or None to send it."""
        name = delivery.endpoint
        if name not in self.endpoints.adapters:
            return Outcome(
                delivery, Result.REJECTED, f"endpoint '{name}' is not configured in this process"
            )
        refusal = self.config.access.refusal(delivery.source, [name])
        if refusal:
            # A rule added after the message was accepted: checked again at every send.
            return Outcome(delivery, Result.REJECTED, refusal, stage=Stage.ACCESS)
        if name in self.endpoints.waiting:  # a read: the lock guards the changes
            wait = max(self.endpoints.breakers[name].retry_in(), _BUSY_WAIT_S)
            return Outcome(delivery, Result.DEFERRED, retry_at=utcnow() + timedelta(seconds=wait))
        return None

    def send(self, delivery: Delivery) -> Outcome:
        """One attempt, or a deferral that is not one; never raises for the adapter's errors."""
        refused = self._refusal(delivery)
        if refused is not None:
            return refused
        name = delivery.endpoint
        adapter = self.endpoints.adapters[name]
        gate = self.endpoints.gates[name]
        if not gate.acquire(blocking=False):
            # Another thread is in this adapter (a poll, a sync): not an attempt, back soon.
            return Outcome(
                delivery, Result.DEFERRED, retry_at=utcnow() + timedelta(seconds=_BUSY_WAIT_S)
            )
        try:
            return self._send_through(adapter, delivery)
        finally:
            gate.release()

    def _send_through(
        self, adapter: Adapter, delivery: Delivery, lane: Lane | None = None
    ) -> Outcome:
        """Call the adapter (``lane``'s, started first if need be) through the circuit."""
        breaker = self.endpoints.breakers[delivery.endpoint]
        if not breaker.allow():
            # Not an attempt: the endpoint keeps failing, so it is left alone for a while.
            wait = max(breaker.retry_in(), 0.05)
            return Outcome(delivery, Result.DEFERRED, retry_at=utcnow() + timedelta(seconds=wait))
        try:
            if lane is not None:
                lane.ensure_started()
            adapter.send(delivery.to_message(), key=delivery.key)
        except Exception as exc:
            # What happens next is decided in one place: lienthong.disposition.
            disposition = decide(exc, adapter)
            self.endpoints.tell_circuit(delivery.endpoint, endpoint_up(exc, disposition))
            if disposition is Disposition.RETRY_SLOW:  # a person must look
                log.error(
                    "endpoint %s: %s",
                    delivery.endpoint,
                    describe(exc),
                    exc_info=undeclared(exc, disposition),
                    extra=_fields(delivery),
                )
            return failed_send(delivery, exc, disposition, self.config.bus.retry, utcnow())
        self.endpoints.breaker_result(delivery.endpoint, ok=True)
        return Outcome(delivery, Result.OK)

    # --- finish ---

    def finish(self, outcomes: list[Outcome], result: CycleResult, claimed_at: float) -> None:
        """Record a batch's outcomes in the store, then count, log and tell the hooks."""
        self.store.finish(outcomes, self.worker)
        self.metrics.finished(outcomes, claimed_at, self.handoff.accepted_at)
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

    # --- one round of the worker loop ---

    def from_store(self, result: CycleResult, stop: threading.Event) -> None:
        """The embedded default: deliver batch after batch until nothing is due."""
        while not stop.is_set():
            step = self.deliver_due()
            result.add(step)
            if step.idle:
                break

    def from_queues(self, result: CycleResult, stop: threading.Event) -> None:
        """Production: deliver what the queues say for up to a poll interval, acking each entry.

        Also runs the relay once a second: due deliveries no queue entry covers
        (retries, lost publishes) are queued again.
        """
        assert self.relay is not None
        if not self.relay.consuming:
            self.relay.consume(self._on_queue_entry)
        if time.monotonic() - self._last_relay >= 1.0:
            self.republish()
            self._last_relay = time.monotonic()
        deadline = time.monotonic() + self.config.bus.poll_interval
        while not stop.is_set() and time.monotonic() < deadline:
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

    def republish(self) -> int:
        """Queue due deliveries that no live queue entry covers (retries, lost publishes)."""
        if self.relay is None:
            return 0
        stale = timedelta(seconds=self.config.bus.requeue_seconds)
        return self.relay.republish(self.store, stale_after=stale, by=self.worker)

    def _on_queue_entry(self, key: str, ack: Ack) -> None:
        self._queued.append((key, ack))

    def _flush_queued(self, result: CycleResult) -> None:
        """Deliver the keys drained so far, ``bus.batch_size`` at a time, then ack them.

        One ack for the batch: its last entry's, through every entry before it.
        Every entry the consumer was handed since the last batch is in this one
        (entries come only while draining, each with all its keys), so no entry
        is acked before the outcomes of all its keys are stored. An entry of many
        keys may take the batch past ``bus.batch_size``: claimed a slice at a
        time, no claim holds more deliveries than its lease was sized for.
        """
        if not self._queued:
            return
        batch, self._queued = self._queued, []
        keys = list(dict.fromkeys(key for key, _ in batch))
        size = self.config.bus.batch_size
        for start in range(0, len(keys), size):
            result.add(self.deliver_keys(keys[start : start + size]))
        batch[-1][1](through=True)
