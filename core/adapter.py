"""The adapter contract: what a plugin for one kind of agency system declares and does.

An adapter *declares* (name, options with descriptions and secret flags,
capabilities, which of its exceptions are transient) and the core *decides*:
retries, back-off, dead letters and idempotency are the core's, so no adapter
writes a retry loop. Services (the store's engine, the clock, the folders) are
handed in by the core, so tests give adapters real local ones.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from .errors import ConfigError, ConfigProblem, FatalError
from .message import Message
from .suggest import closest, did_you_mean, unknown_key

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


class Capability(StrEnum):
    """What an adapter can do for the bus."""

    RECEIVE = "receive"
    SEND = "send"
    SYNC = "sync"


_REQUIRED: Any = object()


@dataclass(frozen=True)
class Option:
    """One setting of an adapter, as ``config check``, ``adapters --options`` and the docs show it.

    ``choices``, ``minimum``/``maximum``, ``pattern`` and ``validator`` are checked by
    ``config check`` before any adapter starts, so a wrong value is reported with its
    file and line instead of failing later in ``start()``. A ``validator`` is called
    with the value (already of ``type``) and raises ``ValueError`` saying what to write
    instead; the first line of its docstring is what the docs show for it.
    """

    name: str
    description: str
    default: Any = _REQUIRED
    example: Any = None
    secret: bool = False
    type: type = str
    choices: tuple[Any, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    pattern: str | None = None
    validator: Callable[[Any], None] | None = None

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED

    def check(self, value: Any) -> Any:
        """``value`` as this option's type, or ``ValueError`` saying what is wrong and what fits."""
        value = _coerce(self, value)
        self._check_rules(value)
        return value

    def _check_rules(self, value: Any) -> None:
        if self.choices and value not in self.choices:
            shown = ", ".join(repr(c) for c in self.choices)
            hint = did_you_mean(value, self.choices)
            raise ValueError(f"expected one of {shown}, got {value!r}.{hint}")
        if self.minimum is not None and value < self.minimum:
            raise ValueError(f"must be at least {self.minimum:g}, got {value!r}")
        if self.maximum is not None and value > self.maximum:
            raise ValueError(f"must be at most {self.maximum:g}, got {value!r}")
        if self.pattern is not None and not re.fullmatch(self.pattern, str(value)):
            example = f" e.g. {self.example!r}" if self.example is not None else ""
            raise ValueError(f"{value!r} does not match the pattern {self.pattern}.{example}")
        if self.validator is not None:
            self.validator(value)

    def rules(self) -> str:
        """The checks on this option in words ("one of: in, out"; "1 to 65535"), for docs."""
        parts = []
        if self.choices:
            parts.append("one of: " + ", ".join(str(c) for c in self.choices))
        if self.minimum is not None and self.maximum is not None:
            parts.append(f"{self.minimum:g} to {self.maximum:g}")
        elif self.minimum is not None:
            parts.append(f"at least {self.minimum:g}")
        elif self.maximum is not None:
            parts.append(f"at most {self.maximum:g}")
        if self.pattern is not None:
            parts.append(f"matches {self.pattern}")
        if self.validator is not None:
            doc = (self.validator.__doc__ or self.validator.__name__).strip()
            parts.append(doc.splitlines()[0].rstrip("."))
        return "; ".join(parts)


