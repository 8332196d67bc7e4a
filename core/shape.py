"""The shape of config sections, checked by pydantic and worded as config problems.

Each section (``bus``, ``routes``, ``jobs``, ``console``) declares its keys as a
dataclass: types, defaults, allowed values, and ``extra="forbid"``. :func:`check`
validates one section and turns every pydantic error into a
:class:`ConfigProblem` the same way, in the order of the file:

- an unknown key: ``unknown key. Did you mean 'cron'? Known: ...``;
- a value a validator refused: the validator's own words;
- a missing key: ``required``;
- one of a few values: ``expected one of 'full', 'delta', got 'ful'. Did you mean 'full'?``;
- any other: the field's :class:`Expect` (for a value that should have been a
  mapping, its class's ``shape`` or "expected a mapping"), ``got`` the value, and its hint.

What needs more than one value or the rest of the config (a job has cron *or*
interval, an endpoint of that name exists, a file is there, an XPath compiles)
is plain code after the shape.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin, get_type_hints

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
)
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from .adapter import Secret, resolve_secret
from .errors import ConfigProblem
from .suggest import did_you_mean, unknown_key

T = TypeVar("T")


@dataclass(frozen=True)
class Expect:
    """What a setting must be, in the words of its config problem, and a hint."""

    text: str
    hint: str = ""


def expect(text: str, hint: str = "") -> dict[str, Expect]:
    """A field's ``metadata``: the words its problems use."""
    return {"expect": Expect(text, hint)}


def dotted(*keys: Any) -> str:
    """A problem's location without a file: ``jobs.nightly.cron``."""
    return ".".join(str(k) for k in keys)


# --- types shared by sections ------------------------------------------------


def _secret(value: Any, info: ValidationInfo) -> Any:
    """A secret's value; check()'s context has the config's folder and the environment."""
    context = info.context or {}
    if isinstance(value, Secret):
        return value
    return resolve_secret(value, context.get("environ"), context.get("base"))


def _from_base(path: Path | None, info: ValidationInfo) -> Path | None:
    """A path in the config is relative to the config's folder."""
    base = (info.context or {}).get("base")
    return path if path is None or base is None else (base / path).resolve()


def _as_path(value: Any) -> Any:
    return value if value is None or isinstance(value, Path) else Path(str(value))


def _as_text(value: Any) -> Any:
    return str(value) if isinstance(value, (int, float)) else value


def _as_list(value: Any) -> Any:
    return [] if value is None else value if isinstance(value, list) else [value]


# A section's keys are only those it declares.
CLOSED = ConfigDict(extra="forbid", arbitrary_types_allowed=True)
ConfigSecret = Annotated[Secret, BeforeValidator(_secret)]
ConfigPath = Annotated[Path, BeforeValidator(_as_path), AfterValidator(_from_base)]
Positive = Annotated[float, Field(gt=0, strict=True)]
Flag = Annotated[bool, Field(strict=True)]
# A name or a value written in YAML: 2026 and 1.5 are taken as text.
Text = Annotated[str, BeforeValidator(_as_text)]
# One name or a list of them.
Names = Annotated[list[Text], BeforeValidator(_as_list)]
POSITIVE = expect("expected a positive number")
FLAG = expect("expected true or false")


# --- checking ----------------------------------------------------------------


_adapters: dict[type, TypeAdapter[Any]] = {}  # building one takes milliseconds


def check(
    shape: type[T],
    raw: Any,
    where: Callable[..., str],
    *keys: Any,
    context: Mapping[str, Any] | None = None,
) -> tuple[T | None, list[ConfigProblem]]:
    """``raw`` (the section at ``keys``) as ``shape``, and a problem for each error in it.

    With problems, the keys in error are left out and the rest checked again, so
    what is usable (a bus of defaults, a route without its misspelt key) can
    still be cross-checked; ``None`` when that fails too.
    """
    adapter = _adapters.get(shape) or _adapters.setdefault(shape, TypeAdapter(shape))
    try:
        return adapter.validate_python(raw, context=context), []
    except ValidationError as exc:
        errors = exc.errors()
    for error in errors:  # a mapping's key in error is placed at the key
        error["loc"] = tuple(k for k in error["loc"] if k != "[key]")
    errors.sort(key=lambda e: _place(raw, e["loc"]))
    problems = [ConfigProblem(where(*keys, *e["loc"]), _wording(shape, e)) for e in errors]
    for error in errors:
        raw = _without(raw, error["loc"])
    try:
        return adapter.validate_python(raw, context=context), problems
    except ValidationError:
        return None, problems


