"""edXML both ways between lienthong and the vendor's own library (EdXML102 0.0.3).

Documents and statuses built by the vendor library validate in lienthong, read
with the same fields as the vendor parser reads, and flow through a bus to a
document system; documents and statuses lienthong builds and signs parse with
the vendor parser, giving the fields lienthong wrote.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from lienthong.bus import Bus
from lienthong.plugins.document_axis import edxml, validation
from lienthong.plugins.document_axis.client import AxisClient
from lienthong.plugins.document_axis.sandbox import SandboxAxis
from lienthong.plugins.document_axis.signature import sign, throwaway_key, verify

A, B = "000.00.00.H41", "000.00.01.H41"
DOCUMENT_ID = f"{A},2026/12/02,7816/UBND-VP"
SYSTEMS = {"dms-a": ("secret-a-0123", A), "dms-b": ("secret-b-4567", B)}
FILES = {
    "bao-cao.pdf": b"%PDF-1.4\n% bao cao\n%%EOF\n",
    "bien-ban.docx": b"PK\x03\x04 a word file",
    "du-toan.xlsx": b"PK\x03\x04 a spreadsheet",
    "ghi-chu.txt": "Ghi chú: nộp trước ngày 15".encode(),
}


def lienthong_fields(data: bytes) -> dict[str, list[str]]:
    """What lienthong reads, in the field names the Java driver prints."""
    read = edxml.read(data)
    if isinstance(read, edxml.Status):
        return {
            "kind": ["status"],
            "document_id": [read.document_id or ""],
            "sender": [read.sender.organ_id or ""],
            "sender_name": [read.sender.organ_name or ""],
            "status_code": [read.status_code or ""],
            "description": [read.description or ""],
            "timestamp": [read.timestamp or ""],
        }
    fields = {
        "kind": ["document"],
        "document_id": [read.document_id or ""],
        "sender": [read.sender.organ_id or ""],
        "sender_name": [read.sender.organ_name or ""],
        "recipients": [",".join(read.recipient_ids)],
        "code_number": [read.code_number or ""],
        "code_notation": [read.code_notation or ""],
        "subject": [read.subject or ""],
        "promulgation_date": [read.promulgation_date or ""],
        "attachment": [
            f"{a.name}|{a.content_type}|{hashlib.sha256(a.extract(10**7)[1]).hexdigest()}"
            for a in read.attachments
        ],
    }
    if read.business is not None:
        fields["business_type"] = [read.business.doc_type or ""]
    if read.trace_headers:
        fields["trace"] = [f"{t.organ_id or ''}@{t.timestamp or ''}" for t in read.trace_headers]
    return fields


@pytest.fixture(scope="module")
def built(vendor, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A document (four attachments) and a status, as the vendor library writes them."""
    folder = tmp_path_factory.mktemp("vendor-built")
    paths = []
    for name, payload in FILES.items():
        path = folder / name
        path.write_bytes(payload)
        paths.append(str(path))
    out = folder / "out"
    out.mkdir()
    [document] = vendor.run("VendorEdxml", "build-ed", str(out), A, B, DOCUMENT_ID, *paths)
    [status] = vendor.run("VendorEdxml", "build-status", str(out), B, A, DOCUMENT_ID, "03")
    return {"document": Path(document[4:]), "status": Path(status[4:])}


def test_the_vendor_document_has_the_shapes_real_systems_send(built) -> None:
    text = built["document"].read_text(encoding="utf-8")
    # Bussiness before TraceHeader; PDF and Word raw with their own type; the rest zipped.
    assert text.index("<edXML:Bussiness>") < text.index("<edXML:TraceHeader>")
    found = edxml.read(built["document"].read_bytes())
    assert isinstance(found, edxml.Document)
    assert {a.name: a.content_type for a in found.attachments} == {
        "bao-cao.pdf": "application/pdf",
        "bien-ban.docx": "application/docx",
        "du-toan.xlsx": "application/zip",
        "ghi-chu.txt": "application/zip",
    }


@pytest.mark.parametrize("kind", ["document", "status"])
def test_vendor_built_messages_validate(built, kind: str) -> None:
    problems = validation.check(built[kind].read_bytes())
    assert validation.errors(problems) == [], "\n".join(map(str, problems))


