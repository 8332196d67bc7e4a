"""XPath functions for mappings between JSON systems: dates in the form and zone each expects.

``lt:format_datetime(value, pattern, zone)`` turns an ISO 8601 time (as JSON
systems write them: ``2026-03-02T08:15:00+07:00``, ``...Z``, or without an
offset, read as already in ``zone``) into ``pattern`` in ``zone``. The pattern
takes Java's letters, as the national portal's clients do: ``yyyy``, ``yy``,
``MM``, ``dd``, ``HH``, ``mm``, ``ss``; anything else is copied. The portal wants
``lt:format_datetime(receiveDate, 'yyyyMMddHHmmss', 'Asia/Ho_Chi_Minh')``. An
empty value gives an empty string (optional dates stay empty).
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_TOKENS = re.compile(r"yyyy|yy|MM|dd|HH|mm|ss")
_FORMATS = {"yyyy": "%Y", "yy": "%y", "MM": "%m", "dd": "%d", "HH": "%H", "mm": "%M", "ss": "%S"}


@lru_cache(maxsize=64)
def _strftime_format(pattern: str) -> str:
    """Java letters -> one strftime format (a mapping calls this per value: cached)."""
    return _TOKENS.sub(lambda m: _FORMATS[m.group()], pattern.replace("%", "%%"))


@lru_cache(maxsize=16)
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"format_datetime: unknown time zone {name!r}") from exc


def _text(value: Any) -> str:
    if isinstance(value, list):
        return "".join(getattr(v, "text", None) or str(v) for v in value[:1])
    return str(value)


def format_datetime(context: Any, value: Any, pattern: Any, zone: Any) -> str:
    """``value`` (ISO 8601) written with ``pattern`` in time zone ``zone``."""
    text = _text(value).strip()
    if not text:
        return ""
    tz = _zone(_text(zone))
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(
            f"format_datetime: {text!r} is not an ISO 8601 time (e.g. 2026-03-02T08:15:00+07:00)"
        ) from exc
    moment = moment.replace(tzinfo=tz) if moment.tzinfo is None else moment.astimezone(tz)
    return moment.strftime(_strftime_format(_text(pattern)))


FUNCTIONS = {"format_datetime": format_datetime}
