"""JSON paths and templates: how the REST adapter's config points into answers and builds calls.

A JSON path is a small subset of JSONPath, enough to reach a field in an
answer: ``response.items``, ``$.data[0].id``, ``links["next page"]``. A template
is a string with ``{name}`` placeholders (``/dossiers/{body.MaHoSo}/steps``),
filled from a dict of values; ``{{`` and ``}}`` are literal braces.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lienthong.jsonxml import JsonObject

_STEP = re.compile(r"\.?([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]|\[(\"(?:[^\"\\]|\\.)*\")\]")
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")


class PathError(ValueError):
    """A JSON path or template in the config that cannot be used; says which and why."""


class Missing(LookupError):
    """The answer has nothing at this path."""


@dataclass(frozen=True)
class JsonPath:
    """A compiled path into parsed JSON (a :mod:`lienthong.jsonxml` value)."""

    text: str
    steps: tuple[str | int, ...]

    @classmethod
    def compile(cls, text: str) -> JsonPath:
        source = text.strip()
        rest = source[1:] if source.startswith("$") else source
        steps: list[str | int] = []
        position = 0
        while position < len(rest):
            match = _STEP.match(rest, position)
            if match is None or match.end() == position:
                raise PathError(
                    f"JSON path {text!r} cannot be read at character {position + 1}. Hint: use "
                    'names with dots, [0] for an index, ["a b"] for other names: data.items'
                )
            name, index, quoted = match.groups()
            if name is not None:
                steps.append(name)
            elif index is not None:
                steps.append(int(index))
            else:
                steps.append(json.loads(quoted))
            position = match.end()
        return cls(text, tuple(steps))

    def find(self, value: Any, *, unique: bool = True) -> Any:
        """The value at this path, or :class:`Missing`; ``unique``: a repeated key is an error."""
        for step in self.steps:
            if isinstance(step, int):
                if not isinstance(value, list) or isinstance(value, JsonObject):
                    raise Missing(f"{self.text}: not an array where [{step}] is asked")
                if step >= len(value):
                    raise Missing(f"{self.text}: the array has no item [{step}]")
                value = value[step]
            elif isinstance(value, JsonObject):
                found = value.members(step)
                if not found:
                    raise Missing(f"{self.text}: no {step!r}")
                if unique and len(found) > 1:
                    raise Missing(f"{self.text}: the key {step!r} appears {len(found)} times")
                value = found[0]
            elif isinstance(value, Mapping):
                if step not in value:
                    raise Missing(f"{self.text}: no {step!r}")
                value = value[step]
            else:
                raise Missing(f"{self.text}: not an object where {step!r} is asked")
        return value

    def get(self, value: Any, default: Any = None) -> Any:
        try:
            return self.find(value)
        except Missing:
            return default


@dataclass(frozen=True)
class Template:
    """A string with ``{name}`` placeholders; ``body.X`` names reach into the JSON being sent."""

    text: str
    names: tuple[str, ...]

    @classmethod
    def compile(cls, text: str) -> Template:
        names = []
        for match in _PLACEHOLDER.finditer(text):
            name = match.group(1)
            if name is None:
                continue
            if not name.strip():
                raise PathError(f"template {text!r} has an empty placeholder '{{}}'")
            names.append(name.strip())
        return cls(text, tuple(names))

    def render(self, lookup: Callable[[str], str]) -> str:
        """Fill every placeholder with ``lookup(name)`` (which raises ``KeyError`` if unknown)."""
        if not self.names:
            return self.text

        def one(match: re.Match[str]) -> str:
            token = match.group()
            if token in ("{{", "}}"):
                return token[0]
            return lookup(match.group(1).strip())

        return _PLACEHOLDER.sub(one, self.text)


def scalar_text(value: Any) -> str:
    """A JSON scalar as the text a key, cursor or header carries."""
    if value is None:
        return ""
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, (list, dict, JsonObject)):
        raise Missing("an object or array where a single value is needed")
    return str(value)
