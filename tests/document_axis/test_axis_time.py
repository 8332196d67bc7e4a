"""edXML dates and times are Vietnam's, whatever zone the machine running the bus is in.

CI caught this at 20:00 UTC: the one-stop system dated an opinion letter 2026/12/03
(already the day in Vietnam), and the axis adapter refused to send it as dated in
the future because the machine's ``date.today()`` still said 2026/12/02.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner
from freezegun import freeze_time
from lxml import etree

from lienthong import cli
from lienthong.mapping import MappingLibrary
from lienthong.plugins.document_axis import edxml
from lienthong.plugins.document_axis.validation import check

REPO = Path(__file__).resolve().parents[2]
SAMPLE = Path(__file__).parent / "data" / "edxml" / "edoc_new.edxml"
#: 03:00 on 3 December in Vietnam, still 2 December in UTC.
EVENING_UTC = datetime(2026, 12, 2, 20, 0, tzinfo=UTC)


def dated(day: str) -> bytes:
    """The sample document, promulgated on ``day`` (yyyy/MM/dd)."""
    root = etree.fromstring(SAMPLE.read_bytes())
    found = root.find(f".//{{{edxml.NS}}}PromulgationInfo/{{{edxml.NS}}}PromulgationDate")
    assert found is not None
    found.text = day
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def future_problems(data: bytes) -> list[str]:
    return [str(p) for p in check(data) if "in the future" in p.message]


def test_the_axis_day_turns_at_17_00_utc() -> None:
    assert edxml.axis_today(EVENING_UTC) == date(2026, 12, 3)
    assert edxml.axis_today(datetime(2026, 12, 2, 16, 59, tzinfo=UTC)) == date(2026, 12, 2)
    assert edxml.axis_now(EVENING_UTC).strftime(edxml.TIMESTAMP_FORMAT) == "2026/12/03 03:00:00"


@freeze_time(EVENING_UTC)
def test_a_document_dated_today_in_vietnam_is_not_in_the_future_at_20_00_utc() -> None:
    assert future_problems(dated("2026/12/03")) == []
    [problem] = future_problems(dated("2026/12/04"))
    assert "PromulgationDate 2026/12/04 is in the future (today is 2026/12/03)" in problem


@freeze_time(EVENING_UTC)
def test_the_validate_command_takes_vietnams_day_by_default(tmp_path: Path) -> None:
    letter = tmp_path / "letter.edxml"
    letter.write_bytes(dated("2026/12/03"))
    result = CliRunner().invoke(cli.build(), ["edxml", "validate", str(letter)])
    assert "in the future" not in result.output
    letter.write_bytes(dated("2026/12/04"))
    result = CliRunner().invoke(cli.build(), ["edxml", "validate", str(letter)])
    assert result.exit_code == 1
    assert "today is 2026/12/03" in result.output


def test_the_status_01_we_send_is_stamped_in_vietnam_time() -> None:
    """The mapping's clock is libxslt's, which no Python fake reaches: compare with now."""
    mapping = MappingLibrary(REPO / "mappings").get("flows/document-to-status-01.xsl")
    params = {"organ_id": "000.00.15.H15", "organ_name": "Sở Y tế"}
    before = edxml.axis_now().replace(tzinfo=None, microsecond=0)
    status = etree.fromstring(mapping.apply_bytes(SAMPLE.read_bytes(), params))
    after = edxml.axis_now().replace(tzinfo=None)
    stamp = status.findtext(f".//{{{edxml.NS}}}Timestamp")
    assert stamp is not None
    written = datetime.strptime(stamp, edxml.TIMESTAMP_FORMAT)
    assert before <= written <= after + timedelta(seconds=1), (stamp, before, after)
