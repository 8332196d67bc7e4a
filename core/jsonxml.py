"""JSON <-> XML in the W3C vocabulary of XPath 3.1 ``fn:json-to-xml`` and ``fn:xml-to-json``.

JSON systems meet the bus's XML mappings through the representation the W3C
defined for exactly this (XPath and XQuery Functions and Operators 3.1, §17.5):
an object is ``<map>``, an array ``<array>``, and ``<string>``, ``<number>``,
``<boolean>``, ``<null>`` hold the values, each child of a map carrying its
name in ``key``, all in the namespace ``http://www.w3.org/2005/xpath-functions``::

    {"MaHoSo": "000.00.15.H41-260302-0001", "SoTrang": 12, "Online": true}

    <map xmlns="http://www.w3.org/2005/xpath-functions">
      <string key="MaHoSo">000.00.15.H41-260302-0001</string>
      <number key="SoTrang">12</number>
      <boolean key="Online">true</boolean>
    </map>

So an XSLT 1.0 mapping reads JSON with ``j:string[@key='MaHoSo']`` and writes JSON
by writing that vocabulary. :func:`json_to_xml` and :func:`xml_to_json` follow
the specification's rules exactly: a number keeps its lexical form on the way in
and is written as ``xs:string(xs:double(.))`` on the way out; ``escape`` and the
``escaped``/``escaped-key`` attributes; the ``duplicates`` policies ``reject``,
``use-first`` and ``retain``; characters XML cannot hold replaced by U+FFFD or
passed to a ``fallback``. Errors carry the specification's codes (FOJS0001
syntax, FOJS0003 duplicate keys, FOJS0006 not the vocabulary, FOJS0007 bad
escape) and the JSON path of the problem.

JSON from outside is hostile until proven otherwise, so :func:`json_to_xml` also
refuses, with a clear :class:`JsonRejected`, input over a size limit, invalid
UTF-8, nesting deeper than a limit and numbers written with more characters than
a limit (no number is ever converted, so a 100,000-digit literal costs nothing).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from lxml import etree

from .errors import RejectedError

NS = "http://www.w3.org/2005/xpath-functions"
MAP, ARRAY, STRING, NUMBER, BOOLEAN, NULL = (
    f"{{{NS}}}{name}" for name in ("map", "array", "string", "number", "boolean", "null")
)
DUPLICATES = ("reject", "use-first", "retain")

#: Characters XML 1.0 cannot hold: most C0 controls, lone surrogates, U+FFFE and U+FFFF.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
#: What ``escape: true`` writes as a JSON escape (spec: x00-x1F, x7F-x9F, non-XML, backslash).
_SPECIAL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff\\\\]")
_TWO_CHAR = {"\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}
#: Text that needs neither XML escaping nor JSON care: copied as it is (the common case).
_CAREFREE = re.compile("[&<>\r\\\\\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_CAREFREE_ESCAPED = re.compile("[&<>\\\\\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_TEXT = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"})
_ATTR = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        '"': "&quot;",
        "\t": "&#9;",
        "\n": "&#10;",
        "\r": "&#13;",
    }
)
_XS_DOUBLE = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([Ee][+-]?[0-9]+)?")
_XS_BOOLEAN = {"true": "true", "1": "true", "false": "false", "0": "false"}
# Output escaping of fn:xml-to-json, unescaped form: backslash, quote, the five
# two-character escapes, any other codepoint 1-31 or 127-159 as \uHHHH.
_OUT_PLAIN = re.compile('[\\\\"\x01-\x1f\x7f-\x9f]')
# Escaped form: valid escapes copied, bare specials escaped, solidus too; a lone
# backslash (not starting a valid escape) is an error.
_OUT_ESCAPED = re.compile(r'\\(?:u[0-9A-Fa-f]{4}|["\\/bfnrt])|\\|["/\x01-\x1f\x7f-\x9f]')
_ESCAPE_OR_BACKSLASH = re.compile(r'\\(?:u[0-9A-Fa-f]{4}|["\\/bfnrt])|\\')
_ONE_ESCAPE = re.compile(r"\\(?:u([0-9A-Fa-f]{4})|([\"\\/bfnrt]))")
_UNESCAPE = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_MAX_XML_DEPTH = 512


class JsonRejected(RejectedError):
    """JSON (or its XML form) the bus does not accept; says what, where, and the spec's code."""

    def __init__(self, message: str, code: str = "", path: str = "") -> None:
        self.code = code
        self.path = path
        super().__init__(f"{message} [{code}]" if code else message)


