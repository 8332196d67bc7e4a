"""Errors, grouped by what the bus does next.

- ``ConfigError``: refuse to start; every problem is reported at once.
- ``TransientError``: retry with back-off; the message stays queued.
- ``RejectedError``: dead-letter the message with its reason and keep going.
- ``FatalError``: a human must fix the endpoint: retried only slowly, and
  counted against its circuit, which stops calls to it after a few in a row.

When an adapter's call (send, poll, sync) fails, one function,
:func:`lienthong.disposition.decide`, says what comes next, by the first row
that matches (tests/core/test_disposition.py reads this table):

| raised                                            | disposition |
|---------------------------------------------------|-------------|
| ``StoreUnavailable`` (the bus's own store)        | hold        |
| ``TransientError``                                | retry       |
| ``RejectedError``                                 | park        |
| ``FatalError``                                    | retry-slow  |
| ``ConfigError`` (raised after the start)          | retry-slow  |
| a class in the adapter's ``transient_errors``     | retry       |
| any other exception (undeclared: a surprise)      | retry-slow  |

retry: back-off (exponential, jittered, no sooner than ``retry_after``);
retry-slow: after ``retry.max_delay``, logged as an error; park: dead-letter
this message (a sync: fail this item), the endpoint answered; hold: no endpoint
is blamed, the work waits for the store. What each means for a send, a poll and
a sync: :mod:`lienthong.disposition`.

Messages name the thing, show the bad value and give the fix.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class LienthongError(Exception):
    """Root of every error the bus raises on purpose."""


@dataclass(frozen=True)
class ConfigProblem:
    """One problem in a configuration file, with where it is."""

    location: str
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


class ConfigError(LienthongError):
    """The configuration is wrong: the bus refuses to start until it is fixed."""

    def __init__(self, problems: Iterable[ConfigProblem | str]) -> None:
        self.problems = [
            p if isinstance(p, ConfigProblem) else ConfigProblem("config", p) for p in problems
        ]
        count = len(self.problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"{count} configuration problem{'s' if count != 1 else ''}:\n{lines}")


class TransientError(LienthongError):
    """A passing failure (network, timeout, server busy): the bus retries with back-off.

    ``retry_after`` (seconds) is how long the system asked us to wait (HTTP
    ``Retry-After``): the bus retries no sooner than that. ``endpoint_up``: the
    system answered, only this message must wait (a step that came before its
    dossier), so the endpoint's circuit breaker does not count it as a failure.
    """

    def __init__(
        self, *args: object, retry_after: float | None = None, endpoint_up: bool = False
    ) -> None:
        super().__init__(*args)
        self.retry_after = retry_after
        self.endpoint_up = endpoint_up


class StoreUnavailable(TransientError):
    """The bus's own store cannot be reached or written: no endpoint is to blame."""


class RejectedError(LienthongError):
    """This input can never succeed as it is: the bus dead-letters it with the reason."""


class FatalError(LienthongError):
    """Something a human must fix in the endpoint: until then it is retried only slowly."""
