"""The contract suite's rules and the base its checks share: the hooks an author writes,
and how the suite builds, runs and compares.

The checks themselves are mixins by area (``contract_lifecycle``,
``contract_source``, ``contract_target``, ``contract_hostile``), combined in
:class:`lienthong.contract.AdapterContract`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, NoReturn

import pytest
from lxml import etree

from . import xml
from .adapter import Adapter, Capability, Services, resolve_options, resolve_secret
from .contract_parts import RecordingCursors, RecordingInbox, Timeline
from .errors import ConfigError

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

_BATCH_OPTIONS = ("batch", "batch_size", "page_size")


def broken(rule: str, text: str) -> NoReturn:
    """Fail the current test for breaking ``rule`` (a key of :data:`RULES`)."""
    pytest.fail(f"[{rule}] {text}", pytrace=False)


def describe(exc: BaseException) -> str:
    """An exception as the suite shows it: its full class name and its text."""
    return f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}"


class ContractBase:
    """The hooks an author writes (see :class:`~lienthong.contract.AdapterContract`), and the
    helpers every area of the suite uses."""

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
        return getattr(type(self), hook) is not getattr(ContractBase, hook)

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
                f"{len(got)}; missing {[shorten(b) for b in missing]}, unexpected "
                f"{[shorten(b) if isinstance(b, bytes) else b for b in left]}. "
                "(Bodies are compared "
                "as canonical() returns them: override it, or put()/fetch(), if the system "
                "stores them differently)",
            )

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


def shorten(body: bytes) -> str:
    """A body shortened for a failure message."""
    text = body.decode("utf-8", "replace")
    return repr(text if len(text) <= 80 else text[:77] + "...")