@dataclass(frozen=True)
class Limits:
    """What untrusted JSON may cost: bytes, nesting and the length of one number literal."""

    max_bytes: int = 10 * 1024 * 1024
    max_depth: int = 64
    max_number_chars: int = 100


class JsonNumber(str):
    """A JSON number kept as written: ``fn:json-to-xml`` copies the lexical form."""

    __slots__ = ()

    def value(self) -> int | float:
        """The number itself: an int when written without fraction or exponent."""
        return float(self) if any(c in self for c in ".eE") else int(self)


class JsonObject(list):  # type: ignore[type-arg]
    """A JSON object as its (key, value) pairs, in order and with duplicates kept."""

    __slots__ = ()

    def members(self, key: str) -> list[Any]:
        """Every value under ``key`` (more than one when the sender repeated the key)."""
        return [value for name, value in self if name == key]


class _Unpack(Exception):
    """Carries a conversion error out of the recursion, gathering the path on the way."""

    def __init__(self, message: str, code: str, path: list[str]) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.path = path


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (RFC 8259 has no NaN or Infinity)")


def decode(data: bytes | str, *, limits: Limits = Limits(), what: str = "JSON") -> str:
    """The JSON text of ``data``: size checked, strict UTF-8, a leading byte order mark dropped."""
    size = len(data)
    if size > limits.max_bytes:
        raise JsonRejected(
            f"{what} is {size:,} bytes, over the limit of {limits.max_bytes:,}. Hint: raise the "
            "limit (json_max_bytes) if such documents are expected"
        )
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JsonRejected(
                f"{what} is not valid UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start} "
                f"({exc.reason}). Hint: JSON exchanged between systems must be UTF-8 (RFC 8259)",
                "FOJS0001",
            ) from exc
    else:
        text = data
    return text[1:] if text.startswith("\ufeff") else text


def parse(data: bytes | str, *, limits: Limits = Limits(), what: str = "JSON") -> Any:
    """Parse untrusted JSON, keeping what the XML form needs.

    Objects come back as :class:`JsonObject` (ordered pairs, duplicates kept),
    numbers as :class:`JsonNumber` (as written), the rest as str, bool or None.
    Size, UTF-8 and syntax are checked here; depth, number length and duplicate
    keys by :func:`to_xml` and :func:`to_python`, which also say where.
    """
    text = decode(data, limits=limits, what=what)
    try:
        return json.loads(
            text,
            object_pairs_hook=JsonObject,
            parse_int=JsonNumber,
            parse_float=JsonNumber,
            parse_constant=_constant,
        )
    except json.JSONDecodeError as exc:
        raise JsonRejected(
            f"{what} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})",
            "FOJS0001",
        ) from exc
    except ValueError as exc:
        raise JsonRejected(f"{what} is not valid JSON: {exc}", "FOJS0001") from exc
    except RecursionError as exc:
        raise JsonRejected(
            f"{what} is nested too deeply to read. Hint: no real document nests this deep; "
            "check the sender",
            "FOJS0001",
        ) from exc


def loads(
    data: bytes | str,
    *,
    limits: Limits = Limits(),
    duplicates: str = "reject",
    what: str = "JSON",
) -> Any:
    """Parse untrusted JSON into Python values (dict, list, str, int or float, bool, None).

    The same checks as :func:`json_to_xml`; for reading an answer's fields (a
    cursor, a token, an error code) without the XML detour.
    """
    return to_python(parse(data, limits=limits, what=what), limits=limits, duplicates=duplicates)


def to_python(
    value: Any, *, limits: Limits = Limits(), duplicates: str = "reject", what: str = "JSON"
) -> Any:
    """A value from :func:`parse` as plain Python (dict, list, str, int or float, bool, None)."""
    try:
        return _plain(value, limits, duplicates, 0)
    except _Unpack as exc:
        raise _rejected(what, exc) from None


