"""One disposition for every failure: the table in errors.py's docstring, and the paths using it.

The first test reads the table in ``lienthong.errors`` and checks ``decide``
against each row; the others run a real bus (embedded default) to see that the
send path, both poll paths and the circuit act on what was decided.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
import sqlalchemy as sa

from lienthong import errors
from lienthong.adapter import Adapter, Capability, Inbox
from lienthong.breaker import BreakerState
from lienthong.disposition import Disposition, decide
from lienthong.hookspecs import hookimpl
from lienthong.message import Message
from lienthong.plugins import memory
from lienthong.store import deliveries, utcnow


class Declared(Exception):
    """An exception of an adapter's library that it lists in ``transient_errors``."""


class Declaring:
    """Just the declaration ``decide`` reads, as an adapter states it."""

    transient_errors = (Declared,)
    is_transient = Adapter.is_transient


class Busy(errors.TransientError):
    """A plugin's own transient error: a subclass is sorted as its base."""


#: Examples for the rows of the table, by a word of their first cell.
EXAMPLES: dict[str, list[Callable[[], BaseException]]] = {
    "StoreUnavailable": [lambda: errors.StoreUnavailable("the store is not reachable")],
    "TransientError": [lambda: errors.TransientError("timed out"), lambda: Busy("503")],
    "RejectedError": [lambda: errors.RejectedError("amount must be positive")],
    "FatalError": [lambda: errors.FatalError("password refused")],
    "ConfigError": [lambda: errors.ConfigError(["endpoint 'x': no key file"])],
    "transient_errors": [lambda: Declared("connection reset")],
    "any other": [lambda: KeyError("agency"), lambda: ValueError("bad")],
}


def table() -> list[tuple[str, str]]:
    """The (raised, disposition) rows of the table in lienthong.errors' docstring."""
    rows = []
    for line in (errors.__doc__ or "").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.lstrip().startswith("|") and len(cells) == 2 and not cells[0].startswith("-"):
            rows.append((cells[0], cells[1]))
    assert rows and rows[0] == ("raised", "disposition"), "the table's header moved"
    return rows[1:]


def test_decide_follows_the_table_in_the_errors_docstring() -> None:
    rows = table()
    assert {Disposition(d) for _, d in rows} == set(Disposition), "every disposition has a row"
    for raised, disposition in rows:
        key = next((k for k in EXAMPLES if re.search(rf"\b{k}\b", raised)), None)
        assert key is not None, f"no example for the row {raised!r}: add one to EXAMPLES"
        for example in EXAMPLES[key]:
            error = example()
            assert decide(error, Declaring()) == disposition, (raised, error)


def test_an_undeclared_error_is_retried_slowly_a_declared_one_with_back_off() -> None:
    # Sorted apart only by the adapter's declaration.
    class Plain:
        transient_errors = ()
        is_transient = Adapter.is_transient

    assert decide(Declared("reset"), Declaring()) is Disposition.RETRY
    assert decide(Declared("reset"), Plain()) is Disposition.RETRY_SLOW


# --- the paths, on a real bus ---


class Failing(Adapter):
    """Sends and polls raise ``Failing.error``; counts the calls that reached it."""

    name = "failing"
    summary = "test adapter"
    capabilities = frozenset({Capability.SEND, Capability.RECEIVE})
    transient_errors = (Declared,)
    error: BaseException = KeyError("agency 'H99'")
    calls = 0

    def send(self, message: Message, *, key: str) -> None:
        Failing.calls += 1
        raise Failing.error

    def receive(self, inbox: Inbox) -> int:
        Failing.calls += 1
        raise Failing.error


class FailingPlugin:
    @hookimpl
    def lienthong_register_adapters(self, register):  # type: ignore[no-untyped-def]
        register(Failing)


@pytest.fixture
def failing(lienthong_host):  # type: ignore[no-untyped-def]
    lienthong_host.add(FailingPlugin(), "failing")
    lienthong_host.refresh()
    Failing.calls = 0
    yield Failing
    Failing.error = KeyError("agency 'H99'")