class Secret:
    """A secret value that never shows itself in logs, errors or reprs."""

    __slots__ = ("_value", "origin")

    def __init__(self, value: str, origin: str = "config") -> None:
        self._value = value
        self.origin = origin

    def reveal(self) -> str:
        """The value itself, for the one place that must send it."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret(from {self.origin})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


#: A receiving adapter that finds a message invalid (a bad signature, a broken
#: edXML rule) sets this header to the problems and still hands it over: the
#: bus parks it with that reason, so it is kept and replayable, never lost.
INVALID_HEADER = "invalid"


@dataclass(frozen=True)
class Acceptance:
    """What the bus did with one received message.

    ``parked`` carries the reason when the bus stored the message as a dead
    letter instead of routing it; ``duplicate`` is true when the store already
    had this source key. Either way the message is safe: the source may ack it.
    """

    message_id: str
    parked: str | None = None
    duplicate: bool = False


@dataclass(frozen=True)
class Record:
    """One entity as a sync sees it: its key and the fields a sync compares."""

    key: str
    fields: Mapping[str, Any]


@dataclass
class SyncBatch:
    """What :meth:`Adapter.sync_read` returns.

    ``complete`` is true for a full snapshot, where a key that is absent means the
    entity is gone (a sync may then disable it); false for changes since a cursor.
    ``cursor`` is where the next delta read should start, stored by the core only
    after the changes are applied.
    """

    records: Iterable[Record]
    complete: bool
    cursor: str | None = None


@dataclass(frozen=True)
class Change:
    """One planned effect of a sync on its target."""

    action: str  # "create", "update" or "disable"
    key: str
    fields: Mapping[str, Any]
    before: Mapping[str, Any] | None = None


class Cursors(Protocol):
    """Named positions kept in the store (``services.cursors``), so a poll resumes after a restart.

    A receiving adapter whose source has no "taken" mark of its own (a feed of
    changes since a number or a time) keeps its position here, under a name that
    starts with its endpoint's name. The rule: ``set`` only after ``inbox.accept``
    returned. Moved earlier, a crash in between would skip items that the store
    never had; moved after, the crash re-reads them, and their source keys make
    the store drop the repeats. :class:`IncrementalAdapter` does this for you.
    """

    def get(self, name: str) -> str | None:
        """The position stored under ``name``, or None before the first ``set``."""
        ...

    def set(self, name: str, value: str) -> None:
        """Store ``value`` under ``name``, durably, in its own transaction."""
        ...


class Inbox(Protocol):
    """Handed to :meth:`Adapter.receive`: stores messages durably before the source is acked."""

    def accept(self, messages: Sequence[Message]) -> list[Acceptance]:
        """Store ``messages`` (one :class:`Acceptance` each); raises if nothing was stored."""
        ...


@dataclass
class Services:
    """What the core hands every adapter instead of letting it build its own."""

    engine: Engine | None = None
    base_dir: Path = field(default_factory=Path.cwd)
    var_dir: Path = field(default_factory=lambda: Path.cwd() / "var")
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    max_message_bytes: int = 10 * 1024 * 1024
    cursors: Cursors | None = None
    mappings_dir: Path | None = None


class Adapter:
    """Base class of every adapter; one instance serves one configured endpoint."""

    name: ClassVar[str] = ""
    version: ClassVar[str] = "0"
    summary: ClassVar[str] = ""
    options: ClassVar[tuple[Option, ...]] = ()
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    transient_errors: ClassVar[tuple[type[BaseException], ...]] = ()

    def __init__(self, endpoint: str, settings: Mapping[str, Any], services: Services) -> None:
        self.endpoint = endpoint
        self.settings = dict(settings)
        self.services = services

    def start(self) -> None:
        """Open connections or folders; raise ``ConfigError`` or ``TransientError`` if it cannot."""

    def stop(self) -> None:
        """Release what :meth:`start` opened."""

    def receive(self, inbox: Inbox) -> int:
        """Poll the system once, hand new messages to ``inbox.accept``, then ack them at the source.

        Returns how many messages were handed over. Only called when the adapter
        declares ``Capability.RECEIVE``.
        """
        raise NotImplementedError(f"adapter '{self.name}' cannot receive")

    def send(self, message: Message, *, key: str) -> None:
        """Deliver one message; ``key`` is stable across redeliveries, so the effect happens once.

        Raise an exception listed in ``transient_errors`` (or ``TransientError``) to be
        retried later; raise ``RejectedError`` to dead-letter the message.
        """
        raise NotImplementedError(f"adapter '{self.name}' cannot send")

    def sync_read(self, entity: str, since: str | None) -> SyncBatch:
        """Read ``entity`` records ("agency", "account"): all, or the changes since a cursor.

        Only called when the adapter declares ``Capability.SYNC``.
        """
        raise NotImplementedError(f"adapter '{self.name}' cannot be read by a sync")

    def sync_apply(self, entity: str, change: Change) -> None:
        """Apply one planned change to this system; raise ``RejectedError`` for this item alone."""
        raise NotImplementedError(f"adapter '{self.name}' cannot be written by a sync")

    def is_transient(self, exc: BaseException) -> bool:
        """Whether the core should retry after ``exc``, from the adapter's declaration."""
        return isinstance(exc, self.transient_errors)