def _plain(value: Any, limits: Limits, duplicates: str, depth: int) -> Any:
    if depth > limits.max_depth:
        raise _Unpack(_too_deep(limits), "", [])
    if isinstance(value, JsonObject):
        result: dict[str, Any] = {}
        for key, item in value:
            if key in result:
                if duplicates == "reject":
                    raise _Unpack(_duplicate(key), "FOJS0003", [_key_step(key)])
                if duplicates == "use-first":
                    continue
            try:
                result[key] = _plain(item, limits, duplicates, depth + 1)
            except _Unpack as exc:
                exc.path.append(_key_step(key))
                raise
        return result
    if isinstance(value, list):
        items = []
        for index, item in enumerate(value):
            try:
                items.append(_plain(item, limits, duplicates, depth + 1))
            except _Unpack as exc:
                exc.path.append(f"[{index}]")
                raise
        return items
    if isinstance(value, JsonNumber):
        _check_number(value, limits)
        return value.value()
    return value


def to_json(value: Any) -> str:
    """A value from :func:`parse` as JSON text again, as it came: duplicates, number forms kept."""
    if isinstance(value, JsonObject):
        return "{" + ",".join(f"{_json_string(k)}:{to_json(v)}" for k, v in value) + "}"
    if isinstance(value, list):
        return "[" + ",".join(to_json(v) for v in value) + "]"
    if isinstance(value, JsonNumber):
        return str(value)
    if isinstance(value, str):
        return _json_string(value)
    return json.dumps(value)


def _json_string(text: str) -> str:
    # Lone surrogates cannot be UTF-8: only then fall back to \u escapes throughout.
    return json.dumps(text, ensure_ascii=_NOT_XML.search(text) is not None)


def json_to_xml(
    data: bytes | str,
    *,
    escape: bool = False,
    duplicates: str = "retain",
    fallback: Callable[[str], str] | None = None,
    limits: Limits = Limits(),
    what: str = "JSON",
) -> bytes:
    """``fn:json-to-xml``: the JSON text ``data`` as XML bytes in the XPath 3.1 vocabulary.

    ``escape``, ``duplicates`` (``reject``, ``use-first``, ``retain``; the spec's
    default is ``retain``) and ``fallback`` are the function's options; a character
    XML cannot hold becomes ``fallback(its JSON escape)``, U+FFFD by default.
    """
    value = parse(data, limits=limits, what=what)
    return to_xml(
        value, escape=escape, duplicates=duplicates, fallback=fallback, limits=limits, what=what
    )


def to_xml(
    value: Any,
    *,
    escape: bool = False,
    duplicates: str = "retain",
    fallback: Callable[[str], str] | None = None,
    limits: Limits = Limits(),
    what: str = "JSON",
) -> bytes:
    """A value from :func:`parse` (a whole text or a part of it) as XML; see :func:`json_to_xml`."""
    if duplicates not in DUPLICATES:
        raise ValueError(f"duplicates must be one of {', '.join(DUPLICATES)}, not {duplicates!r}")
    if escape and fallback is not None:
        raise ValueError("fallback cannot be combined with escape=True [FOJS0005]")
    writer = _Writer(escape, duplicates, fallback, limits)
    try:
        writer.value(value, None, 0)
    except _Unpack as exc:
        raise _rejected(what, exc) from None
    parts = writer.parts
    # The root element declares the namespace: '<map' -> '<map xmlns="..."'.
    first = parts[0]
    name_end = next(i for i, c in enumerate(first) if c in " />")
    parts[0] = f'{first[:name_end]} xmlns="{NS}"{first[name_end:]}'
    return ("<?xml version='1.0' encoding='UTF-8'?>\n" + "".join(parts)).encode("utf-8")


_KEY_ATTRIBUTES: dict[bool, dict[str, str]] = {False: {}, True: {}}


