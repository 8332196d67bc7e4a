"""edXML validation: the project's XSD and the semantic rules, every problem with path and line."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from lxml import etree

from lienthong.plugins.document_axis import edxml
from lienthong.plugins.document_axis.validation import SCHEMA_PATH, Problem, check, errors

DATA = Path(__file__).parent / "data" / "edxml"
WELL_FORMED = [
    "edoc_new.edxml",
    "edoc_update.edxml",
    "status_inbox_01.edxml",
    "status_acceptance_03.edxml",
    "status_finish_06.edxml",
]
TODAY = date(2024, 6, 1)  # after every sample date
HEADER = "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader"


def sample(name: str) -> bytes:
    return (DATA / name).read_bytes()


def messages(problems: list[Problem]) -> str:
    return "\n".join(str(p) for p in problems)


def only(problems: list[Problem], text: str) -> Problem:
    found = [p for p in problems if text in p.message]
    assert len(found) == 1, messages(problems)
    return found[0]


@pytest.mark.parametrize("name", WELL_FORMED)
def test_well_formed_samples_are_valid(name: str) -> None:
    assert check(sample(name), now=TODAY) == []


@pytest.mark.parametrize("name", WELL_FORMED)
def test_xsd_alone_accepts_the_samples(name: str) -> None:
    schema = etree.XMLSchema(etree.parse(str(SCHEMA_PATH)))
    assert schema.validate(etree.fromstring(sample(name))), schema.error_log


def test_xsd_says_it_is_the_projects_own() -> None:
    text = SCHEMA_PATH.read_text(encoding="utf-8")
    assert "No official XSD for edXML is public" in text


def test_xsd_rejects_an_unknown_namespace() -> None:
    schema = etree.XMLSchema(etree.parse(str(SCHEMA_PATH)))
    other = sample("status_finish_06.edxml").replace(
        b"http://www.mic.gov.vn/TBT/QCVN_102_2016", b"urn:example:other"
    )
    assert not schema.validate(etree.fromstring(other))
    [problem] = check(other, now=TODAY)
    assert problem.line == 2
    assert "urn:example:other" in problem.message and "QCVN 102:2016" in problem.message


def test_not_well_formed_template_gives_one_problem_with_line_and_column() -> None:
    [problem] = check(sample("edoc_signed_template.edxml"), now=TODAY)
    assert (problem.line, problem.column) == (116, 39)
    assert "xlink" in problem.message and "line 116, column 39" in problem.message


def test_fixed_template_validates() -> None:
    """With its prefixes declared, the SDK's signed template has the shape the schema allows."""
    fixed = sample("edoc_signed_template.edxml").replace(
        b'<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016">',
        b'<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016" '
        b'xmlns:edXML="http://www.mic.gov.vn/TBT/QCVN_102_2016" '
        b'xmlns:xlink="http://www.w3.org/1999/xlink">',
    )
    problems = check(fixed, now=TODAY)
    # Only its JMeter placeholder instead of base64 is wrong.
    assert [p.path for p in problems] == [
        "/edXML/AttachmentEncoded/Attachment/ContentTransferEncoded"
    ], messages(problems)
    assert "not valid base64" in problems[0].message


def test_status_code_and_meanings() -> None:
    data = sample("status_finish_06.edxml").replace(b">06<", b">99<")
    problem = only(check(data, now=TODAY), "StatusCode")
    assert problem.path == f"{HEADER}/StatusCode"
    assert problem.line == 28
    assert "'99' is not a known status" in problem.message


def test_status_needs_the_document_it_answers() -> None:
    root = etree.fromstring(sample("status_inbox_01.edxml"))
    doc_id = root.find(f".//{{{edxml.NS}}}ResponseFor/{{{edxml.NS}}}DocumentId")
    doc_id.text = ""
    problem = only(check(etree.tostring(root), now=TODAY), "DocumentId is empty")
    assert problem.path == f"{HEADER}/ResponseFor/DocumentId"
    doc_id.getparent().remove(doc_id)
    only(check(etree.tostring(root), now=TODAY), "DocumentId is missing")
    root.find(f".//{{{edxml.NS}}}ResponseFor").getparent().remove(
        root.find(f".//{{{edxml.NS}}}ResponseFor")
    )
    only(check(etree.tostring(root), now=TODAY), "ResponseFor is missing")


