"""The tester plugin's fixtures: a bus run with a broken adapter fails its test, it does not hang.

The tests run a small test module in a separate pytest, as an adapter author's
project would, and read its outcome.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

BROKEN_BUS_TEST = '''
import threading
import sys

from lienthong.adapter import Adapter, Capability
from lienthong.hookspecs import hookimpl
from lienthong.message import Message


class Looping(Adapter):
    """Hands over its item again on every poll, without a source key: the bus cannot
    tell a repeat from a new message. (With a source key, repeats end a run.)"""

    name = "looping"
    summary = "A broken adapter."
    capabilities = frozenset({Capability.RECEIVE})

    def receive(self, inbox):
        inbox.accept([Message(body=b"<a/>", source=self.endpoint)])
        return 1


class Hanging(Looping):
    """Never returns from a poll."""

    name = "hanging"

    def receive(self, inbox):
        threading.Event().wait()


@hookimpl
def lienthong_register_adapters(register):
    register(Looping)
    register(Hanging)


def bus_with(lienthong_bus, lienthong_host, adapter):
    lienthong_host.add(sys.modules[__name__], "broken")
    lienthong_host.refresh()
    return lienthong_bus(endpoints={"source": {"adapter": adapter}}, time_limit=1)


def test_looping(lienthong_bus, lienthong_host):
    bus_with(lienthong_bus, lienthong_host, "looping").run(once=True)


def test_hanging(lienthong_bus, lienthong_host):
    bus_with(lienthong_bus, lienthong_host, "hanging").run(once=True)


def test_well_within_the_limit(lienthong_bus):
    assert lienthong_bus().run(once=True).idle
'''


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> str:
    tmp_path = tmp_path_factory.mktemp("broken-bus")
    (tmp_path / "test_broken_bus.py").write_text(textwrap.dedent(BROKEN_BUS_TEST))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", "-p", "no:randomly"]
        + ["test_broken_bus.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result.stdout + result.stderr


def test_a_run_that_never_ends_fails_its_test_with_the_reason(outcome: str) -> None:
    assert "FAILED test_broken_bus.py::test_looping" in outcome
    assert "lienthong_bus: bus.run(once=True) was still running after 1 s" in outcome
    assert "hands over new items on every poll" in outcome


def test_a_poll_that_never_returns_is_interrupted(outcome: str) -> None:
    assert "FAILED test_broken_bus.py::test_hanging" in outcome
    assert "PASSED test_broken_bus.py::test_well_within_the_limit" in outcome
    assert "2 failed, 1 passed" in outcome
