"""The tester for adapter authors: pytest fixtures and a contract suite, shipped with lienthong.

Installed as a pytest plugin (entry point ``pytest11``), so any project that
installs lienthong gets:

- ``lienthong_bus``: a factory for a bus on the embedded default (SQLite in a
  temporary folder, no broker), built from a config dict and closed afterwards;
  each ``run`` has a time limit, so a broken adapter fails its test instead of
  hanging the run;
- ``lienthong_host``: a plugin host to which ``lienthong_host.add(plugin, name)``
  registers a plugin for one test only;
- :class:`AdapterContract` (from :mod:`lienthong.contract`): subclass it in a
  test module, name your adapter class and say how to reach the real system it
  talks to; the suite checks the rules in ``RULES`` against that system, each
  failure naming its rule.
"""

from __future__ import annotations

import contextlib
import copy
import signal
import threading
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

#: Seconds a ``lienthong_bus`` run may take (ini option ``lienthong_time_limit``).
TIME_LIMIT = 60.0
#: After the limit the bus is asked to stop; a run still stuck this much later is interrupted.
_GRACE = 5.0


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "lienthong_time_limit",
        "seconds a lienthong_bus run may take before its test fails",
        default=str(TIME_LIMIT),
    )


@pytest.fixture
def lienthong_host() -> Iterator[PluginHost]:
    """A fresh plugin host; plugins added with ``add(plugin, name)`` vanish after the test."""
    yield PluginHost()


@pytest.fixture
def lienthong_bus(
    tmp_path: Path, lienthong_host: PluginHost, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Any]]:
    """Build embedded-default buses: ``lienthong_bus(endpoints=..., routes=..., bus=...)``.

    ``bus.run()`` fails the test when it takes longer than ``time_limit`` seconds
    (default: the ini option ``lienthong_time_limit``, else 60).
    """
    from . import config
    from .bus import Bus

    buses: list[Bus] = []
    overrun: list[str] = []
    default_limit = float(request.config.getini("lienthong_time_limit") or TIME_LIMIT)

    def build(
        *,
        endpoints: Mapping[str, Any] | None = None,
        routes: Sequence[Mapping[str, Any]] | None = None,
        bus: Mapping[str, Any] | None = None,
        mappings: Path | None = None,
        jobs: Mapping[str, Any] | None = None,
        time_limit: float | None = None,
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
        _limit_runs(instance, default_limit if time_limit is None else time_limit, overrun)
        return instance

    yield build
    for instance in buses:
        instance.close()
    if overrun:
        pytest.fail(overrun[0], pytrace=False)


def _limit_runs(bus: Any, limit: float, overrun: list[str]) -> None:
    """Wrap ``bus.run`` so that a run past ``limit`` seconds is stopped and fails the test."""
    run = bus.run

    def run_within_limit(*args: Any, **kwargs: Any) -> Any:
        shown = ", ".join([*map(repr, args), *(f"{k}={v!r}" for k, v in kwargs.items())])
        text = (
            f"lienthong_bus: bus.run({shown}) was still running after {limit:g} s, so the "
            "test was stopped. A receive() that hands over new items on every poll (no "
            "source key, or one that changes, so the bus cannot tell a repeat) keeps a run "
            "busy forever; so does a receive() or send() that never returns. Hint: run the "
            "adapter through lienthong.testing.AdapterContract; if the test really needs "
            "longer, pass lienthong_bus(time_limit=...) or set the ini option "
            "lienthong_time_limit"
        )
        stopped = threading.Event()

        def stop() -> None:
            stopped.set()
            bus.stop()

        timer = threading.Timer(limit, stop)
        timer.daemon = True
        timer.start()
        try:
            with _interrupt_after(limit + min(_GRACE, limit), text):
                result = run(*args, **kwargs)
        finally:
            timer.cancel()
        if stopped.is_set():
            if threading.current_thread() is not threading.main_thread():
                overrun.append(text)  # raised here, it would not reach the test: teardown fails
            pytest.fail(text, pytrace=False)
        return result

    bus.run = run_within_limit


@contextlib.contextmanager
def _interrupt_after(seconds: float, text: str) -> Iterator[None]:
    """Interrupt the main thread after ``seconds``: a run stuck where ``stop()`` cannot reach."""
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise pytest.fail.Exception(text, pytrace=False)

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
