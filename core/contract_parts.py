"""What the contract suite hands an adapter: real parts that also record what happened.

:class:`RecordingInbox` and :class:`RecordingCursors` are the bus's own behaviour
(park, recognise a repeat, store a cursor) with a :class:`Timeline` the suite
reads to check the order of accepts and cursor moves. :class:`SilentServer` and
:func:`closed_port` are the two ways a system can fail to answer.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Sequence

from . import xml
from .adapter import INVALID_HEADER, Acceptance, Cursors
from .errors import StoreUnavailable
from .message import Message


class Timeline:
    """What happened, in order, across an inbox and a cursor store: the suite reads it."""

    def __init__(self) -> None:
        self.events: list[tuple[str, ...]] = []
        self._lock = threading.Lock()

    def add(self, *event: str) -> None:
        with self._lock:
            self.events.append(event)

    def since(self, marker: str) -> list[tuple[str, ...]]:
        """The events after the last ``marker``."""
        with self._lock:
            events = list(self.events)
        starts = [i for i, e in enumerate(events) if e[0] == marker]
        return events[starts[-1] + 1 :] if starts else events


class RecordingCursors:
    """A real cursor store (the bus's) that also notes every ``set`` on a :class:`Timeline`."""

    def __init__(self, store: Cursors, timeline: Timeline) -> None:
        self.store = store
        self.timeline = timeline

    def get(self, name: str) -> str | None:
        return self.store.get(name)

    def set(self, name: str, value: str) -> None:
        self.timeline.add("cursor", name, value)
        self.store.set(name, value)


class RecordingInbox:
    """A real :class:`lienthong.adapter.Inbox` that keeps what it is handed, as the store would.

    Like the bus, it parks a message that carries ``INVALID_HEADER`` or a body that
    is not XML, and reports a message whose source and source key it has seen as a
    duplicate. ``fail=n`` makes the first ``n`` calls of ``accept`` raise
    ``StoreUnavailable``, as when the store is down. ``messages`` holds the new
    messages it accepted; ``handed`` everything it was handed, failed calls included.
    """

    def __init__(
        self,
        park: Callable[[Message], str | None] | None = None,
        *,
        fail: int = 0,
        seen: dict[tuple[str, str], str] | None = None,
        timeline: Timeline | None = None,
    ) -> None:
        self.messages: list[Message] = []
        self.handed: list[Message] = []
        self.acceptances: list[Acceptance] = []
        self.park = park
        self.fail = fail
        self._seen: dict[tuple[str, str], str] = {} if seen is None else seen
        self._timeline = timeline

    def accept(self, messages: Sequence[Message]) -> list[Acceptance]:
        batch = list(messages)
        self.handed.extend(batch)
        self._note("accept", str(len(batch)))
        if self.fail > 0:
            self.fail -= 1
            self._note("accept failed")
            raise StoreUnavailable("the store is not answering (the contract suite's inbox)")
        result = []
        for message in batch:
            key = (message.source, message.source_key) if message.source_key else None
            if key is not None and key in self._seen:
                result.append(Acceptance(self._seen[key], duplicate=True))
                continue
            if key is not None:
                self._seen[key] = message.id
            self.messages.append(message)
            result.append(Acceptance(message.id, self._parked(message)))
        self.acceptances.extend(result)
        self._note("accepted", str(len(batch)))
        return result

    def _parked(self, message: Message) -> str | None:
        if message.headers.get(INVALID_HEADER):
            return f"invalid at the source: {message.headers[INVALID_HEADER]}"
        try:
            xml.parse(message.body, what=f"message {message.id}")
        except xml.XmlRejected as exc:
            return str(exc)
        return self.park(message) if self.park else None

    def _note(self, *event: str) -> None:
        if self._timeline is not None:
            self._timeline.add(*event)


def closed_port() -> int:
    """A loopback TCP port where nothing listens (it was free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class SilentServer:
    """A TCP server on loopback that accepts connections and never answers: a hung system."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port = int(self._listener.getsockname()[1])
        self._held: list[socket.socket] = []
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="silent-server", daemon=True)

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            self._held.append(conn)

    def __enter__(self) -> SilentServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing.set()
        self._thread.join(timeout=5)
        self._listener.close()
        for conn in self._held:
            conn.close()
