"""The relay on a real RabbitMQ: one connection per publishing thread, and no stale acks."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from lienthong.errors import TransientError
from lienthong.relay import Relay, queue_for

pytestmark = pytest.mark.server


@pytest.fixture
def relay(amqp_url: str, unique: str) -> Iterator[Relay]:
    endpoint = f"relay-{unique}"
    relay = Relay(amqp_url, [endpoint], prefetch=10)
    yield relay
    relay.close()
    from kombu import Connection

    with Connection(amqp_url, connect_timeout=5) as conn:
        queue_for(endpoint)(conn.channel()).delete()


def drain_all(relay: Relay, want: set[str], timeout: float = 20) -> list[str]:
    """Consume (acking each entry) until every key of ``want`` was seen."""
    seen: list[str] = []
    entries: list[tuple[str, object]] = []
    relay.consume(lambda key, ack: entries.append((key, ack)))
    deadline = time.monotonic() + timeout
    while not want <= set(seen):
        assert time.monotonic() < deadline, f"{len(set(seen))} of {len(want)} keys came"
        relay.drain(timeout=0.2)
        for key, ack in entries:
            seen.append(key)
            ack()  # type: ignore[operator]
        entries.clear()
    return seen


def test_threads_publish_at_once_each_on_its_own_connection(relay: Relay) -> None:
    endpoint = relay.endpoints[0]
    errors: list[BaseException] = []

    def publish(thread: int) -> None:
        try:
            for batch in range(10):
                relay.publish([(f"t{thread}-{batch}-{n}", endpoint) for n in range(10)])
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=publish, args=(t,)) for t in range(6)]
    for thread in threads:
        thread.start()
    seen = drain_all(
        relay, {f"t{t}-{b}-{n}" for t in range(6) for b in range(10) for n in range(10)}
    )
    for thread in threads:
        thread.join(10)
    assert errors == []
    assert len(seen) == 600, "each key once"
    assert len({id(p.connection) for p in relay._publishers}) == 6, "one connection per thread"


def test_a_publish_whose_connection_broke_is_made_again_at_once(relay: Relay, caplog) -> None:
    endpoint = relay.endpoints[0]
    relay.publish([("before", endpoint)])
    publisher = relay._publisher()
    publisher.connection.connection.transport.sock.shutdown(socket.SHUT_RDWR)  # broker gone
    with caplog.at_level(logging.WARNING, logger="lienthong.relay"):
        relay.publish([("after", endpoint)])  # no TransientError: published again at once
    assert "publishing 1 delivery key(s) to RabbitMQ failed" in caplog.text
    assert "publishing them again on a new connection" in caplog.text
    assert set(drain_all(relay, {"before", "after"})) == {"before", "after"}


def test_entries_of_a_reset_connection_are_not_acked_on_the_new_one(relay: Relay) -> None:
    endpoint = relay.endpoints[0]
    keys = {f"k{n}" for n in range(50)}
    relay.publish([(key, endpoint) for key in sorted(keys)])
    held: list[tuple[str, object]] = []
    relay.consume(lambda key, ack: held.append((key, ack)))
    deadline = time.monotonic() + 10
    while not held:
        assert time.monotonic() < deadline, "nothing consumed"
        relay.drain(timeout=0.2)
    relay.reset()  # lost while entries were in hand (closing may hand over a few more)
    relay.consume(lambda key, ack: None)
    for _, ack in held:
        ack()  # type: ignore[operator]  # their connection is gone: nothing to do, no error
    assert relay.consuming, "a stale ack must not reset the new connection"
    relay.reset()
    try:
        seen = drain_all(relay, keys)
    except TransientError as exc:  # pragma: no cover - the failure this test guards against
        pytest.fail(f"a stale entry broke the new connection: {exc}")
    assert set(seen) == keys, "every entry came back, none lost"


def test_acking_a_batch_s_last_entry_through_acks_the_batch_and_nothing_after(
    relay: Relay,
) -> None:
    endpoint = relay.endpoints[0]
    relay.publish([(f"k{n}", endpoint) for n in range(8)])
    held: list[tuple[str, object]] = []
    relay.consume(lambda key, ack: held.append((key, ack)))
    deadline = time.monotonic() + 10
    while len(held) < 8:  # prefetch 10: all eight in hand, none acked
        assert time.monotonic() < deadline, f"{len(held)} of 8 entries came"
        relay.drain(timeout=0.2)
    keys = [key for key, _ in held]
    held[4][1](through=True)  # type: ignore[operator]  # a batch of the first five
    relay.reset()  # the unacked ones go back to the queue; the acked ones are gone
    assert sorted(drain_all(relay, set(keys[5:]))) == sorted(keys[5:])
    relay.reset()
    relay.consume(lambda key, ack: held.append((key, ack)))
    assert not relay.drain(timeout=0.5), "the batch's entries were acked, none came back"
