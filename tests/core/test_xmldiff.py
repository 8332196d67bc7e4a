"""Node-level XML diff: paths with positions, alignment, JSON vocabulary, what does not count."""

from __future__ import annotations

import pytest
from lxml import etree

from lienthong.xml import XmlRejected
from lienthong.xmldiff import Difference, diff, format_differences, walk

FN = 'xmlns="http://www.w3.org/2005/xpath-functions"'


def lines(old: str, new: str, **kwargs: int) -> list[str]:
    return [str(d) for d in diff(old.encode(), new.encode(), **kwargs)]


def receipt(*amounts: int, total: int | None = None) -> str:
    items = "".join(f'<Item amount="{a}"/>' for a in amounts)
    return f"<Receipt><Items>{items}</Items><Total>{total or sum(amounts)}</Total></Receipt>"


def test_identical_documents_have_no_difference() -> None:
    assert diff(receipt(1, 2).encode(), receipt(1, 2).encode()) == []
    assert diff(etree.fromstring(receipt(1, 2)), etree.fromstring(receipt(1, 2))) == []


def test_a_changed_attribute_is_named_by_its_path_with_positions() -> None:
    assert lines(receipt(10, 10, 10, total=30), receipt(10, 10, 12, total=30)) == [
        "/Receipt[1]/Items[1]/Item[3]/@amount: '10' -> '12'"
    ]


def test_text_changes_added_and_removed_attributes() -> None:
    old = '<r><a x="1" y="2">old</a><b/></r>'
    new = '<r><a x="1" z="3">new</a><b>now</b></r>'
    assert lines(old, new) == [
        "/r[1]/a[1]/@y: removed '2'",
        "/r[1]/a[1]/@z: added '3'",
        "/r[1]/a[1]/text(): 'old' -> 'new'",
        "/r[1]/b[1]/text(): added 'now'",
    ]


def test_a_removed_element_does_not_shift_its_siblings_into_changes() -> None:
    old = "<r>" + "".join(f'<i n="{n}"><v>{n}</v></i>' for n in range(10)) + "</r>"
    new = "<r>" + "".join(f'<i n="{n}"><v>{n}</v></i>' for n in range(10) if n != 3) + "</r>"
    assert lines(old, new) == ['/r[1]/i[4]: removed <i n="3"><v>3</v></i>']
    assert lines(new, old) == ['/r[1]/i[4]: added <i n="3"><v>3</v></i>']


def test_an_inserted_element_and_a_change_further_on_are_both_found() -> None:
    old = "<r>" + "".join(f"<i>{n}</i>" for n in range(6)) + "</r>"
    new = "<r><i>0</i><i>new</i>" + "".join(f"<i>{n}</i>" for n in range(1, 6)) + "</r>"
    new = new.replace("<i>4</i>", "<i>44</i>")
    assert lines(old, new) == [
        "/r[1]/i[2]: added <i>new</i>",
        "/r[1]/i[5]/text(): '4' -> '44'",
    ]


def test_differences_come_in_document_order() -> None:
    old = "<r><a>1</a><b>2</b><c>3</c></r>"
    new = "<r><a>9</a><x/><b>2</b><c>8</c><d/></r>"
    assert lines(old, new) == [
        "/r[1]/a[1]/text(): '1' -> '9'",
        "/r[1]/x[1]: added <x/>",
        "/r[1]/c[1]/text(): '3' -> '8'",
        "/r[1]/d[1]: added <d/>",
    ]


def test_indentation_comments_and_prefixes_do_not_count() -> None:
    old = '<p:r xmlns:p="urn:x"><p:a k="1">v</p:a></p:r>'
    new = '<q:r xmlns:q="urn:x">\n  <!-- note -->\n  <q:a k="1">v</q:a><?pi x?>\n</q:r>'
    assert lines(old, new) == []


