"""The tester for adapter authors: pytest fixtures and a contract suite, shipped with lienthong.

Installed as a pytest plugin (entry point ``pytest11``), so any project that
installs lienthong gets:

- ``lienthong_bus``: a factory for a bus on the embedded default (SQLite in a
  temporary folder, no broker), built from a config dict and closed afterwards;
- ``lienthong_host``: a plugin host to which ``lienthong_host.add(plugin, name)``
  registers a plugin for one test only;
- :class:`AdapterContract`: subclass it in a test module, name your adapter class
  and settings, and the suite checks that the adapter declares itself properly,
  rejects bad config clearly, starts and stops, and round-trips a message
  through the real system it talks to.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

from .adapter import Acceptance, Adapter, Capability, Services, resolve_options
from .errors import ConfigError
from .host import PluginHost
from .message import Message

EMBEDDED_BUS: dict[str, Any] = {
    "bus": {
        "store": "sqlite:///var/bus.db",
        "broker": "embedded",
        "var_dir": "var",
        "poll_interval": 0.05,
        "retry": {"initial_delay": 0.05, "max_delay": 0.2},
    },
    "endpoints": {},
    "routes": [],
}


@pytest.fixture
def lienthong_host() -> Iterator[PluginHost]:
    """A fresh plugin host; plugins added with ``add(plugin, name)`` vanish after the test."""
    yield PluginHost()


@pytest.fixture
def lienthong_bus(tmp_path: Path, lienthong_host: PluginHost) -> Iterator[Callable[..., Any]]:
    """Build embedded-default buses: ``lienthong_bus(endpoints=..., routes=..., bus=...)``."""
    from . import config
    from .bus import Bus

    buses: list[Bus] = []

    def build(
        *,
        endpoints: Mapping[str, Any] | None = None,
        routes: Sequence[Mapping[str, Any]] | None = None,
        bus: Mapping[str, Any] | None = None,
        mappings: Path | None = None,
        jobs: Mapping[str, Any] | None = None,
    ) -> Bus:
        data = copy.deepcopy(EMBEDDED_BUS)
        data["bus"].update(bus or {})
        if mappings is not None:
            data["bus"]["mappings"] = str(mappings)
        data["endpoints"] = dict(endpoints or {})
        data["routes"] = list(routes or [])
        if jobs:
            data["jobs"] = dict(jobs)
        cfg = config.from_dict(data, base_dir=tmp_path, host=lienthong_host)
        instance = Bus(cfg, lienthong_host, worker="test")
        instance.start()
        buses.append(instance)
        return instance

    yield build
    for instance in buses:
        instance.close()


class RecordingInbox:
    """A real :class:`lienthong.adapter.Inbox` that keeps what it is handed, for adapter tests."""

    def __init__(self, park: Callable[[Message], str | None] | None = None) -> None:
        self.messages: list[Message] = []
        self.park = park

    def accept(self, messages: Sequence[Message]) -> list[Acceptance]:
        self.messages.extend(messages)
        return [Acceptance(m.id, self.park(m) if self.park else None) for m in messages]


class AdapterContract:
    """The contract suite every adapter must pass. Subclass it as ``TestMyAdapterContract``.

    Set ``adapter_class`` and implement :meth:`settings`; for the round trip,
    implement :meth:`put` (make the real system offer a message) if the adapter
    receives, and :meth:`fetch` (read what the real system got) if it sends.
    """

    adapter_class: ClassVar[type[Adapter]]
    sample_body: ClassVar[bytes] = (
        "<?xml version='1.0' encoding='UTF-8'?><test><name>Liên thông</name></test>"
    ).encode()

    def settings(self, tmp_path: Path) -> dict[str, Any]:
        """Valid settings for an endpoint that talks to a real local system."""
        raise NotImplementedError

    def put(self, adapter: Adapter, body: bytes) -> None:
        """Make the system offer ``body`` to ``adapter.receive``."""
        raise NotImplementedError

    def fetch(self, adapter: Adapter, key: str) -> bytes:
        """What the system received for the delivery with ``key``."""
        raise NotImplementedError

    def make(self, tmp_path: Path, **overrides: Any) -> Adapter:
        raw = {**self.settings(tmp_path), **overrides}
        settings, problems = resolve_options(self.adapter_class, raw, "endpoint")
        if problems:
            raise ConfigError(problems)
        return self.adapter_class(
            "contract", settings, Services(base_dir=tmp_path, var_dir=tmp_path / "var")
        )

    # --- the suite ---

    def test_declares_itself(self) -> None:
        cls = self.adapter_class
        assert cls.name and cls.name.isidentifier(), "name must be a short identifier"
        assert cls.summary, "summary: one line saying what system it talks to"
        assert cls.capabilities, "declare at least one Capability"
        assert (cls.__doc__ or "").strip(), "the class needs a docstring"
        for option in cls.options:
            assert option.description, f"option {option.name!r} needs a description"

    def test_rejects_unknown_option_with_a_suggestion(self, tmp_path: Path) -> None:
        raw = self.settings(tmp_path)
        if not raw:
            pytest.skip("the adapter has no options")
        first = next(iter(raw))
        misspelt = {**{k: v for k, v in raw.items() if k != first}, first + "x": raw[first]}
        _, problems = resolve_options(self.adapter_class, misspelt, "endpoint")
        assert any(f"Did you mean '{first}'" in p.message for p in problems), problems

    def test_rejects_missing_required_options(self) -> None:
        required = [o.name for o in self.adapter_class.options if o.required]
        if not required:
            pytest.skip("the adapter has no required options")
        _, problems = resolve_options(self.adapter_class, {}, "endpoint")
        named = " ".join(p.location for p in problems)
        assert all(name in named for name in required), problems

    def test_starts_and_stops(self, tmp_path: Path) -> None:
        adapter = self.make(tmp_path)
        adapter.start()
        adapter.stop()

    def _implements(self, hook: str) -> bool:
        return getattr(type(self), hook) is not getattr(AdapterContract, hook)

    def test_receives_a_message_once(self, tmp_path: Path) -> None:
        if Capability.RECEIVE not in self.adapter_class.capabilities or not self._implements("put"):
            pytest.skip("the adapter does not receive, or the contract has no put()")
        adapter = self.make(tmp_path)
        adapter.start()
        try:
            self.put(adapter, self.sample_body)
            inbox = RecordingInbox()
            assert adapter.receive(inbox) >= 1
            assert [m.body for m in inbox.messages] == [self.sample_body]
            assert all(m.source == "contract" for m in inbox.messages), "source = endpoint name"
            assert adapter.receive(inbox) == 0, "an acknowledged message must not come twice"
        finally:
            adapter.stop()

    def test_sends_a_message_once(self, tmp_path: Path) -> None:
        if Capability.SEND not in self.adapter_class.capabilities or not self._implements("fetch"):
            pytest.skip("the adapter does not send, or the contract has no fetch()")
        adapter = self.make(tmp_path)
        adapter.start()
        try:
            message = Message(body=self.sample_body, kind="test")
            adapter.send(message, key="contract-key-1")
            adapter.send(message, key="contract-key-1")  # a redelivery: no second effect
            assert self.fetch(adapter, "contract-key-1") == self.sample_body
        finally:
            adapter.stop()
