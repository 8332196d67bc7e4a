"""Memory adapter: in-process endpoints for tests, benchmarks and trying routes.

Features:
- receive: messages put with :func:`feed` are handed to the bus on the next poll;
- send: delivered messages are kept per endpoint, readable with :func:`delivered`,
  once per idempotency key.

Connection settings: none; everything lives in this process and is lost with
it. Never use it for real traffic.

Options:
- ``channel``: the name messages are fed to and kept under (default: the endpoint name).
- ``batch``: how many fed messages one poll hands over (default 500).
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from typing import ClassVar

from lienthong.adapter import Adapter, Capability, Inbox, Option
from lienthong.hookspecs import hookimpl
from lienthong.message import Message

_lock = threading.Lock()
_inboxes: dict[str, deque[Message]] = {}
_outboxes: dict[str, OrderedDict[str, Message]] = {}


def feed(channel: str, messages: list[Message]) -> None:
    """Queue messages for the endpoint reading ``channel``."""
    with _lock:
        _inboxes.setdefault(channel, deque()).extend(messages)


def feed_front(channel: str, messages: list[Message]) -> None:
    """Put messages back at the head of ``channel`` (the bus did not take them)."""
    with _lock:
        _inboxes.setdefault(channel, deque()).extendleft(reversed(messages))


def delivered(channel: str) -> list[Message]:
    """Messages delivered to ``channel``, in delivery order, one per idempotency key."""
    with _lock:
        return list(_outboxes.get(channel, {}).values())


def reset() -> None:
    """Forget every channel (between tests)."""
    with _lock:
        _inboxes.clear()
        _outboxes.clear()


class MemoryAdapter(Adapter):
    """In-process endpoint for tests and benchmarks."""

    name = "memory"
    version = "1"
    summary = "In-process endpoint for tests and benchmarks (not durable)."
    options = (
        Option("channel", "the channel fed to and delivered into", default=None, example="in"),
        Option("batch", "messages handed over per poll", default=500, type=int, minimum=1),
    )
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.RECEIVE, Capability.SEND})

    @property
    def channel(self) -> str:
        return self.settings.get("channel") or self.endpoint

    def receive(self, inbox: Inbox) -> int:
        with _lock:
            queue = _inboxes.get(self.channel)
            batch = (
                [queue.popleft() for _ in range(min(len(queue), self.settings["batch"]))]
                if queue
                else []
            )
        for message in batch:
            message.source = self.endpoint
            # Put back after a failed accept, the same message comes again: same key.
            message.source_key = message.source_key or message.id
        if batch:
            try:
                inbox.accept(batch)
            except BaseException:
                feed_front(self.channel, batch)
                raise
        return len(batch)

    def send(self, message: Message, *, key: str) -> None:
        with _lock:
            _outboxes.setdefault(self.channel, OrderedDict()).setdefault(key, message)


@hookimpl
def lienthong_register_adapters(register):  # type: ignore[no-untyped-def]
    register(MemoryAdapter)
