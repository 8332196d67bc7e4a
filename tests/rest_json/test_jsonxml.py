"""JSON <-> XML against the rules of XPath 3.1 fn:json-to-xml and fn:xml-to-json (F&O §17.5).

The examples are the specification's own where it gives them; the property
tests in tests/property/test_jsonxml_roundtrip.py cover arbitrary JSON.
"""

from __future__ import annotations

import pytest
from lxml import etree

from lienthong import jsonxml, xml

NS = jsonxml.NS


def to_xml(text: str | bytes, **options: object) -> etree._Element:
    return xml.parse(jsonxml.json_to_xml(text, **options)).getroot()  # type: ignore[arg-type]


def from_xml(markup: str) -> str:
    return jsonxml.xml_to_json(etree.fromstring(markup))


def canonical(element: etree._Element) -> str:
    return etree.tostring(element, encoding="unicode")


def test_the_specifications_first_example() -> None:
    root = to_xml('{"x": 1, "y": [3,4,5]}')
    assert canonical(root) == (
        f'<map xmlns="{NS}"><number key="x">1</number>'
        '<array key="y"><number>3</number><number>4</number><number>5</number></array></map>'
    )


def test_a_top_level_string_and_the_escape_examples() -> None:
    assert canonical(to_xml('"abcd"')) == f'<string xmlns="{NS}">abcd</string>'
    plain = to_xml(r'{"x": "\\", "y": "\u0025"}')
    assert [e.text for e in plain] == ["\\", "%"] and plain[0].get("escaped") is None
    escaped = to_xml(r'{"x": "\\", "y": "\u0025"}', escape=True)
    assert (escaped[0].text, escaped[0].get("escaped")) == ("\\\\", "true")
    assert (escaped[1].text, escaped[1].get("escaped")) == ("%", None)


def test_every_json_type_has_its_element() -> None:
    root = to_xml(
        '{"s": "Sở Y tế", "n": -1.50e+3, "t": true, "f": false, "z": null, "o": {}, "a": []}'
    )
    assert [(etree.QName(e).localname, e.get("key"), e.text) for e in root] == [
        ("string", "s", "Sở Y tế"),
        ("number", "n", "-1.50e+3"),  # as written: the lexical form is kept
        ("boolean", "t", "true"),
        ("boolean", "f", "false"),
        ("null", "z", None),
        ("map", "o", None),
        ("array", "a", None),
    ]


def test_characters_xml_cannot_hold_are_replaced_or_passed_to_the_fallback() -> None:
    text = r'{"k\u0001": "a\u0000b\uDEADc"}'
    root = to_xml(text)
    assert (root[0].get("key"), root[0].text) == ("k\ufffd", "a\ufffdb\ufffdc")
    seen: list[str] = []
    fallback = to_xml(text, fallback=lambda s: seen.append(s) or f"[{s[1:]}]")
    assert fallback[0].text == "a[u0000]b[uDEAD]c"
    assert seen == ["\\u0001", "\\u0000", "\\uDEAD"]
    escaped = to_xml(text, escape=True)[0]
    assert (escaped.get("key"), escaped.get("escaped-key")) == ("k\\u0001", "true")
    assert escaped.text == "a\\u0000b\\uDEADc"
    with pytest.raises(ValueError, match="FOJS0005"):
        jsonxml.json_to_xml("[]", escape=True, fallback=str)


def test_keys_and_text_that_look_like_markup_stay_text() -> None:
    root = to_xml('{"<a href=\\"x\\">&amp;": "</string><string>\\r\\n\\t"}')
    assert root[0].get("key") == '<a href="x">&amp;'
    assert root[0].text == "</string><string>\r\n\t", "CR, LF and TAB survive the XML round"
    assert jsonxml.xml_to_json(
        root
    ) == r'{"<a href=\"x\">&amp;":"<\/string><string>\r\n\t"}'.replace("<\\/", "</")


@pytest.mark.parametrize(
    ("policy", "expected"),
    [("use-first", '{"a":1,"b":3}'), ("retain", None)],
)
def test_the_duplicates_policies(policy: str, expected: str | None) -> None:
    root = to_xml('{"a": 1, "b": 3, "a": 2}', duplicates=policy)
    if expected is None:
        assert [e.get("key") for e in root] == ["a", "b", "a"]
    else:
        assert jsonxml.xml_to_json(root) == expected
    with pytest.raises(jsonxml.JsonRejected, match=r"at \$.a: .*key 'a' twice.*FOJS0003"):
        jsonxml.json_to_xml('{"a": 1, "b": 3, "a": 2}', duplicates="reject")


def test_duplicates_are_judged_after_unescaping() -> None:
    # The W3C test json-to-xml-042: "\n" and "\u000A" are the same key.
    with pytest.raises(jsonxml.JsonRejected, match="FOJS0003"):
        jsonxml.json_to_xml(r'{"\n": 1, "\u000A": 2}', escape=True, duplicates="reject")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"{'a': 1}", "not valid JSON: Expecting property name enclosed in double quotes"),
        (b"[1, 2,]", "not valid JSON"),
        (b"[NaN]", "NaN is not JSON"),
        (b'["a\tb"]', "Invalid control character"),
        (b"[01]", "not valid JSON"),
        (b"\xc3\x28", "not valid UTF-8: byte 0xc3 at offset 0"),
        (b"", "not valid JSON: Expecting value"),
    ],
)
def test_what_is_not_json_is_refused_with_fojs0001(text: bytes, message: str) -> None:
    with pytest.raises(jsonxml.JsonRejected, match=message) as caught:
        jsonxml.json_to_xml(text)
    assert caught.value.code == "FOJS0001"