#: The option an :class:`IncrementalAdapter` reads its page size from; add it to ``options``.
PAGE_SIZE = Option("page_size", "most items read per poll", default=100, type=int, minimum=1)


class IncrementalAdapter(Adapter):
    """An adapter for a source read in the order of a replication key, one bounded page per poll.

    Many systems offer "what changed since X": a change number, a modification
    time. Declare ``replication_key``, the header in which each message carries
    its position (increasing: a change number, or ``time|id`` when times repeat),
    and implement :meth:`read`. :meth:`receive` then does the cursor work the
    same way for every such adapter: it reads from the stored position, hands
    the page to the inbox and stores the last message's position only after
    ``inbox.accept`` returned. The page size is the ``page_size`` setting
    (:data:`PAGE_SIZE`).
    """

    replication_key: ClassVar[str] = ""

    @property
    def cursor_name(self) -> str:
        """Where this endpoint's position is kept in ``services.cursors``."""
        return f"{self.endpoint}:{self.replication_key}"

    def read(self, since: str | None, limit: int) -> Sequence[Message]:
        """At most ``limit`` messages positioned after ``since`` (None: from the start), in order.

        Each message carries its position in ``headers[replication_key]`` and its
        ``source_key``; ``source`` is filled in for you when left empty.
        """
        raise NotImplementedError(f"adapter '{self.name}' must implement read(since, limit)")

    def receive(self, inbox: Inbox) -> int:
        """Read one page from the stored position, hand it over, then store the new position."""
        cursors = self.services.cursors
        where = f"endpoint '{self.endpoint}'"
        if cursors is None:
            raise ConfigError(
                [f"{where}: the bus gave no cursor store. Hint: run it inside the bus"]
            )
        since = cursors.get(self.cursor_name)
        limit = int(self.settings.get("page_size", PAGE_SIZE.default))
        messages = list(self.read(since, limit))
        if not messages:
            return 0
        if len(messages) > limit:
            raise FatalError(
                f"{where}: read() returned {len(messages)} messages for a page of {limit}. "
                "Hint: read() must stop at its limit"
            )
        positions = [m.headers.get(self.replication_key) for m in messages]
        if not all(positions):
            raise FatalError(
                f"{where}: a message from read() has no position in its "
                f"'{self.replication_key}' header. Hint: set it on every message"
            )
        last = str(positions[-1])
        if last == since:
            raise FatalError(
                f"{where}: a whole page of {len(messages)} items sits at position {last!r}, so "
                "the position cannot move on. Hint: raise page_size, or make the replication "
                "key unique (e.g. time|id)"
            )
        for message in messages:
            message.source = message.source or self.endpoint
        inbox.accept(messages)
        # Only now is the page in the store: a crash before this line reads it again.
        cursors.set(self.cursor_name, last)
        return len(messages)


_TYPE_WORDS = {int: "a whole number", float: "a number", str: "text", bool: "true or false"}


