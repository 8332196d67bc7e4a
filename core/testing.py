"""The tester for adapter authors: pytest fixtures and a contract suite, shipped with lienthong.

Installed as a pytest plugin (entry point ``pytest11``), so any project that
installs lienthong gets:

- ``lienthong_bus``: a factory for a bus on the embedded default (SQLite in a
  temporary folder, no broker), built from a config dict and closed afterwards;
- ``lienthong_host``: a plugin host to which ``lienthong_host.add(plugin, name)``
  registers a plugin for one test only;
- :class:`AdapterContract` (from :mod:`lienthong.contract`): subclass it in a
  test module, name your adapter class and say how to reach the real system it
  talks to; the suite checks the rules in ``RULES`` against that system, each
  failure naming its rule.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

# The contract suite, where adapter authors import it from (see lienthong.contract).
from .contract import RULES, AdapterContract, RecordingInbox, broken
from .host import PluginHost

__all__ = [
    "EMBEDDED_BUS",
    "RULES",
    "AdapterContract",
    "RecordingInbox",
    "broken",
    "lienthong_bus",
    "lienthong_host",
]

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
