"""Queues between the store and the workers: RabbitMQ through kombu in production.

The store is the durable record; a queue entry only carries a delivery's key,
so a worker knows what to claim next. Entries are persistent, published with
confirms to durable queues (one per target endpoint), consumed with a bounded
prefetch and acked only after the store recorded the outcome. A lost entry is
republished by the relay; a duplicate finds the delivery already claimed or
done and is acked without effect.

The embedded default has no broker: workers claim due deliveries from the
store directly (kombu's server-less transports lose fetched-but-unacked
messages on a crash, so they are not used for durability).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from amqp.exceptions import ConnectionError as AmqpConnectionError
from kombu import Connection, Consumer, Exchange, Producer, Queue
from kombu.exceptions import OperationalError as KombuOperationalError
from kombu.message import Message

from .errors import TransientError

log = logging.getLogger(__name__)

#: What a lost broker connection raises: kombu's wrapper, socket errors, and py-amqp's
#: own connection errors (a broker restart closes connections with CONNECTION_FORCED,
#: an ack on a closed connection raises RecoverableConnectionError).
LOST = (KombuOperationalError, OSError, AmqpConnectionError)

EXCHANGE = Exchange("lienthong.deliveries", type="direct", durable=True)


def queue_for(endpoint: str) -> Queue:
    """The durable queue holding delivery keys for one target endpoint."""
    return Queue(f"lienthong.deliver.{endpoint}", EXCHANGE, routing_key=endpoint, durable=True)


class AmqpTransport:
    """Publishes delivery keys and consumes them, one queue per endpoint."""

    def __init__(self, url: str, endpoints: Iterable[str], *, prefetch: int = 50) -> None:
        self.url = url
        self.endpoints = list(endpoints)
        self.prefetch = prefetch
        self.connection = Connection(
            url, transport_options={"confirm_publish": True}, connect_timeout=10
        )
        self._producer: Producer | None = None
        self._consumer: Consumer | None = None

    def _connect(self) -> None:
        try:
            self.connection.ensure_connection(max_retries=3)
        except LOST as exc:
            raise TransientError(
                f"RabbitMQ at {self.connection.as_uri()} is not reachable: {exc}. "
                "Hint: start it with 'rabbitmq-server -detached' and check bus.broker"
            ) from exc
        if self._producer is None:
            channel = self.connection.channel()
            for endpoint in self.endpoints:
                queue_for(endpoint)(channel).declare()
            self._producer = Producer(channel, exchange=EXCHANGE)

    def publish(self, items: Sequence[tuple[str, str]]) -> None:
        """Publish ``(key, endpoint)`` pairs as persistent messages, confirmed by the broker."""
        if not items:
            return
        try:
            self._connect()
            assert self._producer is not None
            for key, endpoint in items:
                self._producer.publish(
                    key,
                    routing_key=endpoint,
                    serializer="json",
                    delivery_mode=2,
                    declare=[queue_for(endpoint)] if endpoint not in self.endpoints else None,
                    retry=True,
                    retry_policy={"max_retries": 3},
                )
        except LOST as exc:
            self.reset()
            raise TransientError(f"publishing to RabbitMQ failed: {exc}") from exc

    def consume(self, handler: Callable[[str, Callable[[], None]], None]) -> None:
        """Start consuming: ``handler(key, ack)`` is called for each entry, and acks it itself.

        An ack on a lost connection raises ``TransientError``: the entry returns to
        the queue, and whoever gets it again finds its delivery done.
        """
        self._connect()
        channel = self.connection.channel()

        def on_entry(body: Any, message: Message) -> None:
            def ack() -> None:
                try:
                    message.ack()
                except LOST as exc:
                    self.reset()
                    raise TransientError(f"lost the connection to RabbitMQ: {exc}") from exc

            handler(str(body), ack)

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
        """Drop the connection; the next call reconnects (unacked entries return to the queue)."""
        self._producer = None
        self._consumer = None
        try:
            self.connection.close()
        except Exception:  # closing a dead connection may fail in many ways; it is gone anyway
            log.debug("closing the RabbitMQ connection failed", exc_info=True)
        self.connection = Connection(
            self.url, transport_options={"confirm_publish": True}, connect_timeout=10
        )

    @property
    def consuming(self) -> bool:
        return self._consumer is not None

    def close(self) -> None:
        self.reset()
        self.connection.close()