def hostile_document() -> bytes:
    """The update sample with one mistake of each kind the rules catch."""
    data = sample("edoc_update.edxml")
    replacements = [
        (b"<edXML:Priority>0<", b"<edXML:Priority>7<"),
        (b"<edXML:PageAmount>22<", b"<edXML:PageAmount>-1<"),
        (b"<edXML:PromulgationAmount>2<", b"<edXML:PromulgationAmount>two<"),
        (b"<edXML:Type>1<", b"<edXML:Type>3<"),
        (b"<edXML:PromulgationDate>2018/09/28<", b"<edXML:PromulgationDate>2099/01/01<"),
        (b"<edXML:DueDate>2018/09/28<", b"<edXML:DueDate>28-09-2018<"),
        (b"<edXML:OrganId>000.00.00.H14<", b"<edXML:OrganId>1.2.3.4.5<"),
        (b"<edXML:Timestamp>2018/09/28 00:00:00<", b"<edXML:Timestamp>2018/09/28<"),
        (b"<edXML:BussinessDocType>2<", b"<edXML:BussinessDocType>9<"),
        (b"<edXML:SteeringType>", b"<edXML:Unexpected>x</edXML:Unexpected><edXML:SteeringType>"),
        (b"<ContentId>cid:209<", b"<ContentId>cid:210<"),
    ]
    for old, new in replacements:
        assert data.count(old) >= 1, old
        data = data.replace(old, new, 1)
    return data


def test_every_problem_is_listed_with_path_and_line() -> None:
    problems = check(hostile_document(), now=TODAY)
    expected = {
        "Priority is 7; expected 0 to 4": f"{HEADER}/OtherInfo/Priority",
        "PageAmount is -1; expected a whole number >= 0": f"{HEADER}/OtherInfo/PageAmount",
        "PromulgationAmount 'two' is not a whole number": f"{HEADER}/OtherInfo/PromulgationAmount",
        "Type '3' must be 1 or 2": f"{HEADER}/DocumentType/Type",
        "PromulgationDate 2099/01/01 is in the future (today is 2024/06/01)": f"{HEADER}/PromulgationInfo/PromulgationDate",
        "DueDate '28-09-2018' is not a date": f"{HEADER}/DueDate",
        "OrganId '1.2.3.4.5' is not an agency code": f"{HEADER}/To[2]/OrganId",
        "Timestamp '2018/09/28' is not a time": "/edXML/edXMLEnvelope/edXMLHeader/TraceHeaderList/TraceHeader/Timestamp",
        "BussinessDocType is 9; expected 0 to 3": "/edXML/edXMLEnvelope/edXMLHeader/TraceHeaderList/Bussiness/BussinessDocType",
        "Element 'Unexpected': This element is not expected": f"{HEADER}/Unexpected",
        "manifest Reference 'cid:209' has no Attachment": "/edXML/edXMLEnvelope/edXMLBody/edXMLManifest/Reference",
        "Attachment 'cid:210' is not listed in edXMLManifest": "/edXML/AttachmentEncoded/Attachment",
    }
    for text, path in expected.items():
        problem = only(problems, text)
        assert problem.path == path, problem
        assert isinstance(problem.line, int) and problem.line > 1
    assert len(problems) == len(expected), messages(problems)
    assert [p.line for p in problems] == sorted(p.line or 0 for p in problems)


def test_lines_point_at_the_element() -> None:
    data = hostile_document()
    lines = data.decode("utf-8").splitlines()
    for problem in check(data, now=TODAY):
        name = problem.path.rsplit("/", 1)[1].split("[")[0]
        assert name in lines[problem.line - 1], problem


def test_no_recipient_and_no_subject() -> None:
    root = etree.fromstring(sample("edoc_update.edxml"))
    header = root.find(f".//{{{edxml.NS}}}MessageHeader")
    for element in header.findall(f"{{{edxml.NS}}}To") + [header.find(f"{{{edxml.NS}}}Subject")]:
        header.remove(element)
    problems = check(etree.tostring(root), now=TODAY)
    assert only(problems, "To is missing").path == HEADER
    assert only(problems, "Subject is missing").path == f"{HEADER}/Subject"
    assert len(problems) == 2, messages(problems)