def sending_bus(lienthong_bus, breaker_failures: int = 5, initial_delay: float = 0.01):  # type: ignore[no-untyped-def]
    return lienthong_bus(
        endpoints={"in": {"adapter": "memory"}, "out": {"adapter": "failing"}},
        routes=[{"name": "r", "from": "in", "to": "out"}],
        jobs={"poll-out": {"poll": "out", "interval": 3600}},  # keeps the loop from polling it
        bus={
            "retry": {
                "initial_delay": initial_delay,
                "max_delay": 600,
                "jitter": 0,
                "max_attempts": 5,
            },
            "breaker_failures": breaker_failures,
        },
    )


def next_attempt_in(bus) -> timedelta:  # type: ignore[no-untyped-def]
    with bus.store.engine.connect() as conn:
        at = conn.execute(sa.select(deliveries.c.next_attempt_at)).scalar_one()
    return at - utcnow()


@pytest.mark.parametrize(
    ("error", "slow"),
    [(KeyError("agency 'H99'"), True), (Declared("reset"), False)],
    ids=["undeclared", "declared"],
)
def test_a_failed_send_waits_as_decided_and_counts_against_the_circuit(
    lienthong_bus, failing, caplog, error: BaseException, slow: bool
) -> None:
    failing.error = error
    # A back-off longer than a cycle on a loaded machine: the retry is not due within
    # the run (were it due, the open circuit would defer it by breaker_reset_seconds).
    bus = sending_bus(lienthong_bus, breaker_failures=1, initial_delay=5)
    memory.feed("in", [Message(body=b"<a/>")])
    assert bus.run(once=True).retried == 1
    wait = next_attempt_in(bus).total_seconds()
    if slow:
        assert 590 < wait <= 600, "retried after retry.max_delay"
        assert "endpoint out: KeyError: \"agency 'H99'\"" in caplog.text
        assert any(r.levelname == "ERROR" and r.exc_info for r in caplog.records)
    else:
        assert wait <= 5, "retried with back-off"
    assert bus.breakers["out"].state is BreakerState.OPEN


def test_a_scheduled_poll_goes_through_the_circuit_as_the_loop_s_polls_do(
    lienthong_bus, failing
) -> None:
    bus = sending_bus(lienthong_bus, breaker_failures=2)
    for _ in range(2):
        with pytest.raises(KeyError):
            bus.poll_endpoint("out")
    assert failing.calls == 2 and bus.breakers["out"].state is BreakerState.OPEN
    with pytest.raises(errors.TransientError, match="endpoint 'out' not polled: circuit open"):
        bus.poll_endpoint("out")
    assert failing.calls == 2, "an open circuit is not called"


def test_a_declared_error_interrupts_a_scheduled_poll(lienthong_bus, failing) -> None:
    failing.error = Declared("connection reset")
    bus = sending_bus(lienthong_bus)
    with pytest.raises(errors.TransientError, match="could not be polled: Declared") as caught:
        bus.poll_endpoint("out")
    assert isinstance(caught.value.__cause__, Declared)


def test_the_poll_round_counts_an_undeclared_error_against_the_circuit(
    lienthong_bus, failing
) -> None:
    bus = lienthong_bus(
        endpoints={"src": {"adapter": "failing"}, "out": {"adapter": "memory"}},
        routes=[{"name": "r", "from": "src", "to": "out"}],
        bus={"breaker_failures": 1},
    )
    assert bus.poll() == 0
    assert failing.calls == 1 and bus.breakers["src"].state is BreakerState.OPEN
    assert bus.poll() == 0 and failing.calls == 1


def test_a_rejected_poll_ends_a_half_open_trial(lienthong_bus, failing) -> None:
    bus = lienthong_bus(
        endpoints={"src": {"adapter": "failing"}, "out": {"adapter": "memory"}},
        routes=[{"name": "r", "from": "src", "to": "out"}],
        bus={"breaker_failures": 1, "breaker_reset_seconds": 0.001},
    )
    failing.error = errors.RejectedError("the source answered with nonsense")
    bus.breakers["src"].record(ok=False)
    time.sleep(0.01)
    assert bus.breakers["src"].state is BreakerState.HALF_OPEN
    for _ in range(3):  # the first poll is the trial: it answered, so the next ones go too
        bus.poll()
    assert failing.calls == 3 and bus.breakers["src"].state is BreakerState.CLOSED