class _Writer:
    """Writes the XML text of a parsed JSON value, element by element.

    Hot path of every polled item: types are dispatched exactly (the parser makes
    exactly these), key attributes are written once per distinct key, and text
    needing no care is copied as it is.
    """

    def __init__(
        self,
        escape: bool,
        duplicates: str,
        fallback: Callable[[str], str] | None,
        limits: Limits,
    ) -> None:
        self.escape = escape
        self.duplicates = duplicates
        self.fallback = fallback
        self.limits = limits
        self.parts: list[str] = []
        # Key attributes repeat item after item: without a fallback they depend on the key
        # and the escape mode alone, so they are shared by every writer.
        self._keys: dict[str, str] = {} if fallback is not None else _KEY_ATTRIBUTES[escape]
        self._carefree = _CAREFREE_ESCAPED if escape else _CAREFREE

    def value(self, value: Any, key: str | None, depth: int) -> None:
        if depth > self.limits.max_depth:
            raise _Unpack(_too_deep(self.limits), "", [])
        out = self.parts
        attrs = "" if key is None else self._keys.get(key) or self._key(key)
        kind = type(value)
        if kind is str:
            if self._carefree.search(value) is None:
                out.append(f"<string{attrs}>{value}</string>")
            else:
                text, escaped = self._string(value)
                flag = ' escaped="true"' if escaped else ""
                out.append(f"<string{attrs}{flag}>{text.translate(_TEXT)}</string>")
        elif kind is JsonNumber:
            if len(value) > self.limits.max_number_chars:
                _check_number(value, self.limits)
            out.append(f"<number{attrs}>{value}</number>")
        elif kind is JsonObject:
            if not value:
                out.append(f"<map{attrs}/>")
                return
            out.append(f"<map{attrs}>")
            seen: set[str] = set()
            for name, item in value:
                if name in seen:
                    if self.duplicates == "reject":
                        raise _Unpack(_duplicate(name), "FOJS0003", [_key_step(name)])
                    if self.duplicates == "use-first":
                        continue
                seen.add(name)
                try:
                    self.value(item, name, depth + 1)
                except _Unpack as exc:
                    exc.path.append(_key_step(name))
                    raise
            out.append("</map>")
        elif kind is list:
            if not value:
                out.append(f"<array{attrs}/>")
                return
            out.append(f"<array{attrs}>")
            for index, item in enumerate(value):
                try:
                    self.value(item, None, depth + 1)
                except _Unpack as exc:
                    exc.path.append(f"[{index}]")
                    raise
            out.append("</array>")
        elif value is True or value is False:
            out.append(f"<boolean{attrs}>{'true' if value else 'false'}</boolean>")
        elif value is None:
            out.append(f"<null{attrs}/>")
        else:
            raise TypeError(f"not a value from jsonxml.parse: {type(value).__name__}")

    def _key(self, key: str) -> str:
        text, escaped = self._string(key)
        flag = ' escaped-key="true"' if escaped else ""
        attrs = f' key="{text.translate(_ATTR)}"{flag}'
        if len(self._keys) < 10_000:  # bounded: keys from outside are not all worth keeping
            self._keys[key] = attrs
        return attrs

    def _string(self, value: str) -> tuple[str, bool]:
        """The string as the element holds it, and whether it is in escaped form."""
        if self.escape:
            if _SPECIAL.search(value) is None:
                return value, False
            return _SPECIAL.sub(_json_escape, value), True
        if _NOT_XML.search(value) is None:
            return value, False
        replace = self.fallback or (lambda _: "\ufffd")
        return _NOT_XML.sub(lambda m: replace(_json_escape(m)), value), False


def _json_escape(match: re.Match[str]) -> str:
    char = match.group()
    return _TWO_CHAR.get(char) or f"\\u{ord(char):04X}"


def _check_number(value: str, limits: Limits) -> None:
    if len(value) > limits.max_number_chars:
        raise _Unpack(
            f"a number of {len(value):,} characters is over the limit of "
            f"{limits.max_number_chars:,}. Hint: send long codes as strings",
            "",
            [],
        )


def _too_deep(limits: Limits) -> str:
    return (
        f"nesting is deeper than the limit of {limits.max_depth} levels. Hint: raise the limit "
        "(json_max_depth) only if the system really nests that deep"
    )


def _duplicate(key: str) -> str:
    return (
        f"the object has the key {key!r} twice. Hint: the sender must fix it, or the endpoint "
        "may choose duplicate_keys: use-first or retain"
    )


def _key_step(key: str) -> str:
    return f".{key}" if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key) else f"[{json.dumps(key)}]"