def _coerce(option: Option, value: Any) -> Any:
    wanted = _TYPE_WORDS.get(option.type, option.type.__name__)
    if option.type is bool and isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "yes", "1", "on"):
            return True
        if lowered in ("false", "no", "0", "off"):
            return False
        raise ValueError(f"expected true or false, got {value!r}")
    if option.type in (int, float) and isinstance(value, bool):
        raise ValueError(f"expected {wanted}, got {value!r}")
    if isinstance(value, option.type):
        return value
    if option.type is int and isinstance(value, float) and not value.is_integer():
        raise ValueError(f"expected {wanted}, got {value!r}")
    if option.type in (int, float, str) and isinstance(value, (int, float, str)):
        try:
            return option.type(value)
        except ValueError:
            raise ValueError(f"expected {wanted}, got {value!r}") from None
    raise ValueError(f"expected {wanted}, got {type(value).__name__} {value!r}")


def resolve_secret(
    value: Any, environ: Mapping[str, str] | None = None, base: Path | None = None
) -> Secret:
    """Turn ``{env: NAME}``, ``{file: PATH}`` or a plain string into a :class:`Secret`.

    A relative ``PATH`` is under ``base`` (the config file's folder, like every
    path in a config), not wherever the command happens to run.
    """
    environ = os.environ if environ is None else environ
    if isinstance(value, Mapping) and set(value) == {"env"}:
        name = str(value["env"])
        if name not in environ:
            raise ValueError(f"environment variable {name} is not set. Hint: export {name}=...")
        return Secret(environ[name], origin=f"env {name}")
    if isinstance(value, Mapping) and set(value) == {"file"}:
        path = Path(str(value["file"]))
        if base is not None and not path.is_absolute():
            path = base / path
        try:
            return Secret(path.read_text(encoding="utf-8").strip(), origin=f"file {path}")
        except OSError as exc:
            raise ValueError(f"secret file '{path}' cannot be read: {exc.strerror}") from exc
    if isinstance(value, str):
        return Secret(value)
    raise ValueError("a secret is a string, {env: NAME} or {file: PATH}")


def resolve_options(
    adapter: type[Adapter],
    raw: Mapping[str, Any],
    location: str,
    environ: Mapping[str, str] | None = None,
    base: Path | None = None,
    core_keys: tuple[str, ...] = (),
) -> tuple[dict[str, Any], list[ConfigProblem]]:
    """Check ``raw`` settings against the adapter's declared options.

    Returns the settings with defaults filled and secrets wrapped, and every
    problem found: unknown keys with a suggestion, missing values, and values of
    the wrong type or outside their choices, range, pattern or validator.
    ``core_keys`` are the endpoint's keys the core takes (``concurrency``): not in
    ``raw``, but a misspelt one is suggested too.
    """
    declared = {o.name: o for o in adapter.options}
    settings: dict[str, Any] = {}
    problems: list[ConfigProblem] = []
    for key in raw:
        if key not in declared:
            what = f"unknown option for adapter '{adapter.name}'"
            # The core's keys are named only when one is what was meant.
            meant_core = closest(key, core_keys) and not closest(key, declared)
            known = [*declared, *core_keys] if meant_core else list(declared)
            problems.append(ConfigProblem(f"{location}.{key}", unknown_key(key, known, what)))
    for option in adapter.options:
        where = f"{location}.{option.name}"
        if option.name not in raw:
            if option.required:
                example = f" e.g. {option.name}: {option.example!r}" if option.example else ""
                problems.append(ConfigProblem(where, f"required: {option.description}.{example}"))
            else:
                settings[option.name] = option.default
            continue
        value = raw[option.name]
        try:
            if option.secret:
                settings[option.name] = resolve_secret(value, environ, base)
                continue
            settings[option.name] = _coerce(option, value)
            # Kept even when a rule fails: the problem is reported, and code that
            # builds an adapter regardless still sees what the file said.
            option._check_rules(settings[option.name])
        except ValueError as exc:
            problems.append(ConfigProblem(where, str(exc)))
    return settings, problems