def _wording(shape: type, error: ErrorDetails) -> str:
    """One pydantic error as a config problem's message (see the module's docstring)."""
    kind, loc = error["type"], error["loc"]
    known, declared, hint = _at(shape, loc)
    if kind in ("unexpected_keyword_argument", "extra_forbidden"):
        return unknown_key(loc[-1], known)
    if kind == "value_error":
        return str(error["ctx"]["error"])
    said = None if declared is None else declared.metadata.get("expect")
    if kind == "dataclass_type":
        said = getattr(_inside(hint), "shape", None) or said or Expect("expected a mapping")
    said = said or Expect(error["msg"][:1].lower() + error["msg"][1:])
    tail = f". Hint: {said.hint}" if said.hint else ""
    if kind == "missing":
        return "required" + tail
    value = error["input"]
    if kind == "literal_error":
        values = get_args(_inside(hint))
        listed = ", ".join(repr(v) for v in values)
        return f"expected one of {listed}, got {value!r}.{did_you_mean(value, values)}"
    return f"{said.text}, got {value!r}{tail}"


def _at(shape: type, loc: tuple[Any, ...]) -> tuple[list[str], Any, Any]:
    """Along ``loc``: the keys of the last class passed, its field, and the type at the end."""
    hint: Any = shape
    known: dict[str, tuple[Any, Any]] = {}
    declared = None
    for key in loc:
        inside = _inside(hint)
        if dataclasses.is_dataclass(inside):
            known = _keys(inside)
            declared, hint = known.get(str(key), (None, None))
        else:  # an item of a list or a mapping
            hint = get_args(inside)[-1] if get_args(inside) else None
    return list(known), declared, hint


def _inside(hint: Any) -> Any:
    """The type a value must have, without ``Annotated`` and ``| None``."""
    while True:
        if get_origin(hint) is Annotated:
            hint = get_args(hint)[0]
        elif get_origin(hint) in (Union, UnionType):
            hint = next(a for a in get_args(hint) if a is not type(None))
        else:
            return hint


def _keys(cls: Any) -> dict[str, tuple[Any, Any]]:
    """A dataclass's keys in the config (an alias where it has one): each one's field and type."""
    hints = get_type_hints(cls, include_extras=True)
    keys = {}
    for f in dataclasses.fields(cls):
        info = [m for m in getattr(hints[f.name], "__metadata__", ()) if isinstance(m, FieldInfo)]
        alias = next((i.alias for i in info if i.alias), f.name)
        keys[alias] = (f, hints[f.name])
    return keys


def _place(data: Any, loc: tuple[Any, ...]) -> tuple[int, ...]:
    """Where ``loc`` is in ``data`` by the order of its keys: the file's order."""
    place: list[int] = []
    for key in loc:
        keys = list(range(len(data))) if isinstance(data, list) else []
        keys = list(data) if isinstance(data, Mapping) else keys
        if key not in keys:
            return (*place, len(keys))
        place.append(keys.index(key))
        data = data[key]
    return tuple(place)


def _without(data: Any, loc: tuple[Any, ...]) -> Any:
    """``data`` without the key at ``loc`` (copied along the way), or as it is."""
    if not loc:
        return data
    key, rest = loc[0], loc[1:]
    if isinstance(data, Mapping) and key in data:
        if not rest:
            return {k: v for k, v in data.items() if k != key}
        return {**data, key: _without(data[key], rest)}
    if isinstance(data, list) and isinstance(key, int) and 0 <= key < len(data) and rest:
        return [*data[:key], _without(data[key], rest), *data[key + 1 :]]
    return data