def _rejected(what: str, exc: _Unpack) -> JsonRejected:
    path = "$" + "".join(reversed(exc.path))
    shown = path if len(path) <= 80 else f"{path[:60]}…{path[-16:]}"
    return JsonRejected(f"{what} at {shown}: {exc.message}", exc.code, path)


# --- fn:xml-to-json ---


def xml_to_json(node: etree._Element | etree._ElementTree, *, what: str = "document") -> str:
    """``fn:xml-to-json``: the JSON text of an element (or document) in the XPath 3.1 vocabulary.

    Raises :class:`JsonRejected` (FOJS0006) naming the offending node when the
    input is not that vocabulary, and (FOJS0007) for a bad escape in escaped form.
    """
    root = node.getroot() if isinstance(node, etree._ElementTree) else node
    parts: list[str] = []
    try:
        _write(root, parts, 0)
    except _Unpack as exc:
        raise JsonRejected(f"{what} cannot be written as JSON: {exc.message}", exc.code) from None
    return "".join(parts)


def _where(element: etree._Element) -> str:
    return element.getroottree().getpath(element)


def _invalid(element: etree._Element, why: str) -> _Unpack:
    return _Unpack(f"{_where(element)}: {why}", "FOJS0006", [])


def _attributes(element: etree._Element, allowed: frozenset[str]) -> None:
    for name in element.keys():  # noqa: SIM118 - lxml: keys() avoids building an attrib proxy
        if name in allowed or (name[0] == "{" and not name.startswith(_NS_PREFIX)):
            continue  # attributes in other namespaces are ignored
        raise _invalid(element, f"attribute '{name}' is not allowed here")


def _flag(element: etree._Element, name: str) -> bool:
    value = element.get(name)
    if value is None:
        return False
    flag = _XS_BOOLEAN.get(value.strip())
    if flag is None:
        raise _invalid(element, f"{name}={value!r} is not an xs:boolean")
    return flag == "true"


def _simple_text(element: etree._Element) -> str:
    if not len(element):
        return element.text or ""
    for child in element:
        if isinstance(child.tag, str):
            raise _invalid(element, f"<{etree.QName(child).localname}> cannot be inside it")
    return "".join(element.itertext())


def _only_whitespace(element: etree._Element) -> None:
    texts = [element.text] + [child.tail for child in element]
    if any(t and t.strip() for t in texts):
        raise _invalid(element, "text is not allowed between its members")


_NS_PREFIX = f"{{{NS}}}"
_KEYED = frozenset({"key", "escaped-key"})
_ALLOWED = {
    MAP: frozenset(),
    ARRAY: frozenset(),
    STRING: frozenset({"escaped"}),
    NUMBER: frozenset(),
    BOOLEAN: frozenset(),
    NULL: frozenset(),
}
#: What a member of a map may carry: its own attributes and the key.
_ALLOWED_KEYED = {tag: allowed | _KEYED for tag, allowed in _ALLOWED.items()}
#: Integers whose xs:double is written exactly as they are (below a million, no leading zero).
_PLAIN_INTEGER = re.compile(r"-?[1-9][0-9]{0,5}|0")


