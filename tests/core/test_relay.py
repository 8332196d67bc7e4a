"""The relay on a real RabbitMQ: entries of many keys, one connection per publishing thread,
and no stale acks."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from kombu import Connection, Producer

from lienthong.dispatch import DispatchStage
from lienthong.errors import TransientError
from lienthong.intake import CycleResult
from lienthong.relay import ENTRY_KEYS, EXCHANGE, Relay, queue_for

pytestmark = pytest.mark.server


@pytest.fixture
def relay(amqp_url: str, unique: str) -> Iterator[Relay]:
    endpoints = [f"relay-{unique}", f"relay-{unique}-b"]
    relay = Relay(amqp_url, endpoints, batch=100)
    yield relay
    relay.close()
    with Connection(amqp_url, connect_timeout=5) as conn:
        for endpoint in endpoints:
            queue_for(endpoint)(conn.channel()).delete()


def waiting(relay: Relay, endpoint: str) -> int:
    """Entries ready in an endpoint's queue (not handed to a consumer)."""
    with Connection(relay.url, connect_timeout=5) as conn:
        return int(queue_for(endpoint)(conn.channel()).queue_declare(passive=True).message_count)


def publish_raw(relay: Relay, endpoint: str, body: object) -> None:
    """Publish ``body`` as one entry, as a plain kombu client (or an older version) would."""
    with Connection(relay.url, connect_timeout=5) as conn:
        Producer(conn.channel(), exchange=EXCHANGE).publish(
            body,
            routing_key=endpoint,
            serializer="json",
            delivery_mode=2,
            declare=[queue_for(endpoint)],  # else, published first, it would go nowhere
        )


def hold(relay: Relay, count: int) -> list[tuple[str, object]]:
    """Consume without acking until ``count`` keys are in hand."""
    held: list[tuple[str, object]] = []
    relay.consume(lambda key, ack: held.append((key, ack)))
    deadline = time.monotonic() + 10
    while len(held) < count:
        assert time.monotonic() < deadline, f"{len(held)} of {count} keys came"
        relay.drain(timeout=0.2)
    return held


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
    for start in range(0, 50, 5):  # ten entries
        relay.publish([(f"k{n}", endpoint) for n in range(start, start + 5)])
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
    for n in range(8):  # eight entries of one key each
        relay.publish([(f"k{n}", endpoint)])
    held = hold(relay, 8)  # prefetch 10: all eight in hand, none acked
    keys = [key for key, _ in held]
    held[4][1](through=True)  # type: ignore[operator]  # a batch of the first five
    relay.reset()  # the unacked ones go back to the queue; the acked ones are gone
    assert sorted(drain_all(relay, set(keys[5:]))) == sorted(keys[5:])
    relay.reset()
    relay.consume(lambda key, ack: held.append((key, ack)))
    assert not relay.drain(timeout=0.5), "the batch's entries were acked, none came back"


# --- entries of many keys ---


def test_a_batch_for_two_endpoints_is_one_entry_each_and_every_key_comes_once_in_order(
    relay: Relay,
) -> None:
    a, b = relay.endpoints
    items = [(f"{endpoint}-{n}", endpoint) for n in range(20) for endpoint in (a, b)]
    relay.publish(items)
    assert (waiting(relay, a), waiting(relay, b)) == (1, 1), "one entry per endpoint"
    held = hold(relay, 40)
    for endpoint in (a, b):
        keys = [key for key, _ in held if key.rsplit("-", 1)[0] == endpoint]
        assert keys == [f"{endpoint}-{n}" for n in range(20)], "each key once, in order"
    assert len({id(ack) for _, ack in held}) == 2, "the keys of an entry share its ack"
    for _, ack in held:
        ack()  # type: ignore[operator]  # one ack acks the entry; the others do nothing
    relay.reset()
    assert (waiting(relay, a), waiting(relay, b)) == (0, 0), "both entries acked"


def test_a_batch_one_key_over_an_entry_makes_two_entries(relay: Relay) -> None:
    endpoint = relay.endpoints[0]
    keys = [f"k{n}" for n in range(ENTRY_KEYS + 1)]
    relay.publish([(key, endpoint) for key in keys])
    assert waiting(relay, endpoint) == 2
    held = hold(relay, ENTRY_KEYS + 1)
    assert [key for key, _ in held] == keys
    first, last = held[0][1], held[-1][1]
    assert [ack for _, ack in held] == [first] * ENTRY_KEYS + [last], "the last key on its own"
    first()  # type: ignore[operator]
    relay.reset()
    assert drain_all(relay, {keys[-1]}) == [keys[-1]], "only the unacked entry came back"


