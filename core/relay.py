"""The relay: delivery keys between the store and RabbitMQ, through kombu, in production.

The store is the durable record; a queue entry only carries delivery keys (a
JSON list of up to :data:`ENTRY_KEYS` keys of one endpoint), so a worker knows
what to claim next. Entries are persistent, published with confirms (awaited
once per batch) to durable queues (one per target endpoint), consumed with a
bounded prefetch and acked only after the store recorded the outcome of every
key they carry. A duplicate key finds its delivery already claimed or done and
is acked without effect. An entry of an older version, one key as a JSON
string, is still read.

Threads: kombu/py-amqp connections are not thread-safe, so no connection is
shared. Every thread that publishes (the worker loop, the pollers, scheduled
jobs) gets a connection and producer of its own on first use; only the worker
loop's thread consumes, on the consumer connection. A publish that fails is
retried at once on a fresh connection; if that fails too, the keys are left for
:meth:`Relay.republish`, which the worker loop runs every second: it publishes
due deliveries that no queue entry covers (retries, publishes that failed, an
entry lost with a broker).

The embedded default has no broker: workers claim due deliveries from the
store directly (kombu's server-less transports lose fetched-but-unacked
messages on a crash, so they are not used for durability).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from typing import Any, Protocol

from amqp.exceptions import ConnectionError as AmqpConnectionError
from kombu import Connection, Consumer, Exchange, Producer, Queue
from kombu.exceptions import OperationalError as KombuOperationalError
from kombu.message import Message

from .errors import TransientError
from .store import Store

log = logging.getLogger(__name__)

#: What a lost broker connection raises: kombu's wrapper, socket errors, and py-amqp's
#: own connection errors (a broker restart closes connections with CONNECTION_FORCED,
#: an ack on a closed connection raises RecoverableConnectionError).
LOST = (KombuOperationalError, OSError, AmqpConnectionError)

EXCHANGE = Exchange("lienthong.deliveries", type="direct", durable=True)


def queue_for(endpoint: str) -> Queue:
    """The durable queue holding delivery keys for one target endpoint."""
    return Queue(f"lienthong.deliver.{endpoint}", EXCHANGE, routing_key=endpoint, durable=True)


class Ack(Protocol):
    """Acks a queue entry; with ``through``, every earlier unacked entry of its channel too."""

    def __call__(self, *, through: bool = False) -> None: ...


#: Seconds a batch of keys may wait for the broker's confirms before it counts as lost.
CONFIRM_TIMEOUT = 30.0

#: Most keys one queue entry carries. An AMQP message costs about 0.5 ms of CPU
#: whatever its size (kombu's publish and consume, RabbitMQ's own), so 50 keys an
#: entry make that 0.01 ms a key; more would save little and make the share of a
#: backlog one worker takes coarser.
ENTRY_KEYS = 50


def _entries(items: Sequence[tuple[str, str]]) -> list[tuple[str, list[str]]]:
    """Group ``(key, endpoint)`` pairs into entries: per endpoint, in order, ENTRY_KEYS at most."""
    by_endpoint: dict[str, list[str]] = {}
    for key, endpoint in items:
        by_endpoint.setdefault(endpoint, []).append(key)
    return [
        (endpoint, keys[start : start + ENTRY_KEYS])
        for endpoint, keys in by_endpoint.items()
        for start in range(0, len(keys), ENTRY_KEYS)
    ]


def _connection(url: str) -> Connection:
    return Connection(url, connect_timeout=10)


def _unreachable(connection: Connection, exc: BaseException) -> TransientError:
    return TransientError(
        f"RabbitMQ at {connection.as_uri()} is not reachable: {exc}. "
        "Hint: start it with 'rabbitmq-server -detached' and check bus.broker"
    )


class _Publisher:
    """One thread's connection and producer; used by that thread alone.

    Publisher confirms per batch: the entries of a batch are all published, then
    the broker's confirms awaited together (one round trip, not one per entry).
    A batch returns only when the broker has every key on disk.
    """

    def __init__(self, url: str, endpoints: Sequence[str]) -> None:
        self.url = url
        self.endpoints = endpoints
        self.connection = _connection(url)
        self.producer: Producer | None = None
        self._published = 0  # delivery tags given on this channel (the broker counts the same)
        self._unconfirmed: set[int] = set()
        self._refused = False

    def _open(self, retries: int) -> Producer:
        try:
            self.connection.ensure_connection(max_retries=retries, interval_start=0)
        except LOST as exc:
            raise _unreachable(self.connection, exc) from exc
        channel = self.connection.channel()
        for endpoint in self.endpoints:
            queue_for(endpoint)(channel).declare()
        channel.confirm_select()
        channel.events["basic_ack"].add(self._confirmed)
        channel.events["basic_nack"].add(self._nacked)
        self._published = 0
        self._unconfirmed.clear()
        return Producer(channel, exchange=EXCHANGE)

    def _confirmed(self, delivery_tag: int, multiple: bool) -> None:
        if multiple:
            self._unconfirmed = {t for t in self._unconfirmed if t > delivery_tag}
        else:
            self._unconfirmed.discard(delivery_tag)

    def _nacked(self, delivery_tag: int, multiple: bool) -> None:
        self._refused = True
        self._confirmed(delivery_tag, multiple)

    def publish(self, items: Sequence[tuple[str, str]], *, retries: int) -> None:
        if self.producer is None:
            self.producer = self._open(retries)
        self._refused = False
        entries = _entries(items)
        for endpoint, keys in entries:
            self.producer.publish(
                keys,
                routing_key=endpoint,
                serializer="json",
                delivery_mode=2,
                declare=[queue_for(endpoint)] if endpoint not in self.endpoints else None,
            )
            self._published += 1
            self._unconfirmed.add(self._published)
        deadline = time.monotonic() + CONFIRM_TIMEOUT
        while self._unconfirmed:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TransientError(
                    f"RabbitMQ confirmed {len(entries) - len(self._unconfirmed)} of "
                    f"{len(entries)} entries ({len(items)} keys) in {CONFIRM_TIMEOUT:g} s. "
                    "Hint: check its disk and memory alarms"
                )
            self.connection.drain_events(timeout=left)
        if self._refused:
            raise TransientError("RabbitMQ refused (nacked) some keys; they are published again")

    def reset(self) -> None:
        """Drop the connection; the next publish opens a new one."""
        self.producer = None
        try:
            self.connection.close()
        except Exception:  # closing a dead connection may fail in many ways; it is gone anyway
            log.debug("closing a RabbitMQ publisher connection failed", exc_info=True)
        self.connection = _connection(self.url)


class Relay:
    """Publishes delivery keys from any thread and consumes them on the worker loop's thread.

    ``batch`` is how many keys the worker loop delivers together (``bus.batch_size``).
    The broker's prefetch counts entries, per endpoint queue, as AMQP cannot count
    keys: it is set so that a worker holds about four batches of keys unacked
    when entries are full (a poll's accept, the relay pass): enough that the
    next batch is already here, few enough that a second worker gets the rest of
    a backlog, and that RabbitMQ's ``consumer_timeout`` (30 min) covers them on
    a slow endpoint. Entries of one key (a source that hands over one message at
    a time) then make batches of that many keys, which is fine at the rate such
    a source has. The worker loop stops draining once a batch is in hand
    (lienthong.dispatch).
    """

    def __init__(self, url: str, endpoints: Iterable[str], *, batch: int = 200) -> None:
        self.url = url
        self.endpoints = list(endpoints)
        self.prefetch = max(1, -(-4 * batch // ENTRY_KEYS))  # entries: 4 batches of full ones
        self._local = threading.local()
        self._publishers: list[_Publisher] = []
        self._lock = threading.Lock()
        self.connection = _connection(url)  # the consumer's
        self._consumer: Consumer | None = None
        # Bumped at each reset: an entry of an older connection is acked by nobody.
        self._generation = 0

    # --- publishing: any thread, each on its own connection ---

    def _publisher(self) -> _Publisher:
        publisher: _Publisher | None = getattr(self._local, "publisher", None)
        if publisher is None:
            publisher = self._local.publisher = _Publisher(self.url, self.endpoints)
            with self._lock:
                self._publishers.append(publisher)
        return publisher

    def publish(self, items: Sequence[tuple[str, str]]) -> None:
        """Publish ``(key, endpoint)`` pairs, persistent and confirmed, on this thread's connection.

        A lost connection is opened again and the whole batch published again at
        once (a key published twice is harmless); ``TransientError`` if that fails too.
        """
        if not items:
            return
        publisher = self._publisher()
        try:
            publisher.publish(items, retries=1)
            return
        except (*LOST, TransientError, TimeoutError) as exc:
            publisher.reset()
            log.warning(
                "publishing %d delivery key(s) to RabbitMQ failed (%s); publishing them again "
                "on a new connection",
                len(items),
                exc,
            )
        try:
            publisher.publish(items, retries=1)
        except (*LOST, TimeoutError) as exc:
            publisher.reset()
            raise TransientError(f"publishing to RabbitMQ failed again: {exc}") from exc
        except TransientError:
            publisher.reset()
            raise

    def republish(self, store: Store, *, stale_after: timedelta, by: str, limit: int = 1000) -> int:
        """Publish due deliveries no live queue entry covers; returns how many.

        ``by`` is this worker's holder name: its marks are cleared if it dies.
        """
        items = store.due_for_enqueue(limit=limit, stale_after=stale_after, by=by)
        try:
            self.publish(items)
        except TransientError:
            store.unmark_enqueued([key for key, _ in items])
            raise
        return len(items)

    # --- consuming: the worker loop's thread only ---

    def consume(self, handler: Callable[[str, Ack], None]) -> None:
        """Start consuming: ``handler(key, ack)`` is called for each key, and acks it itself.

        The keys of one entry are handed over in order within one drain, each
        with the entry's ack: acking acks the whole entry, so a handler acks
        once every key of it is recorded (a second ack of an entry does nothing).
        ``ack(through=True)`` acks, in one frame, this entry and every entry handed
        over before it that is not acked yet (AMQP's ``multiple``): for a batch
        whose outcomes are all stored, acking its last entry acks the batch.
        An ack on a lost connection raises ``TransientError``: the entry returns to
        the queue, and whoever gets it again finds its delivery done. The ack of an
        entry whose connection was reset since does nothing: the broker put the
        entry back when that connection closed (and closing one may still hand
        over entries it had in flight).
        """
        try:
            self.connection.ensure_connection(max_retries=3)
        except LOST as exc:
            raise _unreachable(self.connection, exc) from exc
        channel = self.connection.channel()
        for endpoint in self.endpoints:
            queue_for(endpoint)(channel).declare()

        generation = self._generation

        def on_entry(body: Any, message: Message) -> None:
            def ack(*, through: bool = False) -> None:
                if generation != self._generation or message.acknowledged:
                    return
                try:
                    message.ack(multiple=through)
                except LOST as exc:
                    self.reset()
                    raise TransientError(f"lost the connection to RabbitMQ: {exc}") from exc

            # A list of keys; one key as a string from a version before lists, whose
            # entries may still wait in the durable queues after an upgrade.
            keys = [str(key) for key in body] if isinstance(body, list) else [str(body)]
            if not keys:
                message.ack()  # nothing to record; unacked it would hold a prefetch slot
            for key in keys:
                handler(key, ack)

        self._consumer = Consumer(
            channel,
            queues=[queue_for(e) for e in self.endpoints],
            callbacks=[on_entry],
            accept=["json", "text/plain"],
            prefetch_count=self.prefetch,
        )
        self._consumer.consume()

    def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for entries; False when none came."""
        try:
            self.connection.drain_events(timeout=timeout)
        except TimeoutError:  # socket.timeout is TimeoutError
            return False
        except LOST as exc:
            self.reset()
            raise TransientError(f"lost the connection to RabbitMQ: {exc}") from exc
        return True

    def reset(self) -> None:
        """Drop the consumer's connection; unacked entries return to the queue."""
        self._generation += 1
        self._consumer = None
        try:
            self.connection.close()
        except Exception:  # closing a dead connection may fail in many ways; it is gone anyway
            log.debug("closing the RabbitMQ connection failed", exc_info=True)
        self.connection = _connection(self.url)

    @property
    def consuming(self) -> bool:
        return self._consumer is not None

    def close(self) -> None:
        """Close the consumer's connection and every thread's publisher."""
        self.reset()
        self.connection.close()
        with self._lock:
            publishers, self._publishers = self._publishers, []
        for publisher in publishers:
            publisher.reset()
            publisher.connection.close()