def _write(element: etree._Element, out: list[str], depth: int, in_map: bool = False) -> None:
    if depth > _MAX_XML_DEPTH:
        raise _invalid(element, f"nested deeper than {_MAX_XML_DEPTH} levels")
    tag = element.tag
    # A key is required inside a map, forbidden inside an array, tolerated on the root.
    table = _ALLOWED_KEYED if in_map or depth == 0 else _ALLOWED
    allowed = table.get(tag) if isinstance(tag, str) else None
    if allowed is None:
        raise _invalid(
            element,
            f"<{tag}> is not map, array, string, number, boolean or null in the namespace {NS}",
        )
    if element.keys():  # noqa: SIM118
        _attributes(element, allowed)
    if tag == STRING:
        text = _simple_text(element)
        escaped = _flag(element, "escaped")
        if not escaped and _OUT_PLAIN.search(text) is None:
            out.append(f'"{text}"')
        else:
            out.append(f'"{_out_string(element, text, escaped)}"')
    elif tag == MAP:
        _only_whitespace(element)
        out.append("{")
        seen: set[str] = set()
        first = True
        for child in element:
            if not isinstance(child.tag, str):
                continue  # comments and processing instructions are ignored
            key = child.get("key")
            if key is None:
                raise _invalid(child, "a member of a map needs a key attribute")
            escaped = _flag(child, "escaped-key")
            normalized = _unescape(child, key) if escaped else key
            if normalized in seen:
                raise _invalid(child, f"the map has the key {normalized!r} twice")
            seen.add(normalized)
            if not first:
                out.append(",")
            first = False
            name = key if not escaped and _OUT_PLAIN.search(key) is None else None
            name = name if name is not None else _out_string(child, key, escaped)
            # The common member, a plain string with only its key, without a call per member.
            if (
                child.tag == STRING and not len(child) and len(child.keys()) == 1  # noqa: SIM118
            ):
                text = child.text or ""
                if _OUT_PLAIN.search(text) is None:
                    out.append(f'"{name}":"{text}"')
                    continue
            out.append(f'"{name}":')
            _write(child, out, depth + 1, in_map=True)
        out.append("}")
    elif tag == NUMBER:
        text = _simple_text(element).strip()
        out.append(text if _PLAIN_INTEGER.fullmatch(text) else _number(element, text))
    elif tag == ARRAY:
        _only_whitespace(element)
        out.append("[")
        first = True
        for child in element:
            if not isinstance(child.tag, str):
                continue
            if not first:
                out.append(",")
            first = False
            _write(child, out, depth + 1)
        out.append("]")
    elif tag == BOOLEAN:
        value = _XS_BOOLEAN.get(_simple_text(element).strip())
        if value is None:
            raise _invalid(element, f"{element.text!r} is not an xs:boolean (true, false, 1, 0)")
        out.append(value)
    else:
        if _simple_text(element).strip():
            raise _invalid(element, "null must be empty")
        out.append("null")


def _number(element: etree._Element, text: str) -> str:
    if not _XS_DOUBLE.fullmatch(text):
        raise _invalid(element, f"{text!r} is not a finite xs:double")
    value = float(text)
    if math.isinf(value):
        raise _invalid(element, f"{text!r} is out of the range of xs:double")
    return double_to_string(value)


def double_to_string(value: float) -> str:
    """``xs:string(xs:double)``: decimal form within [1e-6, 1e6), else ``1.5E-7`` form."""
    if value == 0.0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    shortest = Decimal(repr(value)).normalize()  # the shortest digits that round-trip
    if 1e-6 <= abs(value) < 1e6:  # compared as doubles, as XPath compares them
        return format(shortest, "f")
    sign, digits, exponent = shortest.as_tuple()
    assert isinstance(exponent, int)
    mantissa = f"{digits[0]}." + ("".join(map(str, digits[1:])) or "0")
    return f"{'-' if sign else ''}{mantissa}E{exponent + len(digits) - 1}"


def _out_string(element: etree._Element, text: str, escaped: bool) -> str:
    if not escaped:
        return _OUT_PLAIN.sub(_plain_escape, text) if _OUT_PLAIN.search(text) else text

    def replace(match: re.Match[str]) -> str:
        token = match.group()
        if len(token) > 1:
            return token  # a valid escape: copied unchanged
        if token == "\\":
            raise _Unpack(
                f"{_where(element)}: a backslash that does not start a JSON escape in {text!r}",
                "FOJS0007",
                [],
            )
        return _plain_escape(match) if token != "/" else "\\/"

    return _OUT_ESCAPED.sub(replace, text)


def _plain_escape(match: re.Match[str]) -> str:
    char = match.group()
    if char == '"':
        return '\\"'
    return _TWO_CHAR.get(char) or f"\\u{ord(char):04X}"


def _unescape(element: etree._Element, text: str) -> str:
    """An escaped key as the characters it stands for (pairs of surrogates joined)."""
    if any(m.group() == "\\" for m in _ESCAPE_OR_BACKSLASH.finditer(text)):
        raise _Unpack(f"{_where(element)}: a bad JSON escape in {text!r}", "FOJS0007", [])

    def one(match: re.Match[str]) -> str:
        code, simple = match.groups()
        return chr(int(code, 16)) if code else _UNESCAPE[simple]

    raw = _ONE_ESCAPE.sub(one, text)
    return raw.encode("utf-16", "surrogatepass").decode("utf-16", "surrogatepass")
