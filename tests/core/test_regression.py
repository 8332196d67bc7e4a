"""The regression check behind ``mapping diff``: old stored version vs current file, per input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lienthong import regression
from lienthong.mapping import Mapping, MappingLibrary
from lienthong.regression import Sample

HEAD = '<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">\n'
TAIL = "\n</xsl:stylesheet>\n"
SUMMARY = (
    '<xsl:template match="/batch"><summary agency="{@agency}" total="{sum(v)}">'
    '<xsl:for-each select="v"><line n="{position()}"><xsl:value-of select="."/></line>'
    "</xsl:for-each></summary></xsl:template>"
)


def batch(n: int) -> bytes:
    """Five values under 49, except that 37 batches in 1,000 have a 49 third."""
    values = [(n * 7 + i) % 49 for i in range(5)]
    if n % 27 == 5:
        values[2] = 49
    return f'<batch agency="000.00.{n % 84:02d}.H41">{"".join(f"<v>{v}</v>" for v in values)}</batch>'.encode()


def versions(tmp_path: Path, old: str, new: str) -> tuple[Mapping, Mapping]:
    """The old text as a store would keep it, and the file as it is now."""
    sheet = tmp_path / "summary.xsl"
    sheet.write_text(HEAD + old + TAIL, encoding="utf-8")
    stored = MappingLibrary(tmp_path).get("summary.xsl").version.to_text()
    sheet.write_text(HEAD + new + TAIL, encoding="utf-8")
    library = MappingLibrary(tmp_path)
    return library.load_version(stored), library.get("summary.xsl")


def test_finds_exactly_the_inputs_whose_output_the_change_affects(tmp_path: Path) -> None:
    # The new version rounds values of 49 up to 50: it changes the batches holding one.
    changed = SUMMARY.replace(
        '<xsl:value-of select="."/>',
        '<xsl:value-of select="number(.) + (number(.) = 49)"/>',
    )
    old, new = versions(tmp_path, SUMMARY, changed)
    samples = [Sample(f"m{n}", batch(n)) for n in range(1000)]
    report = regression.check(old, new, samples, examples=5)
    assert report.counts == {"identical": 963, "differs": 37, "fails": 0}
    assert [e.key for e in report.examples] == ["m5", "m32", "m59", "m86", "m113"]
    assert [str(d) for d in report.examples[0].differences] == [
        "/summary[1]/line[3]/text(): '49' -> '50'"
    ]
    assert report.changed and report.old != report.new


def test_an_input_the_new_version_rejects_now_fails(tmp_path: Path) -> None:
    strict = SUMMARY.replace(
        "<summary",
        "<xsl:if test=\"not(starts-with(@agency, '000.00.0'))\">"
        '<xsl:message terminate="yes">unknown agency <xsl:value-of select="@agency"/></xsl:message>'
        "</xsl:if><summary",
    )
    old, new = versions(tmp_path, SUMMARY, strict)
    report = regression.check(old, new, [Sample("ok", batch(3)), Sample("bad", batch(15))])
    assert report.counts == {"identical": 1, "differs": 0, "fails": 1}
    [failed] = report.examples
    assert failed.key == "bad" and failed.status == "fails"
    assert failed.error is not None and "unknown agency 000.00.15.H41" in failed.error


def test_the_same_rejection_on_another_line_is_not_a_change(tmp_path: Path) -> None:
    refuse = (
        '<xsl:template match="/"><xsl:message terminate="yes">no batch</xsl:message></xsl:template>'
    )
    old, new = versions(tmp_path, refuse, "\n\n" + refuse)
    outcome = regression.compare(old, new, Sample("x", b"<other/>"))
    assert outcome.status == "identical"


def test_an_input_only_the_new_version_maps_is_a_difference(tmp_path: Path) -> None:
    refuse = (
        '<xsl:template match="/"><xsl:message terminate="yes">no batch</xsl:message></xsl:template>'
    )
    old, new = versions(tmp_path, refuse, SUMMARY)
    outcome = regression.compare(old, new, Sample("x", batch(1)))
    assert outcome.status == "differs"
    assert outcome.error is not None and outcome.error.startswith("the old version failed")


def test_indentation_alone_is_not_a_difference(tmp_path: Path) -> None:
    old, new = versions(tmp_path, SUMMARY, '<xsl:output indent="yes"/>' + SUMMARY)
    outcome = regression.compare(old, new, Sample("x", batch(2)))
    assert outcome.status == "identical" and outcome.differences == ()


def test_params_reach_both_versions(tmp_path: Path) -> None:
    with_param = '<xsl:param name="unit" select="\'dong\'"/>' + SUMMARY.replace(
        'total="{sum(v)}"', 'total="{sum(v)}" unit="{$unit}"'
    )
    old, new = versions(tmp_path, with_param, with_param.replace("{$unit}", "{$unit}s"))
    outcome = regression.compare(old, new, Sample("x", batch(2), {"unit": "million"}))
    assert [str(d) for d in outcome.differences] == ["/summary[1]/@unit: 'million' -> 'millions'"]


def test_the_report_as_text_and_json(tmp_path: Path) -> None:
    old, new = versions(
        tmp_path, SUMMARY, SUMMARY.replace('agency="{@agency}"', 'agency="{@agency}-x"')
    )
    report = regression.check(
        old, new, [Sample("m1", batch(1)), Sample("m2", batch(2))], examples=1
    )
    text = regression.format_report(report).splitlines()
    assert text == [
        f"{report.old[:12]} -> {report.new[:12]}: 0 identical, 2 differ, 0 now fail",
        "m1: differs",
        "  /summary[1]/@agency: '000.00.01.H41' -> '000.00.01.H41-x'",
    ]
    data = json.loads(json.dumps(report.to_dict()))
    assert data["counts"] == {"identical": 0, "differs": 2, "fails": 0}
    assert data["examples"][0]["differences"][0]["change"] == "changed"


def test_an_unchanged_mapping_reports_nothing(tmp_path: Path) -> None:
    old, new = versions(tmp_path, SUMMARY, SUMMARY)
    report = regression.check(old, new, [Sample(str(n), batch(n)) for n in range(50)])
    assert not report.changed and report.counts["identical"] == 50 and report.old == report.new


@pytest.mark.parametrize("body", [b"<unclosed>", b""])
def test_an_input_neither_version_can_read_is_not_a_change(tmp_path: Path, body: bytes) -> None:
    old, new = versions(tmp_path, SUMMARY, SUMMARY)
    outcome = regression.compare(old, new, Sample("x", body))
    assert outcome.status == "identical" and outcome.error and "input x" in outcome.error
