"""What happens when a call into an adapter fails: one decision for send, poll and sync.

:func:`decide` sorts any exception an adapter raised into a :class:`Disposition`;
the table in :mod:`lienthong.errors` is its specification (and its test reads
that table). The three paths then act on the disposition as follows.

**A send fails** (``DispatchStage.send`` in lienthong.dispatch, then :func:`failed_send` here):

- ``retry``: a passing failure. The delivery waits :func:`retry_delay` (exponential,
  capped at ``retry.max_delay``, jittered), and no less than the ``retry_after`` the
  system asked for; a failure on the endpoint's circuit unless the error says the
  endpoint is up (``endpoint_up``: only this message must wait).
- ``retry-slow``: a person must look — the endpoint is wrong (``FatalError``,
  ``ConfigError``: a refused password, a missing key), or the adapter raised an
  error it did not declare (logged with its traceback, so the author can declare or
  sort it). The delivery waits ``retry.max_delay``; a failure on the circuit.
- ``park``: this input never succeeds as it is. Dead-lettered at once (stage
  ``deliver``), replayable; the endpoint answered, so a success on its circuit.
- ``hold``: the bus's own store failed, no endpoint is to blame: the circuit is
  left as it was, the delivery waits as for ``retry``.

Both retries count as attempts: the one that reaches ``retry.max_attempts`` is
dead-lettered instead ("gave up after N attempts"). After ``bus.breaker_failures``
failures in a row the endpoint's circuit opens: the endpoint is stopped, and its
deliveries are deferred (not attempts) until, ``bus.breaker_reset_seconds`` later,
one trial call succeeds. A delivery whose endpoint has not started, is busy in
another thread, or has its circuit open is deferred the same way, before any call.

**A poll fails** (the worker loop's poll round, and a job's scheduled poll go
through ``IntakeStage.poll_one`` in lienthong.intake): the circuit is told as for
a send, and the next poll tries again unless the circuit is open. A scheduled poll
also records the error in its job run: ``interrupted`` for ``retry`` and ``hold``,
``error`` otherwise.

**A sync fails** (``lienthong.sync.run``): ``retry`` and ``hold`` end the run
``interrupted`` (nothing more is applied, the cursor stays; the next tick runs it
again); ``park`` from ``sync_apply`` fails that item and the run goes on;
anything else ends the run ``error`` and is raised to the job's record.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from .errors import (
    ConfigError,
    FatalError,
    LienthongError,
    RejectedError,
    StoreUnavailable,
    TransientError,
)
from .model import Delivery, Outcome, Result

if TYPE_CHECKING:  # lienthong.config imports the sync, which decides with this module
    from .config import RetryPolicy


class Disposition(StrEnum):
    """What the bus does next about a failed call (the table in :mod:`lienthong.errors`)."""

    RETRY = "retry"
    RETRY_SLOW = "retry-slow"
    PARK = "park"
    HOLD = "hold"


class Declares(Protocol):
    """The part of an adapter the decision reads: which of its errors pass."""

    def is_transient(self, exc: BaseException) -> bool: ...


def decide(error: BaseException, adapter: Declares) -> Disposition:
    """Sort ``error``, raised by ``adapter``, by what the bus does next.

    The bus's own classes first (they say what the adapter meant), then the
    adapter's ``transient_errors``; anything else is a surprise, retried slowly.
    """
    if isinstance(error, StoreUnavailable):
        return Disposition.HOLD
    if isinstance(error, TransientError):
        return Disposition.RETRY
    if isinstance(error, RejectedError):
        return Disposition.PARK
    if isinstance(error, (FatalError, ConfigError)):
        return Disposition.RETRY_SLOW
    if adapter.is_transient(error):
        return Disposition.RETRY
    return Disposition.RETRY_SLOW


def undeclared(error: BaseException, disposition: Disposition) -> bool:
    """Whether ``error`` is a surprise: none of the bus's classes, nor declared transient."""
    return disposition is Disposition.RETRY_SLOW and not isinstance(error, LienthongError)


def endpoint_up(error: BaseException, disposition: Disposition) -> bool | None:
    """What the failure says of the endpoint, for its circuit breaker.

    ``True``: it answered (a success); ``False``: it failed; ``None``: nothing
    (the bus's own store failed), so a trial call the breaker allowed is given back.
    """
    if disposition is Disposition.PARK:
        return True
    if disposition is Disposition.HOLD:
        return None
    if disposition is Disposition.RETRY:
        return bool(getattr(error, "endpoint_up", False))
    return False


def describe(error: BaseException) -> str:
    """The error's text for a log line or a record; its type too when it is not ours."""
    return str(error) if isinstance(error, LienthongError) else f"{type(error).__name__}: {error}"


def retry_delay(policy: RetryPolicy, attempt: int, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based): exponential, capped, jittered."""
    base = min(policy.max_delay, policy.initial_delay * policy.multiplier ** (attempt - 1))
    spread = base * policy.jitter
    return max(0.0, base + (rng or random).uniform(-spread, spread))


def failed_send(
    delivery: Delivery,
    error: BaseException,
    disposition: Disposition,
    policy: RetryPolicy,
    now: datetime,
) -> Outcome:
    """The outcome of a send that raised ``error``: dead-lettered, or retried when."""
    text = describe(error)
    if disposition is Disposition.PARK:
        return Outcome(delivery, Result.REJECTED, text)
    attempt = delivery.attempts + 1
    if attempt >= policy.max_attempts:
        return Outcome(delivery, Result.REJECTED, f"gave up after {attempt} attempts: {text}")
    if disposition is Disposition.RETRY_SLOW:
        wait = policy.max_delay
    else:
        wait = retry_delay(policy, attempt)
        asked = getattr(error, "retry_after", None)
        if asked is not None:
            wait = max(wait, asked)  # the system asked for this much (Retry-After)
    return Outcome(delivery, Result.TRANSIENT, text, retry_at=now + timedelta(seconds=wait))
