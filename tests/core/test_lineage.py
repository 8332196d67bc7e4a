"""Field lineage: each output value's input node(s), checked against hand-written expectations.

The shipped mappings' own test cases first (copy, concatenation, attributes,
for-each with sort and grouping, computed values), then small stylesheets for
each way a marker could be lost or could change what the mapping does.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lienthong import xml
from lienthong.lineage import LineageError, Origin, format_lineage, lineage
from lienthong.mapping import MappingError, MappingLibrary

REPO = Path(__file__).resolve().parents[2]
SHIPPED = MappingLibrary(REPO / "mappings")
HEAD = '<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">\n'
EDXML = "/edXML[1]/edXML:edXMLEnvelope[1]/edXML:edXMLHeader[1]/edXML:MessageHeader[1]"
VOUCHERS = "/acc:ListVoucherChangesResponse[1]/acc:vouchers[1]"


def shipped_case(mapping: str, case: str) -> dict[str, Origin]:
    folder = REPO / "mappings" / mapping.replace(".xsl", ".cases") / case
    params_file = folder / "params.json"
    params = json.loads(params_file.read_text()) if params_file.exists() else {}
    origins = lineage(SHIPPED.get(mapping), (folder / "input.xml").read_bytes(), params)
    return {o.path: o for o in origins}


def where(origin: Origin) -> tuple[str, tuple[str, ...]]:
    return origin.how, origin.sources


def trace(
    tmp_path: Path, templates: str, source: str, params: dict[str, str] | None = None
) -> dict[str, Origin]:
    (tmp_path / "m.xsl").write_text(HEAD + templates + "\n</xsl:stylesheet>\n", encoding="utf-8")
    mapping = MappingLibrary(tmp_path).get("m.xsl")
    return {o.path: o for o in lineage(mapping, source.encode(), params)}


# --- the shipped mappings' test cases ----------------------------------------------


def test_application_to_receipt_copies_attributes_text_and_params() -> None:
    found = shipped_case("onestop/application-to-receipt.xsl", "basic")
    assert {path: where(o) for path, o in found.items()} == {
        "/receipt[1]/issuer[1]/text()": ("copy", ("$issuer",)),
        "/receipt[1]/caseNumber[1]/text()": ("copy", ("/application[1]/@id",)),
        "/receipt[1]/procedure[1]/text()": ("copy", ("/application[1]/procedure[1]/@code",)),
        # normalize-space of a value that had nothing to trim is the value itself
        "/receipt[1]/procedureName[1]/text()": ("copy", ("/application[1]/procedure[1]/text()",)),
        "/receipt[1]/applicant[1]/text()": (
            "copy",
            ("/application[1]/applicant[1]/name[1]/text()",),
        ),
        # translate(submitted, '-', '/') keeps the marker: built from it
        "/receipt[1]/receivedOn[1]/text()": ("derived", ("/application[1]/submitted[1]/text()",)),
        # count(documents/document)
        "/receipt[1]/documents[1]/@count": ("computed", ()),
        "/receipt[1]/documents[1]/document[1]/text()": (
            "copy",
            ("/application[1]/documents[1]/document[1]/text()",),
        ),
        "/receipt[1]/documents[1]/document[2]/text()": (
            "copy",
            ("/application[1]/documents[1]/document[2]/text()",),
        ),
    }
    assert found["/receipt[1]/receivedOn[1]/text()"].value == "2026/11/27"


def test_document_to_status_joins_two_input_values_into_one() -> None:
    found = shipped_case("flows/document-to-status-01.xsl", "budget-decision")
    head = "/edXML:edXML[1]/edXML:edXMLEnvelope[1]/edXML:edXMLHeader[1]/edXML:MessageHeader[1]"
    code = found[f"{head}/edXML:ResponseFor[1]/edXML:Code[1]/text()"]
    assert code.value == "215/QĐ-UBND"
    assert where(code) == (
        "derived",
        (
            f"{EDXML}/edXML:Code[1]/edXML:CodeNumber[1]/text()",
            f"{EDXML}/edXML:Code[1]/edXML:CodeNotation[1]/text()",
        ),
    )
    assert where(found[f"{head}/edXML:ResponseFor[1]/edXML:OrganId[1]/text()"]) == (
        "copy",
        (f"{EDXML}/edXML:From[1]/edXML:OrganId[1]/text()",),
    )
    assert where(found[f"{head}/edXML:Timestamp[1]/text()"]) == ("copy", ("$timestamp",))
    # A literal in the stylesheet.
    assert where(found[f"{head}/edXML:StatusCode[1]/text()"]) == ("computed", ())


def test_voucher_summary_sorted_and_grouped_by_agency() -> None:
    found = shipped_case("accounting/voucher-list-to-summary.xsl", "two-agencies")
    # Sorted by agency code: the first agency is the third voucher's.
    first = found["/s:voucherSummary[1]/s:agency[1]/@code"]
    assert first.value == "000.00.01.H41"
    assert where(first) == ("copy", (f"{VOUCHERS}/acc:voucher[3]/acc:agencyCode[1]/text()",))
    assert not first.alike
    # The second groups three vouchers (one written ' 000.00.15.H41 '): any of them.
    second = found["/s:voucherSummary[1]/s:agency[2]/@code"]
    assert second.value == "000.00.15.H41" and second.alike
    assert where(second) == (
        "copy",
        tuple(f"{VOUCHERS}/acc:voucher[{n}]/acc:agencyCode[1]/text()" for n in (1, 2, 4)),
    )
    assert where(found["/s:voucherSummary[1]/@period"]) == ("copy", ("$period",))
    # Sums and counts are arithmetic, over the vouchers' kinds and amounts; the
    # agency codes count too, since they decide which group comes first.
    receipts = found["/s:voucherSummary[1]/s:agency[2]/s:receipts[1]/text()"]
    assert receipts.value == "125000001"
    assert where(receipts) == (
        "computed",
        (
            f"{VOUCHERS}/acc:voucher[1]/acc:kind[1]/text()",
            f"{VOUCHERS}/acc:voucher[1]/acc:amount[1]/text()",
            f"{VOUCHERS}/acc:voucher[3]/acc:agencyCode[1]/text()",
            f"{VOUCHERS}/acc:voucher[4]/acc:kind[1]/text()",
            f"{VOUCHERS}/acc:voucher[4]/acc:amount[1]/text()",
        ),
    )
    total = found["/s:voucherSummary[1]/s:total[1]/s:payments[1]/text()"]
    assert where(total) == (
        "computed",
        (
            f"{VOUCHERS}/acc:voucher[2]/acc:kind[1]/text()",
            f"{VOUCHERS}/acc:voucher[2]/acc:amount[1]/text()",
        ),
    )


def test_staff_records_attributes_and_values_through_string_functions() -> None:
    found = shipped_case("directory/staff-list-to-records.xsl", "so-tai-chinh")
    staff = "/DuLieuCanBo[1]/DonVi[1]/CanBo[2]"
    record = "/records[1]/record[2]"
    # ' TTB ' lower-cased by translate into the record's key attribute.
    assert found[f"{record}/@key"].value == "ttb"
    assert where(found[f"{record}/@key"]) == ("derived", (f"{staff}/TaiKhoan[1]/text()",))
    # '  Trần   Thị Bình ' through normalize-space, and its last word by recursion.
    assert where(found[f"{record}/field[1]/text()"]) == (
        "derived",
        (f"{staff}/HoVaTen[1]/text()",),
    )
    assert found[f"{record}/field[2]/text()"].value == "Bình"
    assert where(found[f"{record}/field[2]/text()"]) == (
        "derived",
        (f"{staff}/HoVaTen[1]/text()",),
    )
    # The enclosing unit's attribute.
    assert where(found[f"{record}/field[6]/text()"]) == ("copy", ("/DuLieuCanBo[1]/DonVi[1]/@Ma",))
    # The first word, by substring-before: a part of the value, computed from it.
    assert where(found[f"{record}/field[3]/text()"]) == (
        "computed",
        (f"{staff}/HoVaTen[1]/text()",),
    )
    # A constant attribute.
    assert where(found[f"{record}/field[1]/@name"]) == ("computed", ())


def test_budget_estimate_agency_chosen_by_a_param() -> None:
    found = shipped_case(
        "accounting/budget-decision-to-post-estimate.xsl", "chosen-agency-in-millions"
    )
    estimate = "/acc:PostBudgetEstimate[1]/acc:estimate[1]"
    agency = found[f"{estimate}/acc:agencyCode[1]/text()"]
    # The allocation is picked by comparing its agency with the param: they are equal.
    assert agency.alike and where(agency) == (
        "copy",
        ("/budgetDecision[1]/allocation[2]/@agency", "$agency"),
    )
    assert where(found[f"{estimate}/acc:chapter[1]/text()"]) == (
        "copy",
        ("/budgetDecision[1]/allocation[2]/chapter[1]/text()",),
    )
    # number(translate(...)) * 1000000 for unit="million", formatted.
    assert where(found[f"{estimate}/acc:amount[1]/text()"]) == (
        "computed",
        (
            "/budgetDecision[1]/allocation[2]/amount[1]/@unit",
            "/budgetDecision[1]/allocation[2]/amount[1]/text()",
        ),
    )


# --- the technique, case by case ---------------------------------------------------

ITEMS = (
    "<list><item code='A'><amount>10</amount></item><item code='B'><amount>30</amount></item>"
    "<item code='C'><amount>20</amount></item></list>"
)


def test_a_numeric_sort_keeps_each_value_with_its_own_item(tmp_path: Path) -> None:
    found = trace(
        tmp_path,
        '<xsl:template match="/list"><out total="{sum(item/amount)}">'
        '<xsl:for-each select="item"><xsl:sort select="amount" data-type="number" order="descending"/>'
        '<row code="{@code}"><xsl:value-of select="amount"/></row></xsl:for-each></out></xsl:template>',
        ITEMS,
    )
    assert [(p, o.value) for p, o in found.items() if p.endswith("text()")] == [
        ("/out[1]/row[1]/text()", "30"),
        ("/out[1]/row[2]/text()", "20"),
        ("/out[1]/row[3]/text()", "10"),
    ]
    assert where(found["/out[1]/row[1]/text()"]) == ("copy", ("/list[1]/item[2]/amount[1]/text()",))
    assert where(found["/out[1]/row[1]/@code"]) == ("copy", ("/list[1]/item[2]/@code",))
    assert where(found["/out[1]/row[3]/@code"]) == ("copy", ("/list[1]/item[1]/@code",))
    assert where(found["/out[1]/@total"]) == (
        "computed",
        tuple(f"/list[1]/item[{n}]/amount[1]/text()" for n in (1, 2, 3)),
    )


def test_a_string_sort_with_names_that_prefix_each_other(tmp_path: Path) -> None:
    names = ["Anh", "An", "Bình", "An Bình", "an"]
    source = "<l>" + "".join(f"<n>{n}</n>" for n in names) + "</l>"
    found = trace(
        tmp_path,
        '<xsl:template match="/l"><o><xsl:for-each select="n"><xsl:sort select="."/>'
        '<v><xsl:value-of select="."/></v></xsl:for-each></o></xsl:template>',
        source,
    )
    in_order = sorted(names, key=lambda n: n.encode())
    for position, name in enumerate(in_order, start=1):
        origin = found[f"/o[1]/v[{position}]/text()"]
        assert origin.value == name
        assert where(origin) == ("copy", (f"/l[1]/n[{names.index(name) + 1}]/text()",))


def test_grouping_by_codes_that_prefix_each_other_keeps_groups_and_order(tmp_path: Path) -> None:
    codes = ["H41.02", "H41", "H41.02", "H41"]
    source = "<l>" + "".join(f"<v><a>{c}</a></v>" for c in codes) + "</l>"
    found = trace(
        tmp_path,
        '<xsl:key name="by" match="v" use="a"/>'
        '<xsl:template match="/l"><o><xsl:for-each select="v[generate-id() = '
        'generate-id(key(\'by\', a)[1])]"><xsl:sort select="a"/>'
        '<g code="{a}" n="{count(key(\'by\', a))}"/></xsl:for-each></o></xsl:template>',
        source,
    )
    first, second = found["/o[1]/g[1]/@code"], found["/o[1]/g[2]/@code"]
    assert (first.value, second.value) == ("H41", "H41.02")
    assert first.alike and second.alike
    assert where(first) == ("copy", ("/l[1]/v[2]/a[1]/text()", "/l[1]/v[4]/a[1]/text()"))
    assert where(second) == ("copy", ("/l[1]/v[1]/a[1]/text()", "/l[1]/v[3]/a[1]/text()"))


def test_concatenation_lists_every_source_in_order(tmp_path: Path) -> None:
    found = trace(
        tmp_path,
        '<xsl:template match="/p"><o><xsl:value-of select="concat(last, \', \', first)"/>'
        "</o></xsl:template>",
        "<p><first>An</first><last>Nguyễn</last></p>",
    )
    assert found["/o[1]/text()"].value == "Nguyễn, An"
    assert where(found["/o[1]/text()"]) == (
        "derived",
        ("/p[1]/last[1]/text()", "/p[1]/first[1]/text()"),
    )


def test_a_date_rebuilt_with_substrings_is_computed_from_it(tmp_path: Path) -> None:
    found = trace(
        tmp_path,
        '<xsl:template match="/a"><o on="{concat(substring(d, 9, 2), \'/\', substring(d, 6, 2),'
        ' \'/\', substring(d, 1, 4))}" n="{count(x)}" k="v1"/></xsl:template>',
        "<a><d>2026-11-27</d><x>1</x><x>2</x></a>",
    )
    assert found["/o[1]/@on"].value == "27/11/2026"
    assert where(found["/o[1]/@on"]) == ("computed", ("/a[1]/d[1]/text()",))
    # A count depends on no value, a constant on nothing.
    assert where(found["/o[1]/@n"]) == ("computed", ())
    assert where(found["/o[1]/@k"]) == ("computed", ())


def test_a_value_compared_with_a_literal_is_matched_not_marked(tmp_path: Path) -> None:
    found = trace(
        tmp_path,
        '<xsl:template match="/d"><o><xsl:if test="status = \'paid\'">'
        '<s><xsl:value-of select="status"/></s></xsl:if><n><xsl:value-of select="note"/></n>'
        "</o></xsl:template>",
        "<d><status>paid</status><note>ok</note></d>",
    )
    assert where(found["/o[1]/s[1]/text()"]) == ("matched", ("/d[1]/status[1]/text()",))
    assert where(found["/o[1]/n[1]/text()"]) == ("copy", ("/d[1]/note[1]/text()",))


def test_a_lookup_by_key_between_input_values(tmp_path: Path) -> None:
    found = trace(
        tmp_path,
        '<xsl:key name="agency" match="agency" use="@code"/>'
        '<xsl:template match="/d"><o><xsl:for-each select="doc">'
        "<r from=\"{key('agency', @from)/name}\"/></xsl:for-each></o></xsl:template>",
        "<d><agency code='H41'><name>Sở Y tế</name></agency>"
        "<agency code='H53'><name>Sở Tài chính</name></agency>"
        "<doc from='H53'/><doc from='H41'/></d>",
    )
    assert where(found["/o[1]/r[1]/@from"]) == ("copy", ("/d[1]/agency[2]/name[1]/text()",))
    assert where(found["/o[1]/r[2]/@from"]) == ("copy", ("/d[1]/agency[1]/name[1]/text()",))


def test_a_value_that_changes_between_runs_is_computed(tmp_path: Path) -> None:
    found = trace(
        tmp_path,
        '<xsl:template match="/d"><o id="{generate-id(v)}"><xsl:value-of select="v"/></o>'
        "</xsl:template>",
        "<d><v>x</v></d>",
    )
    assert where(found["/o[1]/@id"]) == ("computed", ())
    assert where(found["/o[1]/text()"]) == ("copy", ("/d[1]/v[1]/text()",))


def test_a_value_used_as_an_element_name_cannot_carry_a_marker(tmp_path: Path) -> None:
    found = trace(
        tmp_path,
        '<xsl:template match="/d"><o><xsl:element name="{@kind}">'
        '<xsl:value-of select="@kind"/></xsl:element></o></xsl:template>',
        "<d kind='receipt'/>",
    )
    assert where(found["/o[1]/receipt[1]/text()"]) == ("matched", ("/d[1]/@kind",))


def test_mixed_content_and_json_vocabulary_paths(tmp_path: Path) -> None:
    found = trace(
        tmp_path,
        '<xsl:template match="/p"><o><xsl:value-of select="text()[2]"/></o></xsl:template>',
        "<p>Hello <b>world</b> and all</p>",
    )
    assert where(found["/o[1]/text()"]) == ("copy", ("/p[1]/text()[2]",))
    fn = "http://www.w3.org/2005/xpath-functions"
    found = trace(
        tmp_path,
        f'<xsl:template match="/" xmlns:fn="{fn}"><map xmlns="{fn}"><string key="id">'
        "<xsl:value-of select=\"fn:map/fn:array/fn:map[2]/fn:string[@key='MaHoSo']\"/>"
        "</string></map></xsl:template>",
        f'<map xmlns="{fn}"><array key="data"><map><string key="MaHoSo">H41-1</string></map>'
        '<map><string key="MaHoSo">H41-2</string></map></array></map>',
    )
    assert where(found["$.id"]) == ("copy", ("$.data[1].MaHoSo",))


def test_a_mapping_that_fails_on_the_input_says_so(tmp_path: Path) -> None:
    with pytest.raises(MappingError, match="no id"):
        trace(
            tmp_path,
            '<xsl:template match="/"><xsl:message terminate="yes">no id</xsl:message>'
            "</xsl:template>",
            "<d/>",
        )


def test_an_input_holding_the_marker_characters_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LineageError, match=r"/d\[1\]/@x holds characters U\+E000"):
        trace(tmp_path, '<xsl:template match="/"><o/></xsl:template>', "<d x='\ue001'/>")


def test_the_input_is_left_as_it_was(tmp_path: Path) -> None:
    (tmp_path / "m.xsl").write_text(
        HEAD + '<xsl:template match="/"><o><xsl:value-of select="d"/></o></xsl:template>'
        "</xsl:stylesheet>"
    )
    tree = xml.parse(b"<d>v</d>")
    lineage(MappingLibrary(tmp_path).get("m.xsl"), tree)
    assert xml.serialize(tree).endswith(b"<d>v</d>")


def test_format_lineage_one_line_per_value() -> None:
    many = tuple(f"/i[1]/n[{k}]/text()" for k in range(1, 8))
    text = format_lineage(
        [
            Origin("/o[1]/@a", "x", "copy", ("/i[1]/@a",)),
            Origin("/o[1]/b[1]/text()", "H41", "copy", ("/i[1]/v[1]/text()", "$p"), alike=True),
            Origin("/o[1]/c[1]/text()", "3", "computed"),
            Origin("/o[1]/d[1]/text()", "28", "computed", many),
        ]
    )
    assert text.splitlines() == [
        "/o[1]/@a = 'x' <- /i[1]/@a (copy)",
        "/o[1]/b[1]/text() = 'H41' <- one of /i[1]/v[1]/text(), $p (copy)",
        "/o[1]/c[1]/text() = '3' <- computed",
        "/o[1]/d[1]/text() = '28' <- computed from /i[1]/n[1]/text(), /i[1]/n[2]/text(), "
        "/i[1]/n[3]/text(), /i[1]/n[4]/text(), 3 more",
    ]


def test_values_are_changed_in_kind_for_the_influence_runs() -> None:
    from lienthong.lineage import _perturbed

    assert _perturbed("2026-11-27") == "3137-22-38"
    assert _perturbed("Xã An-9") == "Yx Xx-0"
