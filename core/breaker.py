"""A circuit breaker: stop calling an endpoint that keeps failing, and try it again later.

Pure logic over an injected clock, so the delivery worker owns one per endpoint
and tests drive time by hand. After ``failure_threshold`` failures in a row the
breaker opens and :meth:`CircuitBreaker.allow` says no; once ``reset_after_s``
have passed it lets one trial call through (half-open): a success closes it, a
failure opens it again for another ``reset_after_s``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class CircuitBreaker:
    """Counts consecutive failures of one endpoint and decides whether to call it now."""

    def __init__(
        self,
        failure_threshold: int = 5,
        reset_after_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be 1 or more, got {failure_threshold}")
        if reset_after_s < 0:
            raise ValueError(f"reset_after_s must not be negative, got {reset_after_s}")
        self.failure_threshold = failure_threshold
        self.reset_after_s = reset_after_s
        self.clock = clock
        self.failures = 0
        self.opened_at: float | None = None
        self.note = ""  # why it was opened by hand (trip), shown by describe()
        self._open_for: float | None = None  # a trip's own wait, instead of reset_after_s
        self._trial_out = False
        self._lock = threading.Lock()

    @property
    def state(self) -> BreakerState:
        """Closed (calls go through), open (calls refused) or half-open (one trial allowed)."""
        with self._lock:
            return self._state()

    def _state(self) -> BreakerState:
        if self.opened_at is None:
            return BreakerState.CLOSED
        if self.clock() - self.opened_at >= self._wait():
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def _wait(self) -> float:
        return self.reset_after_s if self._open_for is None else self._open_for

    def allow(self) -> bool:
        """Whether to call the endpoint now; in half-open, only one caller gets a yes."""
        with self._lock:
            state = self._state()
            if state is BreakerState.CLOSED:
                return True
            if state is BreakerState.HALF_OPEN and not self._trial_out:
                self._trial_out = True
                return True
            return False

    def cancel_trial(self) -> None:
        """The call allowed in half-open did not happen after all: let another caller try."""
        with self._lock:
            self._trial_out = False

    def record_success(self) -> None:
        """A call succeeded: close the breaker and forget past failures."""
        self.record(ok=True)

    def record_failure(self) -> None:
        """A call failed: open at the threshold, or re-open after a failed trial."""
        self.record(ok=False)

    def record(self, *, ok: bool) -> tuple[BreakerState, BreakerState]:
        """Record a call's outcome; returns the state before and after, taken together.

        Together, so that of several threads recording at once exactly one sees
        a given change (and logs it).
        """
        with self._lock:
            before = self._state()
            self._open_for = None
            if ok:
                self.failures = 0
                self.opened_at = None
                self.note = ""
            else:
                self.failures += 1
                if self.opened_at is not None or self.failures >= self.failure_threshold:
                    self.opened_at = self.clock()
            self._trial_out = False
            return before, self._state()

    def trip(self, note: str, retry_in: float) -> tuple[BreakerState, BreakerState]:
        """Open now for ``retry_in`` seconds, whatever the count (an endpoint that did not
        even start); ``note`` says why."""
        with self._lock:
            before = self._state()
            self.failures = max(self.failures + 1, self.failure_threshold)
            self.opened_at = self.clock()
            self._open_for = retry_in
            self.note = note
            self._trial_out = False
            return before, self._state()

    def retry_in(self) -> float:
        """Seconds until a trial call is allowed (0 when calls may go now)."""
        with self._lock:
            if self.opened_at is None:
                return 0.0
            return max(0.0, self.opened_at + self._wait() - self.clock())

    def describe(self) -> str:
        """One line for ``lienthong status``."""
        with self._lock:
            state = self._state()
            if state is BreakerState.CLOSED:
                suffix = f", {self.failures} recent failure(s)" if self.failures else ""
                return f"closed{suffix}"
            why = self.note or f"after {self.failures} failures"
            if state is BreakerState.HALF_OPEN:
                return f"half-open {why}: trying one call"
            assert self.opened_at is not None
            wait = self.opened_at + self._wait() - self.clock()
            return f"open {why}: next try in {wait:.0f} s"
