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