def test_an_entry_of_one_key_from_an_older_version_is_still_handed_over(relay: Relay) -> None:
    endpoint = relay.endpoints[0]
    publish_raw(relay, endpoint, "old-key")  # a JSON string, as entries were before lists
    relay.publish([("new-key", endpoint)])
    assert drain_all(relay, {"old-key", "new-key"}) == ["old-key", "new-key"]
    relay.reset()
    assert waiting(relay, endpoint) == 0


def test_an_empty_entry_is_acked_and_holds_nothing_up(relay: Relay) -> None:
    endpoint = relay.endpoints[0]
    publish_raw(relay, endpoint, [])
    relay.publish([("after", endpoint)])
    assert drain_all(relay, {"after"}) == ["after"]
    relay.reset()
    assert waiting(relay, endpoint) == 0, "the empty entry was acked, not left in hand"


def test_a_worker_that_dies_before_acking_an_entry_hands_all_its_keys_back(
    relay: Relay, amqp_url: str
) -> None:
    endpoint = relay.endpoints[0]
    relay.publish([(f"done-{n}", endpoint) for n in range(3)])
    keys = [f"k{n}" for n in range(30)]
    relay.publish([(key, endpoint) for key in keys])
    dying = Relay(amqp_url, [endpoint], batch=100)
    try:
        held = hold(dying, 33)
        held[2][1](through=True)  # type: ignore[operator]  # the first entry's keys recorded
        assert [key for key, _ in held[3:]] == keys
        dying.connection.connection.transport.sock.shutdown(socket.SHUT_RDWR)  # killed
    finally:
        dying.close()
    assert drain_all(relay, set(keys)) == keys, "all of the entry's keys, once, in order"


def test_the_worker_loop_claims_entries_of_many_keys_a_batch_at_a_time_and_acks_them(
    relay: Relay,
) -> None:
    """lienthong.dispatch on a real broker, its store left out: claims and acks."""
    endpoint = relay.endpoints[0]
    keys = [f"k{n}" for n in range(2 * ENTRY_KEYS + 7)]
    relay.publish([(key, endpoint) for key in keys])
    claims: list[list[str]] = []
    stage = DispatchStage.__new__(DispatchStage)
    stage.config = SimpleNamespace(bus=SimpleNamespace(batch_size=20, poll_interval=5.0))  # type: ignore[assignment]
    stage.relay, stage._queued, stage._last_relay = relay, [], time.monotonic()

    def deliver_keys(batch: list[str]) -> CycleResult:
        claims.append(batch)
        return CycleResult()

    stage.deliver_keys = deliver_keys  # type: ignore[method-assign]
    deadline = time.monotonic() + 10
    while sum(map(len, claims)) < len(keys):
        assert time.monotonic() < deadline, f"{sum(map(len, claims))} of {len(keys)} claimed"
        stage.from_queues(CycleResult(), threading.Event())
    assert [key for claim in claims for key in claim] == keys, "each key once, in order"
    assert max(map(len, claims)) <= 20, "an entry of 50 keys is claimed batch_size at a time"
    relay.reset()
    assert waiting(relay, endpoint) == 0, "every entry acked once its keys were delivered"


def test_a_worker_holds_about_four_batches_of_full_entries_unacked(
    amqp_url: str, unique: str
) -> None:
    """The prefetch counts entries: full ones hold four batches of keys, single keys a few."""
    endpoint = f"relay-{unique}-prefetch"
    relay = Relay(amqp_url, [endpoint], batch=100)
    try:
        relay.publish([(f"k{n}", endpoint) for n in range(1000)])  # 20 full entries
        held = hold(relay, 400)  # the consumer goes on appending to it
        assert relay.drain(timeout=0.5) is False
        assert len(held) == 400, "no fifth batch before the first four are acked"
        held[-1][1](through=True)  # type: ignore[operator]
        relay.drain(timeout=2)
        assert len(held) > 400, "acked, the next entries come"
    finally:
        relay.close()
        with Connection(amqp_url, connect_timeout=5) as conn:
            queue_for(endpoint)(conn.channel()).delete()