def test_impossible_dates_are_caught() -> None:
    data = sample("edoc_new.edxml").replace(
        b"<edXML:PromulgationDate>2019/01/16<", b"<edXML:PromulgationDate>2019/02/30<"
    )
    assert "not a real calendar date" in only(check(data, now=TODAY), "2019/02/30").message


def test_dates_are_checked_against_now() -> None:
    assert check(sample("edoc_new.edxml"), now=date(2019, 1, 16)) == []
    problem = only(check(sample("edoc_new.edxml"), now=date(2019, 1, 15)), "in the future")
    assert problem.path == f"{HEADER}/PromulgationInfo/PromulgationDate"


def test_three_group_organ_ids_from_older_systems_are_accepted() -> None:
    # edoc_new's recipient is 28.22.H17, an older three-group code.
    assert b"28.22.H17" in sample("edoc_new.edxml")
    assert check(sample("edoc_new.edxml"), now=TODAY) == []


def test_problem_reads_well() -> None:
    assert str(Problem("/edXML/x", 3, "bad")) == "line 3: /edXML/x: bad"
    assert str(Problem("/", None, "bad")) == "/: bad"


def _business_first(data: bytes) -> bytes:
    """The sample with Bussiness moved before the TraceHeaders, as the vendor library writes it."""
    root = etree.fromstring(data)
    traces = root.find(
        f"{{{edxml.NS}}}edXMLEnvelope/{{{edxml.NS}}}edXMLHeader/{{{edxml.NS}}}TraceHeaderList"
    )
    business = traces.find(f"{{{edxml.NS}}}Bussiness")
    traces.remove(business)
    traces.insert(0, business)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def test_bussiness_before_traceheader_is_valid_and_read() -> None:
    data = _business_first(sample("edoc_new.edxml"))
    assert check(data, now=TODAY) == []
    read = edxml.read(data)
    assert read.business is not None and read.trace_headers


def test_a_second_bussiness_is_an_error() -> None:
    data = sample("edoc_new.edxml")
    start = data.index(b"<edXML:Bussiness>")
    end = data.index(b"</edXML:Bussiness>") + len(b"</edXML:Bussiness>")
    twice = data[:end] + data[start:end] + data[end:]
    problem = only(check(twice, now=TODAY), "a second Bussiness")
    assert problem.is_error and problem.path.endswith("TraceHeaderList/Bussiness[2]")


@pytest.mark.parametrize("organ", [b"", b"null"])
def test_a_traceheader_without_organid_is_a_warning(organ: bytes) -> None:
    data = sample("edoc_new.edxml")
    start = data.index(b"<edXML:TraceHeader>")
    open_at = data.index(b"<edXML:OrganId>", start) + len(b"<edXML:OrganId>")
    close_at = data.index(b"</edXML:OrganId>", open_at)
    problems = check(data[:open_at] + organ + data[close_at:], now=TODAY)
    warning = only(problems, "TraceHeader names no agency")
    assert not warning.is_error and errors(problems) == []
    assert str(warning).startswith(f"line {warning.line}: warning: ")


def test_a_comment_cannot_hide_an_organid_from_the_rules() -> None:
    data = sample("status_finish_06.edxml")
    start = data.index(b"<edXML:OrganId>") + len(b"<edXML:OrganId>")
    hidden = data[:start] + b"<!-- looks fine -->../../x" + data[start:]
    assert "is not an agency code" in only(check(hidden, now=TODAY), "OrganId").message


def test_two_attachments_with_one_content_id_are_both_opened_and_refused() -> None:
    """A receiver keyed by ContentId would see one: a hostile second one must not hide."""
    import base64
    import io
    import zipfile

    document = edxml.read(sample("edoc_new.edxml"))
    assert isinstance(document, edxml.Document)
    [good] = document.attachments
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("x.doc", b"\0" * 2_000_000)
    data = edxml.build(document).replace(
        b"</AttachmentEncoded>",
        b"<Attachment><ContentId>"
        + good.content_id.encode()
        + b"</ContentId><AttachmentName>x.doc</AttachmentName><ContentType>application/zip"
        b"</ContentType><ContentTransferEncoded>"
        + base64.b64encode(bomb.getvalue())
        + b"</ContentTransferEncoded></Attachment></AttachmentEncoded>",
    )
    found = messages(check(data, max_attachment_bytes=1_000_000))
    assert f"a second Attachment with ContentId {good.content_id!r}" in found
    assert "x.doc" in found and "declares 2,000,000 bytes" in found
