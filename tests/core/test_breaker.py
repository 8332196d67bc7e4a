"""The circuit breaker's states, driven by a hand-held clock."""

from __future__ import annotations

import pytest

from lienthong.breaker import BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_stays_closed_below_threshold(clock: Clock) -> None:
    breaker = CircuitBreaker(failure_threshold=3, reset_after_s=30, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow()
    assert breaker.describe() == "closed, 2 recent failure(s)"


def test_success_resets_the_count(clock: Clock) -> None:
    breaker = CircuitBreaker(failure_threshold=3, reset_after_s=30, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.describe() == "closed, 2 recent failure(s)"


def test_opens_at_threshold_and_refuses(clock: Clock) -> None:
    breaker = CircuitBreaker(failure_threshold=3, reset_after_s=30, clock=clock)
    for _ in range(3):
        breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert breaker.opened_at == 1000.0
    assert not breaker.allow()
    clock.now += 10
    assert not breaker.allow()
    assert breaker.retry_in() == 20
    assert breaker.describe() == "open after 3 failures: next try in 20 s"


def test_half_open_lets_one_trial_through(clock: Clock) -> None:
    breaker = CircuitBreaker(failure_threshold=1, reset_after_s=30, clock=clock)
    breaker.record_failure()
    clock.now += 30
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.describe().startswith("half-open")
    assert breaker.allow()
    assert not breaker.allow(), "a second caller must wait for the trial's outcome"


def test_trial_success_closes(clock: Clock) -> None:
    breaker = CircuitBreaker(failure_threshold=1, reset_after_s=30, clock=clock)
    breaker.record_failure()
    clock.now += 31
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.opened_at is None
    assert breaker.allow() and breaker.allow()
    assert breaker.describe() == "closed"


def test_trial_failure_reopens_for_a_full_period(clock: Clock) -> None:
    breaker = CircuitBreaker(failure_threshold=2, reset_after_s=30, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    clock.now += 40
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert breaker.opened_at == 1040.0
    clock.now += 29
    assert not breaker.allow()
    clock.now += 1
    assert breaker.allow()


def test_zero_reset_goes_straight_to_half_open(clock: Clock) -> None:
    breaker = CircuitBreaker(failure_threshold=1, reset_after_s=0, clock=clock)
    breaker.record_failure()
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.retry_in() == 0


@pytest.mark.parametrize(("threshold", "reset"), [(0, 10), (3, -1)])
def test_bad_settings_are_refused(threshold: int, reset: float) -> None:
    with pytest.raises(ValueError, match="must"):
        CircuitBreaker(failure_threshold=threshold, reset_after_s=reset)


def test_a_trial_that_did_not_happen_lets_the_next_caller_try() -> None:
    now = [0.0]
    breaker = CircuitBreaker(failure_threshold=1, reset_after_s=10, clock=lambda: now[0])
    breaker.record_failure()
    now[0] = 11.0
    assert breaker.allow() and not breaker.allow(), "one trial in half-open"
    breaker.cancel_trial()  # e.g. the bus's own store failed before the endpoint was called
    assert breaker.allow(), "the trial is free again"