def test_namespaced_names_use_the_documents_prefix_or_the_bare_default() -> None:
    old = '<e:doc xmlns:e="urn:e"><e:Code>1</e:Code></e:doc>'
    assert lines(old, old.replace(">1<", ">2<")) == ["/e:doc[1]/e:Code[1]/text(): '1' -> '2'"]
    default = '<doc xmlns="urn:e"><Code>1</Code></doc>'
    assert lines(default, default.replace(">1<", ">2<")) == ["/doc[1]/Code[1]/text(): '1' -> '2'"]
    same_local = '<r><a xmlns="urn:one"/></r>'
    assert lines(same_local, same_local.replace("urn:one", "urn:two")) == [
        '/r[1]/a[1]: removed <a xmlns="urn:one"/>',
        '/r[1]/a[1]: added <a xmlns="urn:two"/>',
    ]


def test_mixed_content_text_is_named_by_its_position() -> None:
    old = "<p>Hello <b>world</b> and <i>all</i> of you</p>"
    new = "<p>Hello <b>world</b> and <i>all</i> of them</p>"
    assert lines(old, new) == ["/p[1]/text()[3]: ' of you' -> ' of them'"]


def test_a_different_root_is_one_removal_and_one_addition() -> None:
    assert lines("<a>1</a>", "<b>1</b>") == ["/a[1]: removed <a>1</a>", "/b[1]: added <b>1</b>"]


def test_long_values_are_cut_around_their_first_difference() -> None:
    text = "Văn bản đến " * 20
    [found] = diff(f"<r>{text}A</r>".encode(), f"<r>{text}B</r>".encode())
    assert found.old is not None and found.new is not None
    assert found.old.startswith("'…") and found.old.endswith("A'")
    assert found.new.endswith("B'") and len(found.new) < 80


def test_limit_stops_after_that_many_differences() -> None:
    old = "<r>" + "<i>0</i>" * 50 + "</r>"
    new = "<r>" + "<i>1</i>" * 50 + "</r>"
    assert len(diff(old.encode(), new.encode())) == 50
    assert lines(old, new, limit=2) == [
        "/r[1]/i[1]/text(): '0' -> '1'",
        "/r[1]/i[2]/text(): '0' -> '1'",
    ]


def test_the_same_inputs_give_the_same_report() -> None:
    old = '<r><a z="1" b="2" m="3"/><c>1</c></r>'
    new = '<r><a m="4" z="5" b="6"/><c>2</c></r>'
    first = format_differences(diff(old.encode(), new.encode()))
    assert first == format_differences(diff(old.encode(), new.encode()))
    assert first.splitlines()[0] == "/r[1]/a[1]/@b: '2' -> '6'"


def test_bytes_that_are_not_xml_are_refused_naming_which_side() -> None:
    with pytest.raises(XmlRejected, match="new document is not well-formed"):
        diff(b"<r/>", b"<r>")


def test_difference_as_a_dict_for_json_output() -> None:
    assert Difference("/r[1]/@a", "changed", "'1'", "'2'").to_dict() == {
        "path": "/r[1]/@a",
        "change": "changed",
        "old": "'1'",
        "new": "'2'",
    }


# --- JSON in the fn:json-to-xml vocabulary ----------------------------------------


def test_json_maps_compare_by_key_whatever_the_order() -> None:
    old = f'<map {FN}><string key="a">1</string><number key="b">2</number></map>'
    new = f'<map {FN}><number key="b">2</number><string key="a">1</string></map>'
    assert lines(old, new) == []


def test_json_paths_values_types_and_entries() -> None:
    old = (
        f'<map {FN}><string key="session">s</string><array key="data">'
        '<map><string key="MaHoSo">H41-1</string><number key="n">1</number></map>'
        '<map><string key="MaHoSo">H41-2</string></map></array>'
        '<boolean key="isUpdating">false</boolean><null key="gone"/></map>'
    )
    new = (
        f'<map {FN}><boolean key="isUpdating">true</boolean><string key="session">s</string>'
        '<array key="data"><map><string key="MaHoSo">H41-1</string><string key="n">1</string></map>'
        '<map><string key="MaHoSo">H41-3</string><null key="Ghi chú"/></map>'
        "<array><number>1</number></array></array></map>"
    )
    assert lines(old, new) == [
        '$.data[0].n: 1 -> "1"',
        '$.data[1].MaHoSo: "H41-2" -> "H41-3"',
        '$.data[1]["Ghi chú"]: added null',
        "$.data[2]: added [1]",
        "$.isUpdating: false -> true",
        "$.gone: removed null",
    ]


