"""Logs: one line per event, plain text for people or JSON for a log collector.

Every line carries the time, level, logger and message, and the fields a log
call passes with ``extra=`` (``message_id``, ``correlation_id``, ``endpoint``,
``route`` first, then any others), so one message can be followed through the
bus with ``grep`` or a query on ``message_id``. A :class:`~lienthong.adapter.Secret`
is always rendered as its repr (``Secret(from env NAME)``), never its value,
whether it is a log argument or an extra field.

A text line is one event: control characters in the message and the fields (a
file name with a newline, a terminal escape) are shown escaped (``\\n``,
``\\x1b``), and the lines of a traceback are indented, so whatever a sender
puts in a name, only the bus starts a line at its first column.
"""

from __future__ import annotations

import json as jsonlib
import logging
import re
import sys
import time
from typing import IO, Any

from .adapter import Secret

#: The fields that say which message a line is about, in the order lines show them.
FIELDS = ("message_id", "correlation_id", "endpoint", "route")

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
_QUIET = {"alembic": logging.WARNING, "zeep.transports": logging.INFO}


def _json_default(value: Any) -> str:
    # JSON asks for every value it cannot encode itself, nested ones too: a Secret
    # gives its repr (its str is the same repr, which covers plain text lines).
    return repr(value) if isinstance(value, Secret) else str(value)


# One encoder for every line: json.dumps with options builds a new one each call.
_ENCODER = jsonlib.JSONEncoder(ensure_ascii=False, default=_json_default)


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The ``extra=`` fields of a record: the message fields first, then the others by name."""
    found = {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
    if not found:
        return found
    ordered = {}
    for name in FIELDS:
        value = found.pop(name, None)
        if value is not None:
            ordered[name] = value
    for name in sorted(found):
        if found[name] is not None and not name.startswith("_"):
            ordered[name] = found[name]
    return ordered


def _time(record: logging.LogRecord) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{seconds}.{int(record.msecs):03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, then the extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": _time(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        data.update(extra_fields(record))
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            data["stack"] = self.formatStack(record.stack_info)
        return _ENCODER.encode(data)


class TextFormatter(logging.Formatter):
    """``TIME LEVEL logger: message key=value ...``, values with spaces quoted.

    Tracebacks follow on lines indented by two spaces.
    """

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_time(record)} {record.levelname} {record.name}: {escape(record.getMessage())}"
        fields = extra_fields(record)
        if fields:
            line += " " + " ".join(f"{k}={_text_value(v)}" for k, v in fields.items())
        if record.exc_info:
            line += _indented(self.formatException(record.exc_info))
        if record.stack_info:
            line += _indented(self.formatStack(record.stack_info))
        return line


# C0 and C1 controls, DEL, the Unicode line and paragraph separators, and the
# bidirectional overrides that make a line read differently from what it holds.
_CONTROLS = {
    c: f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"
    for c in [
        *range(0x20),
        *range(0x7F, 0xA0),
        0x2028,
        0x2029,
        *range(0x202A, 0x202F),
        *range(0x2066, 0x206A),
    ]
}
_CONTROLS.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})


def escape(text: str) -> str:
    """``text`` with every control character written as an escape, so it stays on its line."""
    return text.translate(_CONTROLS)


def _indented(block: str) -> str:
    """A traceback's lines, each indented, so none can pass for a log line of its own."""
    return "".join(f"\n  {escape(line)}" for line in block.splitlines())


_NEEDS_QUOTES = re.compile(r'[\s"=]')


def _text_value(value: Any) -> str:
    text = str(value)
    if not text or _NEEDS_QUOTES.search(text):
        # JSON escapes C0 controls itself; escape() gets the ones it leaves.
        return escape(jsonlib.dumps(text, ensure_ascii=False))
    return escape(text)


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to the given stream, or to whatever ``sys.stderr`` is at the moment of each line."""

    def __init__(self, stream: IO[str] | None) -> None:
        logging.Handler.__init__(self)
        self._fixed = stream

    @property  # type: ignore[override]
    def stream(self) -> IO[str]:
        return self._fixed if self._fixed is not None else sys.stderr


def configure(
    level: str = "INFO", json: bool = False, *, stream: IO[str] | None = None, force: bool = False
) -> logging.Handler | None:
    """Send the root logger's lines to stderr (or ``stream``), as JSON with ``json``.

    Like ``logging.basicConfig``, logging that someone else already set up (an
    application embedding the bus, a test runner) is left alone unless
    ``force``; a second call replaces the handler of the first. Returns the
    handler installed, or None when nothing was changed.
    """
    root = logging.getLogger()
    ours = [h for h in root.handlers if isinstance(h, _Handler)]
    if not force and len(ours) != len(root.handlers):
        return None
    for handler in ours:
        root.removeHandler(handler)
    handler = _Handler(stream)
    handler.setFormatter(JsonFormatter() if json else TextFormatter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name, quiet in _QUIET.items():
        logging.getLogger(name).setLevel(quiet)
    return handler
