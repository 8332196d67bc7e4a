"""The contract suite every adapter passes, and the real parts it hands an adapter.

:class:`AdapterContract` runs an adapter against the real system it talks to and
checks the rules in :data:`RULES`: what it declares, that it receives each item
once and acknowledges it only after the bus stored it, that its source keys and
cursor positions survive a crash and a restart, that it sends once per key, and
that its errors tell the bus what to do next without showing a secret. Every
failure names its rule. Use it through the pytest plugin, ``lienthong.testing``.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import socket
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, NoReturn

import pytest
from lxml import etree

from . import xml
from .adapter import (
    INVALID_HEADER,
    Acceptance,
    Adapter,
    Capability,
    Cursors,
    Services,
    resolve_options,
    resolve_secret,
)
from .errors import (
    ConfigError,
    FatalError,
    LienthongError,
    RejectedError,
    StoreUnavailable,
    TransientError,
)
from .message import Message

# --- what the contract suite hands an adapter -----------------------------------------


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


# --- the contract suite ----------------------------------------------------------------

#: The rules the suite checks; every failure starts with ``[rule]``.
RULES: dict[str, str] = {
    "declares-itself": "a name, summary, capabilities, docstring; options described, "
    "defaults that pass their own rules",
    "options": "a misspelt option gets 'Did you mean'; every required option is reported",
    "starts-and-stops": "start() and stop() work against the real system",
    "stop-without-start": "stop() is safe before start() and twice",
    "contract-hooks": "the contract implements the hooks the adapter's capabilities need",
    "receives-once": "an item put in the system is handed over once, as its body",
    "source": "received messages name their endpoint as source",
    "source-key": "received messages carry a source key, unique in their batch",
    "kind": "received messages carry a kind (the configured one when there is an option)",
    "ack-after-accept": "nothing is acknowledged and no cursor moves before inbox.accept "
    "returned: after a failed accept the same items come again, once",
    "stable-source-key": "an item read again carries the same source key",
    "cursor-in-store": "a new adapter instance resumes where the last one stopped",
    "bounded-batch": "one receive() hands over at most one batch; a backlog drains over polls",
    "malformed-item": "an item the adapter cannot read is handed over to be parked, once",
    "sends-once": "two sends with one key make one effect; another key, another effect",
    "rejected-input": "a body the system can never take raises RejectedError",
    "transient-errors": "a refused connection and a timeout are transient errors",
    "fatal-credentials": "refused credentials raise FatalError or ConfigError",
    "secrets-stay-secret": "no secret value appears in any error or log line",
}

_KIND_OPTIONS = ("kind", "message_kind")
_BATCH_OPTIONS = ("batch", "batch_size", "page_size")
_CONTRACT_KIND = "contract.kind"
_POLLS = 12


def broken(rule: str, text: str) -> NoReturn:
    """Fail the current test for breaking ``rule`` (a key of :data:`RULES`)."""
    pytest.fail(f"[{rule}] {text}", pytrace=False)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}"


class AdapterContract:
    """The contract suite every adapter must pass. Subclass it as ``TestMyAdapterContract``.

    Set ``adapter_class`` and implement :meth:`settings`. An adapter that
    receives needs :meth:`put`, one that sends :meth:`fetch`; both translate
    between the bus's messages (XML, like :meth:`sample`) and the system's own
    format. One subclass serves an adapter that receives and sends:
    :meth:`receive_settings` and :meth:`send_settings` tell the two endpoints apart.
    The other hooks switch further checks on; a check whose hook is missing skips
    and says which hook it needs.
    """

    adapter_class: ClassVar[type[Adapter]]
    #: The first message body (override it with what your system takes).
    sample_body: ClassVar[bytes] = (
        "<?xml version='1.0' encoding='UTF-8'?><test><name>Liên thông</name></test>"
    ).encode()
    #: The kind of the messages the suite sends.
    sample_kind: ClassVar[str] = "test"
    #: The option that bounds one receive (default: the first of batch, batch_size, page_size).
    batch_option: ClassVar[str | None] = None
    #: The option that sets received messages' kind (default: kind or message_kind).
    kind_option: ClassVar[str | None] = None

    # --- the hooks an author writes ---

    def settings(self, tmp_path: Path) -> dict[str, Any]:
        """Valid settings for an endpoint that talks to a real local system."""
        raise NotImplementedError

    def receive_settings(self, tmp_path: Path) -> dict[str, Any]:
        """Settings for an endpoint that receives (default: :meth:`settings`)."""
        return self.settings(tmp_path)

    def send_settings(self, tmp_path: Path) -> dict[str, Any]:
        """Settings for an endpoint that sends (default: :meth:`settings`)."""
        return self.settings(tmp_path)

    def put(self, adapter: Adapter, body: bytes) -> None:
        """Make the system offer, in its own format, the item whose message body is ``body``."""
        raise NotImplementedError

    def fetch(self, adapter: Adapter) -> list[bytes]:
        """Every effect the system shows of what was sent, one body each, in the bus's format.

        One entry per row, file or document the system holds, after the
        deduplication the system itself does (mail readers drop repeated
        Message-IDs): a second effect of one delivery must show as a second entry.
        """
        raise NotImplementedError

    def sample(self, index: int) -> bytes:
        """The ``index``-th distinct message body; 0 is :attr:`sample_body`.

        The default appends `` {index}`` to the text of the last element whose
        text has a letter in it; override it when that does not fit your system.
        """
        if index == 0:
            return self.sample_body
        tree = xml.parse(self.sample_body)
        leaves = [
            e
            for e in tree.iter()
            if isinstance(e.tag, str) and len(e) == 0 and any(c.isalpha() for c in e.text or "")
        ]
        if not leaves:
            raise NotImplementedError(
                "sample_body has no text to vary: override sample(index) to give distinct bodies"
            )
        leaves[-1].text = f"{leaves[-1].text} {index}"
        return xml.serialize(tree)

    def send_sample(self, index: int) -> bytes:
        """The ``index``-th body the suite sends (default: :meth:`sample`).

        Override it when the system takes another shape than it offers: dossiers
        in, results out.
        """
        return self.sample(index)

    def canonical(self, body: bytes) -> Any:
        """What the suite compares of a body: by default its canonical XML (C14N 2.0).

        Override it when the system legitimately changes what it stores (adds an
        id, reorders fields): return what must survive the trip.
        """
        try:
            tree = xml.parse(body)
        except xml.XmlRejected:
            return body
        return etree.canonicalize(tree, strip_text=True, rewrite_prefixes=True)

    def bad_bodies(self) -> Sequence[bytes]:
        """Message bodies the system can never take; ``send`` must reject each one."""
        return ()

    def put_malformed(self, adapter: Adapter) -> None:
        """Make the system offer an item the adapter cannot read (broken JSON, a bad file)."""
        raise NotImplementedError

    def settings_for_address(self, tmp_path: Path, host: str, port: int) -> dict[str, Any]:
        """Settings that point the adapter at ``host:port``, with a timeout of about a second."""
        raise NotImplementedError

    def wrong_credentials(self, tmp_path: Path) -> dict[str, Any]:
        """Settings whose credentials the real system refuses."""
        raise NotImplementedError

    def batch_settings(self, size: int) -> dict[str, Any] | None:
        """Setting overrides that bound one receive to ``size`` items (None: no such option)."""
        name = self.batch_option or next(
            (o.name for o in self.adapter_class.options if o.name in _BATCH_OPTIONS), None
        )
        return {name: size} if name else None

    # --- building adapters ---

    @pytest.fixture(autouse=True)
    def _contract_store(self) -> Iterator[None]:
        yield
        engine = getattr(self, "_engine", None)
        if engine is not None:
            engine.dispose()

    def services(self, tmp_path: Path) -> Services:
        """What the core would hand in: a real cursor store (the bus's schema, with every
        migration a plugin's tables need, on SQLite)."""
        if getattr(self, "_services", None) is None:
            from .store import Cursors as StoreCursors
            from .store import Store, make_engine

            self._engine = make_engine(f"sqlite:///{tmp_path / 'contract-store.db'}")
            Store(self._engine).upgrade()
            self.timeline = Timeline()
            self._seen: dict[tuple[str, str], str] = {}
            self._services = Services(
                engine=self._engine,
                base_dir=tmp_path,
                var_dir=tmp_path / "var",
                cursors=RecordingCursors(StoreCursors(self._engine), self.timeline),
            )
        return self._services

    def make(self, tmp_path: Path, **overrides: Any) -> Adapter:
        """An adapter (not started) from :meth:`settings` and ``overrides``."""
        return self._build(tmp_path, {**self.settings(tmp_path), **overrides})

    def inbox(self, *, fail: int = 0) -> RecordingInbox:
        """An inbox sharing this test's memory of source keys, as the store does."""
        return RecordingInbox(fail=fail, seen=self._seen, timeline=self.timeline)

    def _build(self, tmp_path: Path, raw: Mapping[str, Any]) -> Adapter:
        settings, problems = resolve_options(self.adapter_class, raw, "endpoints.contract")
        if problems:
            raise ConfigError(problems)
        return self.adapter_class("contract", settings, self.services(tmp_path))

    def _implements(self, hook: str) -> bool:
        return getattr(type(self), hook) is not getattr(AdapterContract, hook)

    def _receiver(self, tmp_path: Path, **overrides: Any) -> Adapter:
        adapter = self._build(tmp_path, {**self.receive_settings(tmp_path), **overrides})
        if Capability.RECEIVE not in adapter.capabilities:
            pytest.skip("the adapter does not receive")
        if not self._implements("put"):
            broken(
                "contract-hooks",
                "the adapter receives, but the contract has no put(adapter, body). Hint: "
                "implement it to make the real system offer an item whose message body is body",
            )
        return adapter

    def _sender(self, tmp_path: Path) -> Adapter:
        adapter = self._build(tmp_path, self.send_settings(tmp_path))
        if Capability.SEND not in adapter.capabilities:
            pytest.skip("the adapter does not send")
        if not self._implements("fetch"):
            broken(
                "contract-hooks",
                "the adapter sends, but the contract has no fetch(adapter). Hint: implement it "
                "to read back every effect the real system shows of what was sent",
            )
        return adapter

    @contextlib.contextmanager
    def _running(self, adapter: Adapter) -> Iterator[Adapter]:
        adapter.start()
        try:
            yield adapter
        finally:
            adapter.stop()

    def _receive(self, adapter: Adapter, inbox: RecordingInbox) -> int:
        """One poll, with the order of its accepts and cursor moves checked."""
        self.timeline.add("receive")
        try:
            return adapter.receive(inbox)
        finally:
            self._check_cursor_order()

    def _check_cursor_order(self) -> None:
        events = self.timeline.since("receive")
        accepted = pending = failed = False
        for i, event in enumerate(events):
            if event[0] == "accept":
                pending = True
            elif event[0] == "accepted":
                pending, accepted = False, True
            elif event[0] == "accept failed":
                failed = True
            elif event[0] == "cursor":
                later = any(e[0] == "accept" for e in events[i + 1 :])
                if pending or failed or (later and not accepted):
                    when = "after inbox.accept raised" if failed else "before inbox.accept returned"
                    broken(
                        "ack-after-accept",
                        f"receive() stored cursor {event[1]!r} = {event[2]!r} {when}. A crash "
                        "there loses the items: the store never had them and the cursor is "
                        "already past them. Hint: call services.cursors.set only after "
                        "inbox.accept returned",
                    )

    def _drain(self, adapter: Adapter, inbox: RecordingInbox, rule: str) -> list[Message]:
        """Poll until a poll hands over nothing; what was handed over, in order."""
        start = len(inbox.handed)
        for _ in range(_POLLS):
            before = len(inbox.handed)
            count = self._receive(adapter, inbox)
            handed = len(inbox.handed) - before
            if count != handed:
                broken(
                    "receives-once",
                    f"receive() returned {count} but handed {handed} message(s) to "
                    "inbox.accept. Hint: return how many messages were handed over",
                )
            if count == 0:
                return inbox.handed[start:]
        broken(
            rule,
            f"receive() still handed over messages after {_POLLS} polls; the items put were "
            f"{len(inbox.handed) - start} handed over so far. An item must come once: "
            "acknowledge it at the source, or move the cursor past it, once inbox.accept "
            "returned. Otherwise 'lienthong run --once' never ends",
        )

    def _same_bodies(
        self, rule: str, got: Sequence[bytes], wanted: Sequence[bytes], what: str
    ) -> None:
        left = [self.canonical(b) for b in got]
        missing = []
        for body in wanted:
            key = self.canonical(body)
            if key in left:
                left.remove(key)
            else:
                missing.append(body)
        if missing or left:
            broken(
                rule,
                f"{what}: expected {len(wanted)} bod{'y' if len(wanted) == 1 else 'ies'}, got "
                f"{len(got)}; missing {[_short(b) for b in missing]}, unexpected "
                f"{[_short(b) if isinstance(b, bytes) else b for b in left]}. (Bodies are compared "
                "as canonical() returns them: override it, or put()/fetch(), if the system "
                "stores them differently)",
            )

    def _kind_override(self) -> dict[str, Any]:
        name = self.kind_option or next(
            (o.name for o in self.adapter_class.options if o.name in _KIND_OPTIONS), None
        )
        return {name: _CONTRACT_KIND} if name else {}

    def _check_received(self, adapter: Adapter, messages: Sequence[Message], kind: bool) -> None:
        keys = [m.source_key for m in messages]
        for message in messages:
            if message.source != adapter.endpoint:
                broken(
                    "source",
                    f"a received message has source {message.source!r}, not the endpoint's "
                    f"name {adapter.endpoint!r}. Hint: Message(source=self.endpoint, ...)",
                )
            if not message.source_key:
                broken(
                    "source-key",
                    "a received message has no source_key, so the store cannot recognise it "
                    "when the source offers it again after a crash, and it is delivered twice. "
                    "Hint: set source_key to what identifies the item in its source (its id, "
                    "or name and a digest of its content)",
                )
            if kind and message.kind != _CONTRACT_KIND:
                broken(
                    "kind",
                    f"a received message has kind {message.kind!r}, not the configured "
                    f"{_CONTRACT_KIND!r}: routes match on kind. Hint: "
                    "Message(kind=self.settings[...], ...)",
                )
            if not message.kind:
                broken("kind", "a received message has no kind: routes match on kind")
        if len(set(keys)) != len(keys):
            broken(
                "source-key",
                f"two messages of one receive() share a source key ({keys}): the store would "
                "keep only one of them. Hint: make the key unique per item",
            )

    # --- the suite: declarations and configuration ---

    def test_declares_itself(self) -> None:
        cls = self.adapter_class
        if not (cls.name and cls.name.isidentifier()):
            broken("declares-itself", f"name {cls.name!r} must be a short identifier")
        if not cls.summary:
            broken("declares-itself", "summary: one line saying what system it talks to")
        if not cls.capabilities:
            broken("declares-itself", "declare at least one Capability")
        if not inspect.getdoc(cls):
            broken("declares-itself", "the class needs a docstring")
        for option in cls.options:
            if not option.description:
                broken("declares-itself", f"option {option.name!r} needs a description")
            if not option.required and option.default is not None and not option.secret:
                try:
                    option.check(option.default)
                except ValueError as exc:
                    broken(
                        "declares-itself",
                        f"option {option.name!r}: its default fails its own rules: {exc}",
                    )

    def test_rejects_unknown_option_with_a_suggestion(self, tmp_path: Path) -> None:
        raw = self.settings(tmp_path)
        if not raw:
            pytest.skip("the adapter has no options")
        first = next(iter(raw))
        misspelt = {**{k: v for k, v in raw.items() if k != first}, first + "x": raw[first]}
        _, problems = resolve_options(self.adapter_class, misspelt, "endpoint")
        if not any(f"Did you mean '{first}'" in p.message for p in problems):
            broken(
                "options", f"option {first + 'x'!r} got no \"Did you mean '{first}'\": {problems}"
            )

    def test_rejects_missing_required_options(self) -> None:
        required = [o.name for o in self.adapter_class.options if o.required]
        if not required:
            pytest.skip("the adapter has no required options")
        _, problems = resolve_options(self.adapter_class, {}, "endpoint")
        named = " ".join(p.location for p in problems)
        if not all(name in named for name in required):
            broken("options", f"not every required option is reported when missing: {problems}")

    def test_starts_and_stops(self, tmp_path: Path) -> None:
        adapter = self.make(tmp_path)
        adapter.start()
        adapter.stop()

    def test_stops_without_starting(self, tmp_path: Path) -> None:
        for raw in (self.receive_settings(tmp_path), self.send_settings(tmp_path)):
            adapter = self._build(tmp_path, raw)
            try:
                adapter.stop()
            except Exception as exc:
                broken(
                    "stop-without-start",
                    f"stop() before start() raised {_describe(exc)}. The bus stops every "
                    "endpoint at shutdown, those whose start() failed too. Hint: release only "
                    "what start() opened (check for None)",
                )
            adapter.start()
            adapter.stop()
            try:
                adapter.stop()
            except Exception as exc:
                broken(
                    "stop-without-start",
                    f"a second stop() raised {_describe(exc)}. Hint: forget what stop() "
                    "released, so a second call has nothing to do",
                )

    # --- the suite: receiving ---

    def test_receives_a_message_once(self, tmp_path: Path) -> None:
        override = self._kind_override()
        adapter = self._receiver(tmp_path, **override)
        with self._running(adapter):
            self.put(adapter, self.sample(0))
            inbox = self.inbox()
            handed = self._drain(adapter, inbox, "receives-once")
            self._same_bodies(
                "receives-once", [m.body for m in handed], [self.sample(0)], "the item put"
            )
            self._check_received(adapter, handed, kind=bool(override))

    def test_acks_only_after_the_inbox_accepted(self, tmp_path: Path) -> None:
        adapter = self._receiver(tmp_path)
        bodies = [self.sample(0), self.sample(1)]
        with self._running(adapter):
            for body in bodies:
                self.put(adapter, body)
            failing = self.inbox(fail=1)
            try:
                self._receive(adapter, failing)
            except Exception:
                pass  # as it should: the bus must know that nothing was stored
            else:
                broken(
                    "ack-after-accept",
                    "receive() returned normally although inbox.accept raised "
                    "StoreUnavailable. Hint: let the error propagate (the bus then knows "
                    "nothing was stored) and acknowledge nothing",
                )
            if not failing.handed:
                broken(
                    "ack-after-accept",
                    "receive() raised before it handed anything to inbox.accept, although two "
                    "items were put",
                )
            handed = self._drain(adapter, self.inbox(), "ack-after-accept")
            self._same_bodies(
                "ack-after-accept",
                [m.body for m in handed],
                bodies,
                "after an inbox.accept that failed, the next polls must hand over the same "
                "items again, once each (nothing lost, nothing twice)",
            )

    def test_source_keys_are_stable_across_a_re_read(self, tmp_path: Path) -> None:
        adapter = self._receiver(tmp_path)
        with self._running(adapter):
            for index in range(2):
                self.put(adapter, self.sample(index))
            failing = self.inbox(fail=1)
            with contextlib.suppress(Exception):
                self._receive(adapter, failing)
            handed = self._drain(adapter, self.inbox(), "stable-source-key")
            self._check_received(adapter, handed, kind=False)
            first = {m.source_key for m in failing.handed}
            again = {m.source_key for m in handed}
            if not first <= again:
                broken(
                    "stable-source-key",
                    f"the items came with source keys {sorted(map(str, first))}, then with "
                    f"{sorted(map(str, again))} when read again, so the store cannot tell a "
                    "repeat. Hint: derive the key from the item (its id in the source, a "
                    "digest of its content), never from the time, a counter or a random id",
                )

    def test_cursor_survives_a_new_adapter_instance(self, tmp_path: Path) -> None:
        first = self._receiver(tmp_path)
        with self._running(first):
            self.put(first, self.sample(0))
            self._drain(first, self.inbox(), "receives-once")
        second = self._receiver(tmp_path)
        with self._running(second):
            self.put(second, self.sample(1))
            handed = self._drain(second, self.inbox(), "cursor-in-store")
        old = self.canonical(self.sample(0))
        if any(self.canonical(m.body) == old for m in handed):
            broken(
                "cursor-in-store",
                "a new adapter instance (a restart) handed over again an item the previous "
                "instance had handed over. Hint: keep the position in services.cursors (the "
                "bus's store), not in the adapter object",
            )
        self._same_bodies(
            "cursor-in-store", [m.body for m in handed], [self.sample(1)], "after a restart"
        )

    def test_reads_a_backlog_in_bounded_batches(self, tmp_path: Path) -> None:
        overrides = self.batch_settings(2)
        if overrides is None:
            broken(
                "bounded-batch",
                "the adapter declares no option that bounds one receive (batch, batch_size, "
                "page_size). Hint: declare one and read at most that many items per poll, or "
                "name it in batch_option / batch_settings()",
            )
        adapter = self._receiver(tmp_path, **overrides)
        bodies = [self.sample(i) for i in range(5)]
        with self._running(adapter):
            for body in bodies:
                self.put(adapter, body)
            inbox = self.inbox()
            sizes = []
            for _ in range(_POLLS):
                before = len(inbox.handed)
                if not self._receive(adapter, inbox):
                    break
                sizes.append(len(inbox.handed) - before)
            if max(sizes, default=0) > 2:
                broken(
                    "bounded-batch",
                    f"with {overrides} one receive() handed over {max(sizes)} messages "
                    f"(polls: {sizes}). Hint: read at most the batch per poll, so a backlog "
                    "never has to fit in memory at once",
                )
            self._same_bodies(
                "bounded-batch",
                [m.body for m in inbox.handed],
                bodies,
                "a backlog of five items, over several polls",
            )

    def test_hands_over_a_malformed_item_to_be_parked(self, tmp_path: Path) -> None:
        if not self._implements("put_malformed"):
            pytest.skip(
                "the contract has no put_malformed() to offer an item the adapter cannot read"
            )
        adapter = self._receiver(tmp_path)
        with self._running(adapter):
            self.put_malformed(adapter)
            inbox = self.inbox()
            try:
                self._receive(adapter, inbox)
            except Exception as exc:
                broken(
                    "malformed-item",
                    f"receive() raised {_describe(exc)} on an item it cannot read. Every poll "
                    "would fail on it again and nothing behind it would move. Hint: hand it "
                    "over with headers[INVALID_HEADER] (lienthong.adapter) set to the problem: "
                    "the bus keeps it as a dead letter with that reason",
                )
            if not any(a.parked for a in inbox.acceptances):
                broken(
                    "malformed-item",
                    "the item the adapter cannot read was not handed over to be parked "
                    f"(handed: {len(inbox.handed)}). Hint: never drop it silently: set "
                    "headers[INVALID_HEADER] on its message",
                )
            if self._receive(adapter, inbox):
                broken(
                    "malformed-item",
                    "the parked item came again on the next poll. Hint: acknowledge it at "
                    "the source like any other item",
                )

    # --- the suite: sending ---

    def _message(self, index: int) -> Message:
        return Message(body=self.send_sample(index), kind=self.sample_kind)

    def test_sends_a_message_once(self, tmp_path: Path) -> None:
        adapter = self._sender(tmp_path)
        with self._running(adapter):
            first = self._message(0)
            adapter.send(first, key="contract-key-1")
            adapter.send(first, key="contract-key-1")  # a redelivery: no second effect
            got = list(self.fetch(adapter))
            if len(got) != 1:
                broken(
                    "sends-once",
                    f"after two send() calls with one key the system shows {len(got)} "
                    "effects. The bus sends again with the same key when it cannot know "
                    "whether a send took effect. Hint: give the key to the system as its "
                    "idempotency key (a unique column, the file name, an external reference)",
                )
            self._same_bodies("sends-once", got, [first.body], "what was sent")
            second = self._message(1)
            adapter.send(second, key="contract-key-2")
            self._same_bodies(
                "sends-once",
                list(self.fetch(adapter)),
                [first.body, second.body],
                "two messages sent with two keys are two effects",
            )

    def test_rejects_a_body_the_system_cannot_take(self, tmp_path: Path) -> None:
        bad = list(self.bad_bodies())
        if not bad:
            pytest.skip("bad_bodies() names no body the system refuses")
        adapter = self._sender(tmp_path)
        with self._running(adapter):
            for index, body in enumerate(bad):
                try:
                    adapter.send(Message(body=body, kind=self.sample_kind), key=f"bad-{index}")
                except RejectedError as exc:
                    self._no_secrets("send() of a bad body", exc, self._secrets(tmp_path))
                    continue
                except Exception as exc:
                    broken(
                        "rejected-input",
                        f"send() raised {_describe(exc)} for bad_bodies()[{index}], which the "
                        "system can never take. Hint: raise RejectedError naming the problem: "
                        "the bus dead-letters it at once instead of retrying it for hours",
                    )
                broken(
                    "rejected-input",
                    f"send() returned normally for bad_bodies()[{index}] {_short(body)}",
                )

    # --- the suite: errors ---

    def _secrets(self, tmp_path: Path, *extra: Mapping[str, Any]) -> dict[str, str]:
        """The values of the secret options in every settings the test used: option -> value."""
        found: dict[str, str] = {}
        settings = [self.receive_settings(tmp_path), self.send_settings(tmp_path), *extra]
        for raw in settings:
            for option in self.adapter_class.options:
                if option.secret and raw.get(option.name) is not None:
                    with contextlib.suppress(ValueError):
                        value = resolve_secret(raw[option.name]).reveal()
                        if len(value) >= 4:
                            found[value] = option.name
        return found

    def _no_secrets(
        self, step: str, error: BaseException | str, secrets: Mapping[str, str]
    ) -> None:
        texts = []
        seen: set[int] = set()
        current: BaseException | None = error if isinstance(error, BaseException) else None
        if isinstance(error, str):
            texts.append(error)
        while current is not None and id(current) not in seen:
            seen.add(id(current))
            texts += [str(current), repr(current), *(repr(a) for a in current.args)]
            current = current.__cause__ or current.__context__
        for value, option in secrets.items():
            if any(value in text for text in texts):
                broken(
                    "secrets-stay-secret",
                    f"{step}: the value of the secret option {option!r} shows in "
                    f"{'a log line' if isinstance(error, str) else 'the error or its cause'}. "
                    "Errors and logs end up in dead letters, tickets and screenshots. Hint: "
                    "never format a secret into a message; lienthong.adapter.Secret prints "
                    "as Secret(from ...)",
                )

    def _provoke(
        self, tmp_path: Path, raw: Mapping[str, Any], bodies: Sequence[bytes] = ()
    ) -> list[tuple[str, Adapter, BaseException]]:
        """Start the adapter and use it as the bus would; every error, with the step that raised it.

        It receives once if it can, and sends :meth:`sample` (or each of ``bodies``)
        if it can. Log lines written meanwhile are checked for secrets.
        """
        secrets = self._secrets(tmp_path, raw)
        adapter = self._build(tmp_path, raw)
        errors: list[tuple[str, Adapter, BaseException]] = []
        with _captured_logs() as lines:
            try:
                adapter.start()
            except Exception as exc:
                errors.append(("start()", adapter, exc))
            else:
                if Capability.RECEIVE in adapter.capabilities:
                    try:
                        adapter.receive(self.inbox())
                    except Exception as exc:
                        errors.append(("receive()", adapter, exc))
                if Capability.SEND in adapter.capabilities:
                    for index, body in enumerate(bodies or [self.send_sample(0)]):
                        try:
                            message = Message(body=body, kind=self.sample_kind)
                            adapter.send(message, key=f"contract-provoked-{index}")
                        except Exception as exc:
                            errors.append(("send()", adapter, exc))
            finally:
                adapter.stop()
        for step, _, error in errors:
            self._no_secrets(step, error, secrets)
        for line in lines:
            self._no_secrets("a log line", line, secrets)
        return errors

    def _needs_address(self) -> None:
        if not self._implements("settings_for_address"):
            pytest.skip("the contract has no settings_for_address() (the adapter uses no network)")

    def _address_errors(self, tmp_path: Path, port: int, what: str) -> None:
        raw = self.settings_for_address(tmp_path, "127.0.0.1", port)
        errors = self._provoke(tmp_path, raw)
        if not errors:
            broken(
                "transient-errors",
                f"nothing failed although {what} at 127.0.0.1:{port}. Hint: does "
                "settings_for_address() point the adapter there?",
            )
        for step, adapter, exc in errors:
            transient = isinstance(exc, TransientError) or (
                not isinstance(exc, LienthongError) and adapter.is_transient(exc)
            )
            if not transient:
                broken(
                    "transient-errors",
                    f"when {what}, {step} raised {_describe(exc)}, which the bus does not "
                    "treat as passing. Hint: raise TransientError (or declare the library's "
                    "exception in transient_errors), so the bus retries with back-off and the "
                    "message waits instead of being dead-lettered",
                )

    def test_a_refused_connection_is_transient(self, tmp_path: Path) -> None:
        self._needs_address()
        self._address_errors(tmp_path, closed_port(), "nothing listens")

    def test_a_timeout_is_transient(self, tmp_path: Path) -> None:
        self._needs_address()
        with SilentServer() as server:
            self._address_errors(tmp_path, server.port, "the server accepts and never answers")

    def test_refused_credentials_are_fatal(self, tmp_path: Path) -> None:
        if not self._implements("wrong_credentials"):
            pytest.skip("the contract has no wrong_credentials() (the adapter logs in nowhere)")
        errors = self._provoke(tmp_path, self.wrong_credentials(tmp_path))
        if not errors:
            broken("fatal-credentials", "nothing failed with the settings of wrong_credentials()")
        for step, _, exc in errors:
            if not isinstance(exc, (FatalError, ConfigError)):
                broken(
                    "fatal-credentials",
                    f"with refused credentials {step} raised {_describe(exc)}. Retrying cannot "
                    "help and a human must fix the secret. Hint: raise FatalError (ConfigError "
                    "from start()); as transient the bus would hammer the server, as rejected "
                    "it would dead-letter every message",
                )

    def test_keeps_secrets_out_of_errors(self, tmp_path: Path) -> None:
        if not any(o.secret for o in self.adapter_class.options):
            pytest.skip("the adapter has no secret options")
        checked = 0
        if self._implements("settings_for_address"):
            with SilentServer() as server:
                for port in (closed_port(), server.port):
                    raw = self.settings_for_address(tmp_path, "127.0.0.1", port)
                    checked += len(self._provoke(tmp_path, raw))
        if self._implements("wrong_credentials"):
            checked += len(self._provoke(tmp_path, self.wrong_credentials(tmp_path)))
        if self.bad_bodies():
            checked += len(
                self._provoke(tmp_path, self.send_settings(tmp_path), list(self.bad_bodies()))
            )
        if not checked:
            pytest.skip(
                "no error to look at: implement settings_for_address() or wrong_credentials()"
            )


@contextlib.contextmanager
def _captured_logs() -> Iterator[list[str]]:
    """The lines logged meanwhile at INFO and above, formatted with their tracebacks."""
    lines: list[str] = []
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(formatter.format(record))

    root = logging.getLogger()
    handler = Collect(logging.INFO)
    level = root.level
    root.addHandler(handler)
    if level > logging.INFO:
        root.setLevel(logging.INFO)
    try:
        yield lines
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def _short(body: bytes) -> str:
    text = body.decode("utf-8", "replace")
    return repr(text if len(text) <= 80 else text[:77] + "...")