def test_a_byte_order_mark_is_ignored() -> None:
    assert to_xml(b"\xef\xbb\xbf[true]")[0].text == "true"


def test_limits_name_the_place_and_the_fix() -> None:
    limits = jsonxml.Limits(max_bytes=1000, max_depth=3, max_number_chars=5)
    with pytest.raises(
        jsonxml.JsonRejected, match=r"at \$.a.b\[0\]\[0\]: nesting is deeper than the limit of 3"
    ):
        jsonxml.json_to_xml('{"a": {"b": [[[1]]]}}', limits=limits)
    with pytest.raises(jsonxml.JsonRejected, match=r'at \$\["fee vnd"\]: a number of 6 characters'):
        jsonxml.json_to_xml('{"fee vnd": 123456}', limits=limits)
    with pytest.raises(jsonxml.JsonRejected, match="1,001 bytes, over the limit of 1,000"):
        jsonxml.json_to_xml(b"[" + b" " * 999 + b"]", limits=limits)


@pytest.mark.parametrize(
    ("literal", "written"),
    [
        ("1", "1"),
        ("1.0", "1"),
        ("-0", "-0"),
        ("0.0", "0"),
        ("1e6", "1.0E6"),
        ("999999.5", "999999.5"),
        ("0.000001", "0.000001"),
        ("1e-7", "1.0E-7"),
        ("12345678901234567890", "1.2345678901234567E19"),
        ("0.1", "0.1"),
        ("1.5E-10", "1.5E-10"),
        ("  42  ", "42"),
    ],
)
def test_numbers_are_written_as_xs_string_of_xs_double(literal: str, written: str) -> None:
    assert from_xml(f'<number xmlns="{NS}">{literal}</number>') == written


@pytest.mark.parametrize(
    ("markup", "message"),
    [
        ("<map/>", "<map> is not map, array, string"),
        (f'<map xmlns="{NS}"><string>x</string></map>', "needs a key attribute"),
        (
            f'<array xmlns="{NS}"><string key="k">x</string></array>',
            "attribute 'key' is not allowed",
        ),
        (f'<map xmlns="{NS}">text<null key="a"/></map>', "text is not allowed between"),
        (f'<boolean xmlns="{NS}">yes</boolean>', "is not an xs:boolean"),
        (f'<number xmlns="{NS}">INF</number>', "is not a finite xs:double"),
        (f'<number xmlns="{NS}">1e999</number>', "out of the range of xs:double"),
        (f'<number xmlns="{NS}">1_000</number>', "is not a finite xs:double"),
        (f'<string xmlns="{NS}" kind="x">a</string>', "attribute 'kind' is not allowed"),
        (f'<null xmlns="{NS}">x</null>', "null must be empty"),
        (f'<string xmlns="{NS}"><string/></string>', "<string> cannot be inside it"),
        (
            f'<map xmlns="{NS}"><null key="a"/><null key="a"/></map>',
            "the map has the key 'a' twice",
        ),
        (
            f'<map xmlns="{NS}"><null key="\\u0041" escaped-key="true"/><null key="A"/></map>',
            "the map has the key 'A' twice",
        ),
    ],
)
def test_xml_outside_the_vocabulary_is_refused_with_fojs0006(markup: str, message: str) -> None:
    with pytest.raises(jsonxml.JsonRejected, match=message) as caught:
        from_xml(markup)
    assert caught.value.code == "FOJS0006"


def test_escaped_strings_copy_valid_escapes_and_refuse_bad_ones() -> None:
    assert (
        from_xml(f'<string xmlns="{NS}" escaped="true">a\\u00e9\\n"/</string>')
        == r'"a\u00e9\n\"\/"'
    )
    assert from_xml(f'<string xmlns="{NS}" escaped="false">a\\n</string>') == r'"a\\n"'
    with pytest.raises(jsonxml.JsonRejected, match="FOJS0007"):
        from_xml(f'<string xmlns="{NS}" escaped="true">a\\x41</string>')


def test_what_the_vocabulary_ignores_is_ignored() -> None:
    markup = (
        f'<j:map xmlns:j="{NS}" xmlns:o="urn:other" o:note="ignored" key="ignored at the top">'
        '<!-- a comment --><?pi x?>\n  <j:number key="n">\n 7 \n</j:number>'
        '<j:boolean key="b"> 1 </j:boolean></j:map>'
    )
    assert from_xml(markup) == '{"n":7,"b":true}'


def test_controls_are_escaped_on_the_way_out() -> None:
    written = from_xml(f'<string xmlns="{NS}">\t\x7f\u0085\\"&#13;</string>')
    assert written == r'"\t\u007F\u0085\\\"\r"'
