"""Where a poll resumes: a cursor value, and the items at exactly that value already taken.

A cursor taken from the items (the greatest ``updatedAt``) asks the system for
items *at or after* it, so that equal values split across pages are not
skipped; the items already handed over at that very value are remembered
beside it, so they are not handed over twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit


@dataclass
class Position:
    """Where polling resumes: a cursor value, and the items at exactly that value already taken."""

    value: str = ""
    seen: tuple[str, ...] = ()

    @classmethod
    def load(cls, stored: str | None, start: str) -> Position:
        if not stored:
            return cls(start)
        if stored.startswith("{"):
            try:
                data = json.loads(stored)
            except ValueError:
                data = None
            if isinstance(data, dict) and "value" in data:
                return cls(str(data["value"]), tuple(map(str, data.get("seen", ()))))
        return cls(stored)

    def dump(self) -> str:
        """A plain value when that is all there is (readable in the cursors table), else JSON."""
        if not self.seen and not self.value.startswith("{"):
            return self.value
        return json.dumps({"value": self.value, "seen": list(self.seen)}, ensure_ascii=False)


def compare(a: str, b: str) -> int:
    """Order two cursor values: as numbers when both are, else as text (ISO times sort so)."""
    try:
        x, y = float(a), float(b)
    except ValueError:
        x, y = a, b  # type: ignore[assignment]
    return (x > y) - (x < y)


def query_param(url: str, name: str) -> str:
    for key, value in parse_qsl(urlsplit(url).query, keep_blank_values=True):
        if key == name:
            return value
    return ""


def with_query_param(url: str, name: str, value: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != name]
    query.append((name, value))
    return urlunsplit(parts._replace(query=urlencode(query)))
