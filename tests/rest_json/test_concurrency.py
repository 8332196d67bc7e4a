"""An endpoint's ``concurrency``: N sends in flight at once, each lane an adapter of its own.

A real HTTP server that takes its time answering counts how many requests it
holds at once and on which connections; the bus sends through the JSON/REST
adapter, on the embedded default and (tests/production) on RabbitMQ + PostgreSQL.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from lienthong.message import Message
from lienthong.plugins import memory
from lienthong.plugins.rest_json.sandbox import JsonSandbox, Reply, SandboxRequest

JSON = "http://www.w3.org/2005/xpath-functions"


class SlowSystem(JsonSandbox):
    """SANDBOX: takes ``delay`` seconds per POST, and keeps count of what it held at once."""

    name = "slow"

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay
        self.in_flight = 0
        self.most_at_once = 0
        self.keys: list[str] = []
        self.bodies: list[dict[str, Any]] = []
        self.refuse_next = 0  # answer this many POSTs with 503, then take them
        self.route("POST", r"/things", self._thing, "thing")

    def _thing(self, request: SandboxRequest) -> Reply:
        with self.lock:
            if self.refuse_next:
                self.refuse_next -= 1
                return Reply(503, {"message": "busy"}, {"Retry-After": "0"})
            self.in_flight += 1
            self.most_at_once = max(self.most_at_once, self.in_flight)
        try:
            time.sleep(self.delay)
        finally:
            with self.lock:
                self.in_flight -= 1
        with self.lock:
            self.keys.append(request.headers["Idempotency-Key"])
            self.bodies.append(request.json())
        return Reply(200, {"ok": True})


@pytest.fixture
def slow() -> Iterator[SlowSystem]:
    with SlowSystem(delay=0.05) as sandbox:
        yield sandbox  # type: ignore[misc]


def endpoints(slow: SlowSystem, concurrency: int | None) -> dict[str, Any]:
    target: dict[str, Any] = {
        "adapter": "rest_json",
        "base_url": slow.url,
        "send_operation": "add",
        "operations": {
            "add": {"method": "POST", "path": "/things", "idempotency_header": "Idempotency-Key"}
        },
    }
    if concurrency is not None:
        target["concurrency"] = concurrency
    return {"in": {"adapter": "memory"}, "slow": target}


ROUTES = [{"name": "things", "from": "in", "to": "slow"}]


def things(count: int) -> list[Message]:
    return [
        Message(body=f'<map xmlns="{JSON}"><number key="n">{n}</number></map>'.encode())
        for n in range(count)
    ]


def run_until(bus: Any, done: Any, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out"
        bus.run(once=True)


def test_four_lanes_have_four_calls_in_flight_and_send_each_message_once(
    lienthong_bus: Any, slow: SlowSystem, bus_settings: dict[str, Any]
) -> None:
    memory.reset()
    # Queue names follow endpoint names, and RabbitMQ is shared: a name of this test's own.
    name = f"slow-{uuid.uuid4().hex[:8]}"
    ends = endpoints(slow, 4)
    ends[name] = ends.pop("slow")
    bus = lienthong_bus(
        endpoints=ends, routes=[{"name": "things", "from": "in", "to": name}], bus=bus_settings
    )
    memory.feed("in", things(40))
    run_until(bus, lambda: bus.store.counts()["delivered"] == 40)
    assert slow.most_at_once == 4
    assert sorted(set(slow.keys)) == sorted(slow.keys) and len(slow.keys) == 40


def test_an_order_group_goes_one_at_a_time_while_the_lanes_take_other_groups(
    lienthong_bus: Any, slow: SlowSystem
) -> None:
    memory.reset()
    route = {
        "name": "things",
        "from": "in",
        "to": [{"endpoint": "slow", "order_by": {"group": "string(//*[@key='g'])"}}],
    }
    bus = lienthong_bus(endpoints=endpoints(slow, 4), routes=[route])
    memory.feed(
        "in",
        [
            Message(
                body=(
                    f'<map xmlns="{JSON}"><string key="g">{g}</string>'
                    f'<number key="n">{n}</number></map>'
                ).encode()
            )
            for n in range(5)
            for g in "ABCD"
        ],
    )
    run_until(bus, lambda: bus.store.counts()["delivered"] == 20)
    for g in "ABCD":
        assert [b["n"] for b in slow.bodies if b["g"] == g] == [0, 1, 2, 3, 4]
    assert slow.most_at_once > 1  # the groups went side by side


def test_without_concurrency_sends_go_one_at_a_time(lienthong_bus: Any, slow: SlowSystem) -> None:
    memory.reset()
    bus = lienthong_bus(endpoints=endpoints(slow, None), routes=ROUTES)
    memory.feed("in", things(10))
    run_until(bus, lambda: len(slow.keys) >= 10)
    assert slow.most_at_once == 1


def test_each_lane_is_its_own_adapter_used_by_one_thread_at_a_time(
    lienthong_bus: Any, slow: SlowSystem
) -> None:
    memory.reset()
    bus = lienthong_bus(endpoints=endpoints(slow, 3), routes=ROUTES)
    lanes = bus.endpoints.lanes["slow"]
    assert len({id(lane.adapter) for lane in lanes}) == 3
    assert lanes[0].adapter is bus.adapters["slow"]  # the endpoint's own, shared with polls
    seen: dict[int, set[int]] = {}
    overlaps: list[int] = []
    for lane in lanes:
        send, busy = lane.adapter.send, threading.Lock()

        def watched(message: Message, *, key: str, send: Any = send, busy: Any = busy) -> None:
            if not busy.acquire(blocking=False):
                overlaps.append(1)  # two threads in one adapter at once
                return send(message, key=key)
            try:
                seen.setdefault(id(send.__self__), set()).add(threading.get_ident())
                return send(message, key=key)
            finally:
                busy.release()

        lane.adapter.send = watched  # type: ignore[method-assign]
    memory.feed("in", things(30))
    run_until(bus, lambda: len(slow.keys) >= 30)
    assert overlaps == []
    assert len(seen) == 3  # every lane sent


def test_a_lane_whose_calls_fail_retries_them_and_nothing_is_lost(
    lienthong_bus: Any, slow: SlowSystem
) -> None:
    memory.reset()
    bus = lienthong_bus(
        endpoints=endpoints(slow, 4),
        routes=ROUTES,
        bus={"retry": {"initial_delay": 0.05, "max_delay": 0.2}},
    )
    slow.refuse_next = 4  # fewer than the circuit breaker counts (5)
    memory.feed("in", things(20))
    run_until(bus, lambda: len(slow.keys) >= 20 and bus.store.counts()["delivered"] == 20)
    assert sorted(set(slow.keys)) == sorted(slow.keys)  # none delivered twice
    assert bus.store.counts()["dead"] == 0


def test_a_lane_that_cannot_start_leaves_its_share_to_be_retried(
    lienthong_bus: Any, slow: SlowSystem
) -> None:
    memory.reset()
    bus = lienthong_bus(
        endpoints=endpoints(slow, 2),
        routes=ROUTES,
        bus={"retry": {"initial_delay": 0.05, "max_delay": 0.2}},
    )
    spare = bus.endpoints.lanes["slow"][1]
    starts: list[int] = []
    start = spare.adapter.start

    def start_fails_once() -> None:
        starts.append(1)
        if len(starts) == 1:
            raise ConnectionError("the second connection was refused")
        start()

    spare.adapter.start = start_fails_once  # type: ignore[method-assign]
    memory.feed("in", things(12))
    run_until(bus, lambda: bus.store.counts()["delivered"] == 12)
    assert len(starts) == 2 and spare.started
    assert sorted(set(slow.keys)) == sorted(slow.keys)
