"""The one-stop -> portal mappings beyond their cases: the date function, a status the map lacks.

The cases themselves run with ``lienthong mapping test`` (CI runs it).
"""

from __future__ import annotations

import json

import pytest

from lienthong import jsonxml, xml
from lienthong.host import PluginHost
from lienthong.mapping import MappingError, MappingLibrary
from lienthong.plugins.rest_json.functions import format_datetime
from tests.busproject import REPO


@pytest.mark.parametrize(
    ("value", "pattern", "expected"),
    [
        ("2026-03-02T08:15:00+07:00", "yyyyMMddHHmmss", "20260302081500"),
        ("2026-03-02T01:15:00Z", "yyyyMMddHHmmss", "20260302081500"),
        ("2026-03-01T20:00:00-05:00", "dd/MM/yyyy HH:mm", "02/03/2026 08:00"),
        ("2026-03-02T08:15:00", "yyyyMMdd", "20260302"),  # no offset: already Vietnam's time
        ("", "yyyyMMddHHmmss", ""),
    ],
)
def test_format_datetime_writes_times_in_the_zone_and_form_asked(
    value: str, pattern: str, expected: str
) -> None:
    assert format_datetime(None, value, pattern, "Asia/Ho_Chi_Minh") == expected


def test_format_datetime_refuses_what_it_cannot_read() -> None:
    with pytest.raises(ValueError, match="not an ISO 8601 time"):
        format_datetime(None, "02/03/2026", "yyyyMMdd", "Asia/Ho_Chi_Minh")
    with pytest.raises(ValueError, match="unknown time zone 'Asia/Hanoi'"):
        format_datetime(None, "2026-03-02T08:15:00Z", "yyyyMMdd", "Asia/Hanoi")


def test_a_local_status_missing_from_the_map_stops_the_message_with_the_fix() -> None:
    library = MappingLibrary(REPO / "mappings", functions=PluginHost().xpath_functions)
    case = REPO / "mappings/onestop/dossier-to-portal.cases/new-dossier/input.xml"
    dossier = json.loads(jsonxml.xml_to_json(xml.parse_file(case)))
    dossier["dossierStatus"] = "interoperating"
    tree = xml.parse(jsonxml.json_to_xml(json.dumps(dossier)))
    with pytest.raises(
        MappingError, match="no portal status for the local status 'interoperating'"
    ):
        library.get("onestop/dossier-to-portal.xsl").apply(tree, {})
    mapped = library.get("onestop/dossier-to-portal.xsl").apply(
        tree, {"status_map": "interoperating=4"}
    )
    assert '"TrangThaiHoSo":"4"' in jsonxml.xml_to_json(mapped)


# --- the fourth reference flow: an opinion asked through the axis, the result mailed ---

OPINION = REPO / "mappings/onestop/dossier-to-edxml-opinion.cases/waiting-for-ubnd"


def _library() -> MappingLibrary:
    return MappingLibrary(REPO / "mappings", functions=PluginHost().xpath_functions)


def test_the_answer_to_an_opinion_request_finds_its_dossier_again() -> None:
    """dossier → letter → the asked agency's status 06 about it → a step for that dossier."""
    from lienthong.plugins.document_axis import edxml

    library = _library()
    params = json.loads((OPINION / "params.json").read_text(encoding="utf-8"))
    letter = edxml.read(
        xml.serialize(
            library.get("onestop/dossier-to-edxml-opinion.xsl").apply(
                xml.parse_file(OPINION / "input.xml"), params
            )
        )
    )
    assert isinstance(letter, edxml.Document)
    answer = edxml.Status(
        sender=edxml.Organization(organ_id="000.00.00.H15", organ_name="UBND tỉnh Đắk Lắk"),
        response_for=edxml.ResponseFor(
            organ_id=letter.sender.organ_id,
            code=f"{letter.code_number}/{letter.code_notation}",
            promulgation_date=letter.promulgation_date,
            document_id=letter.document_id,
        ),
        staff=edxml.StaffInfo(department="Văn phòng", staff="Văn thư"),
        status_code="06",
        description="Đã xử lý xong: thống nhất",
        timestamp="2026/12/03 09:00:00",
    )
    step = json.loads(
        jsonxml.xml_to_json(
            library.get("onestop/opinion-to-step.xsl").apply(xml.parse(edxml.build(answer)), {})
        )
    )
    assert step["dossierNo"] == "000.00.16.H15-261202-0002"
    assert step["stepStatus"] == "processing"
    assert "UBND tỉnh Đắk Lắk (000.00.00.H15, trạng thái 06)" in step["actionNote"]


def test_a_dossier_of_another_agency_is_not_asked_about_through_this_one() -> None:
    params = json.loads((OPINION / "params.json").read_text(encoding="utf-8"))
    tree = xml.parse_file(OPINION / "input.xml")
    with pytest.raises(MappingError, match=r"is not numbered 000\.00\.15\.H15-YYMMDD-XXXX.*Hint"):
        _library().get("onestop/dossier-to-edxml-opinion.xsl").apply(
            tree, {**params, "organ_id": "000.00.15.H15"}
        )


def test_a_status_about_another_letter_is_not_taken_for_an_opinion() -> None:
    case = REPO / "mappings/onestop/opinion-to-step.cases/ubnd-done/input.xml"
    text = case.read_text(encoding="utf-8").replace("2612020002/LYK-SGD<", "215/QĐ-UBND<")
    with pytest.raises(MappingError, match="not a letter numbered YYMMDDXXXX.*Hint"):
        _library().get("onestop/opinion-to-step.xsl").apply(xml.parse(text.encode()), {})


def test_a_result_without_a_contact_address_is_parked_naming_the_dossier() -> None:
    case = REPO / "mappings/onestop/dossier-to-result-mail.cases/done/input.xml"
    dossier = json.loads(jsonxml.xml_to_json(xml.parse_file(case)))
    dossier["contactEmail"] = ""
    tree = xml.parse(jsonxml.json_to_xml(json.dumps(dossier)))
    with pytest.raises(MappingError, match="'000.00.15.H15-261202-0001' has no contactEmail"):
        _library().get("onestop/dossier-to-result-mail.xsl").apply(tree, {})