@pytest.mark.parametrize(("kind", "parser"), [("document", "parse-ed"), ("status", "parse-status")])
def test_lienthong_reads_the_fields_the_vendor_parser_reads(
    vendor, built, kind: str, parser: str
) -> None:
    theirs = vendor.fields("VendorEdxml", parser, str(built[kind]))
    ours = lienthong_fields(built[kind].read_bytes())
    assert ours == theirs


def test_a_vendor_document_flows_through_the_bus_to_the_document_system(
    built, lienthong_bus: Callable[..., Bus], tmp_path: Path
) -> None:
    body = built["document"].read_bytes()
    with SandboxAxis(SYSTEMS, [A, B]) as axis:
        sender = AxisClient(axis.url, "dms-a", _secret("dms-a"))
        try:
            doc_id = sender.send(body, organ_id=A)
        finally:
            sender.session.close()
        bus = lienthong_bus(
            endpoints={
                "axis-b": {
                    "adapter": "axis",
                    "url": axis.url,
                    "system_id": "dms-b",
                    "secret": SYSTEMS["dms-b"][0],
                    "organ_id": B,
                    "sandbox": True,
                    "timeout": 5,
                },
                "dms-in": {
                    "adapter": "folder",
                    "path": "dms-in",
                    "direction": "out",
                    "filename": "{edxml_kind}-{key}.xml",
                },
            },
            routes=[{"name": "to-dms", "from": "axis-b", "to": "dms-in"}],
        )
        totals = bus.run(once=True)
        assert (totals.received, totals.delivered) == (1, 1), totals
        assert bus.store.dead_letters() == []
        assert axis.snapshot()["inbox"][B] == [
            {"docId": doc_id, "messageType": "edoc", "from": A, "status": "done"}
        ]
    [delivered] = (tmp_path / "dms-in").glob("*.xml")
    assert delivered.name.startswith("document-") and delivered.read_bytes() == body


def _secret(system: str):
    from lienthong.adapter import Secret

    return Secret(SYSTEMS[system][0])


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A document and a status lienthong builds and signs, as files for the vendor parser."""
    key = throwaway_key("Văn thư UBND tỉnh thử nghiệm")
    document = edxml.Document(
        sender=edxml.Organization(organ_id=A, organ_name="UBND tỉnh Nghệ An"),
        recipients=[
            edxml.Organization(organ_id=B, organ_name="Sở Tài chính"),
            edxml.Organization(organ_id="000.00.15.H41", organ_name="Sở Y tế"),
        ],
        document_id=DOCUMENT_ID,
        code_number="7816",
        code_notation="UBND-VP",
        place="Nghệ An",
        promulgation_date="2026/12/02",
        document_type="1",
        type_name="Công văn",
        subject="V/v báo cáo tình hình thực hiện dự toán ngân sách",
        trace_headers=[edxml.TraceHeader(organ_id=A, timestamp="2026/12/02 08:30:00")],
        business=edxml.Business(doc_type="0", paper="0"),
        attachments=[edxml.Attachment.from_file(n, p) for n, p in FILES.items()],
    )
    status = edxml.Status(
        sender=edxml.Organization(organ_id=B, organ_name="Sở Tài chính"),
        response_for=edxml.ResponseFor(
            organ_id=A, code="7816/UBND-VP", promulgation_date="2026/12/02", document_id=DOCUMENT_ID
        ),
        staff=edxml.StaffInfo(department="Văn phòng Sở", staff="Văn thư"),
        status_code="03",
        description="Đã tiếp nhận và vào sổ văn bản đến",
        timestamp="2026/12/02 09:15:00",
    )
    folder = tmp_path_factory.mktemp("lienthong-built")
    paths = {}
    for name, message in (("document", document), ("status", status)):
        data = sign(edxml.build(message), key)
        assert verify(data).subject
        paths[name] = folder / f"{name}.edxml"
        paths[name].write_bytes(data)
    return paths


@pytest.mark.parametrize(("kind", "parser"), [("document", "parse-ed"), ("status", "parse-status")])
def test_the_vendor_parser_reads_lienthongs_signed_messages_with_the_same_fields(
    vendor, signed, kind: str, parser: str
) -> None:
    theirs = vendor.fields("VendorEdxml", parser, str(signed[kind]))
    ours = lienthong_fields(signed[kind].read_bytes())
    assert theirs == ours
    if kind == "document":
        assert theirs["recipients"] == [f"{B},000.00.15.H41"]
        assert len(theirs["attachment"]) == len(FILES)
