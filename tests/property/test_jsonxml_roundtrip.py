"""JSON <-> XML (XPath 3.1 fn:json-to-xml / fn:xml-to-json) on arbitrary JSON: nothing lost.

- any JSON value, converted with ``escape: true`` and back, is the same value
  (numbers compared as the xs:double the rules make of them);
- without ``escape``, any JSON whose strings XML can hold comes back exactly, and
  a character XML cannot hold comes back as U+FFFD, as the specification says;
- a number keeps the exact characters it was written with inside the XML;
- duplicate keys follow the three ``duplicates`` policies;
- any bytes at all give XML the hardened parser accepts, or a ``JsonRejected``.

Budgets: see ``strategies.budget``.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lienthong import jsonxml, xml
from tests.property.strategies import budget

# Every Python str json.dumps can write, lone surrogates and control characters included.
any_text = st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=20)


def xml_char(c: str) -> bool:
    """XML 1.0's Char production."""
    cp = ord(c)
    return c in "\t\n\r" or 0x20 <= cp <= 0xD7FF or 0xE000 <= cp <= 0xFFFD or cp >= 0x10000


xml_text = st.text(st.characters(min_codepoint=0x09).filter(xml_char), max_size=20)
numbers = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
)


def json_values(text: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    scalars = st.one_of(st.none(), st.booleans(), numbers, text)
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=5), st.dictionaries(text, inner, max_size=5)
        ),
        max_leaves=25,
    )


def as_doubles(value: Any) -> Any:
    """The value as fn:xml-to-json gives it back: every number through xs:double."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, list):
        return [as_doubles(v) for v in value]
    return {k: as_doubles(v) for k, v in value.items()}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def same(a: Any, b: Any) -> bool:
    """Equal, with -0.0 and 0.0 told apart (the rules keep the sign of zero)."""
    if _number(a) and _number(b):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def round_trip(text: str, **options: Any) -> Any:
    data = jsonxml.json_to_xml(text.encode("utf-8", "surrogatepass"), **options)
    tree = xml.parse(data, what="generated XML")  # the bus's own hardened parser takes it
    return json.loads(jsonxml.xml_to_json(tree), parse_int=float)  # "-0" is negative zero


@settings(max_examples=budget(300))
@given(json_values(any_text))
def test_any_json_survives_with_escape(value: Any) -> None:
    text = json.dumps(value)  # ASCII with \u escapes: lone surrogates and controls included
    assert same(round_trip(text, escape=True), as_doubles(value))


@settings(max_examples=budget(300))
@given(json_values(xml_text))
def test_json_xml_can_hold_survives_without_escape(value: Any) -> None:
    text = json.dumps(value, ensure_ascii=False)
    assert same(round_trip(text), as_doubles(value))


@settings(max_examples=budget(200))
@given(st.lists(st.one_of(xml_text, any_text), min_size=1, max_size=4))
def test_characters_xml_cannot_hold_become_the_replacement_character(parts: list[str]) -> None:
    value = "".join(parts)
    expected = "".join(c if xml_char(c) else "\ufffd" for c in value)
    assert round_trip(json.dumps(value)) == expected


literals = st.builds(
    lambda sign, whole, frac, exp: f"{sign}{whole}{frac}{exp}",
    st.sampled_from(["", "-"]),
    st.one_of(st.just("0"), st.from_regex(r"[1-9][0-9]{0,15}", fullmatch=True)),
    st.one_of(st.just(""), st.from_regex(r"\.[0-9]{1,10}", fullmatch=True)),
    st.one_of(st.just(""), st.from_regex(r"[eE][+-]?[0-9]{1,2}", fullmatch=True)),
)


@settings(max_examples=budget(300))
@given(literals)
def test_a_number_keeps_its_lexical_form_and_comes_back_as_its_double(literal: str) -> None:
    tree = xml.parse(jsonxml.json_to_xml(f"[{literal}]"))
    [number] = tree.getroot()
    assert number.text == literal
    back = jsonxml.xml_to_json(tree)
    assert json.loads(back) == [float(literal)]
    assert back == f"[{jsonxml.double_to_string(float(literal))}]"


@settings(max_examples=budget(200))
@given(st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 9)), min_size=1, max_size=6))
def test_duplicate_keys_follow_the_policy(pairs: list[tuple[str, int]]) -> None:
    text = "{" + ",".join(f'"{k}":{v}' for k, v in pairs) + "}"
    keys = [k for k, _ in pairs]
    duplicated = len(set(keys)) < len(keys)
    if duplicated:
        with pytest.raises(jsonxml.JsonRejected) as caught:
            jsonxml.json_to_xml(text, duplicates="reject")
        assert caught.value.code == "FOJS0003"
    first: dict[str, int] = {}
    for k, v in pairs:
        first.setdefault(k, v)
    assert round_trip(text, duplicates="use-first") == first
    retained = xml.parse(jsonxml.json_to_xml(text, duplicates="retain")).getroot()
    assert [(e.get("key"), int(e.text)) for e in retained] == pairs
    if duplicated:  # the XML then breaks the vocabulary's own rule: xml-to-json refuses it
        with pytest.raises(jsonxml.JsonRejected, match="twice") as caught:
            jsonxml.xml_to_json(retained)
        assert caught.value.code == "FOJS0006"


@settings(max_examples=budget(300))
@given(
    st.one_of(
        st.binary(max_size=200),
        json_values(any_text).map(lambda v: json.dumps(v).encode()),
    ).flatmap(
        lambda b: st.tuples(st.just(b), st.integers(0, max(len(b), 1)), st.binary(max_size=4))
    )
)
def test_any_bytes_give_parseable_xml_or_a_clear_refusal(case: tuple[bytes, int, bytes]) -> None:
    data, cut, junk = case
    mutated = data[:cut] + junk + data[cut + len(junk) :]
    try:
        out = jsonxml.json_to_xml(mutated, duplicates="reject")
    except jsonxml.JsonRejected as exc:
        assert str(exc)
        return
    tree = xml.parse(out)
    jsonxml.xml_to_json(tree)  # and whatever came in goes out again