def test_json_array_item_removed_is_one_removal() -> None:
    items = "".join(f'<map><string key="id">{n}</string></map>' for n in range(5))
    fewer = "".join(f'<map><string key="id">{n}</string></map>' for n in range(5) if n != 1)
    assert lines(f"<array {FN}>{items}</array>", f"<array {FN}>{fewer}</array>") == [
        '$[1]: removed {"id":"1"}'
    ]


def test_walk_gives_every_element_its_path_in_document_order() -> None:
    root = etree.fromstring("<r><a/><b><a/><a/></b><a/></r>")
    assert [path for _, path in walk(root)] == [
        "/r[1]",
        "/r[1]/a[1]",
        "/r[1]/b[1]",
        "/r[1]/b[1]/a[1]",
        "/r[1]/b[1]/a[2]",
        "/r[1]/a[2]",
    ]
    json_root = etree.fromstring(f'<map {FN}><array key="x y"><string>v</string></array></map>')
    assert [path for _, path in walk(json_root)] == ["$", '$["x y"]', '$["x y"][0]']


# --- hostile shapes ------------------------------------------------------------------


def nested(depth: int, tag: str, leaf: str, namespace: str | None = None) -> etree._Element:
    name = f"{{{namespace}}}{tag}" if namespace else tag
    root = etree.Element(name)
    el = root
    for _ in range(depth):
        el = etree.SubElement(el, name)
    if namespace:
        el = etree.SubElement(el, f"{{{namespace}}}string")
    el.text = leaf
    return root


def test_outputs_nested_deeper_than_python_recurses_are_compared() -> None:
    # XSLT may nest far deeper than the parser lets an input: 3,000 template calls.
    [found] = diff(nested(5000, "a", "x"), nested(5000, "a", "y"))
    assert found.path.endswith("/a[1]/a[1]/text()") and (found.old, found.new) == ("'x'", "'y'")
    fn = "http://www.w3.org/2005/xpath-functions"
    [found] = diff(nested(5000, "array", "x", fn), nested(5000, "array", "y", fn))
    assert found.path.startswith("$[0][0]") and (found.old, found.new) == ('"x"', '"y"')


def test_a_huge_added_subtree_is_shown_cut_short() -> None:
    fn = "http://www.w3.org/2005/xpath-functions"
    old = etree.Element(f"{{{fn}}}array")
    new = etree.Element(f"{{{fn}}}array")
    new.append(nested(5000, "array", "z", fn))
    [found] = diff(old, new)
    assert found.change == "added" and found.new is not None and len(found.new) <= 72
    many = etree.fromstring("<r>" + "<i>v</i>" * 50_000 + "</r>")
    assert len(diff(etree.Element("r"), many)) == 50_000
    assert [str(d) for d in diff(etree.Element("r"), many, limit=2)] == [
        "/r[1]/i[1]: added <i>v</i>",
        "/r[1]/i[2]: added <i>v</i>",
    ]


def test_a_few_changes_among_twenty_thousand_siblings() -> None:
    old = "<r>" + "".join(f"<i>{n}</i>" for n in range(20_000)) + "</r>"
    new = "<r>" + "".join(f"<i>{n if n % 5000 else 'x'}</i>" for n in range(20_000)) + "</r>"
    assert lines(old, new) == [
        "/r[1]/i[1]/text(): '0' -> 'x'",
        "/r[1]/i[5001]/text(): '5000' -> 'x'",
        "/r[1]/i[10001]/text(): '10000' -> 'x'",
        "/r[1]/i[15001]/text(): '15000' -> 'x'",
    ]
