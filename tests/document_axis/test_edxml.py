"""edXML model: reading every sample, building like the samples, trace headers, attachments."""

from __future__ import annotations

import base64
import io
import stat
import struct
import tracemalloc
import zipfile
from datetime import datetime
from pathlib import Path

import pytest
from lxml import etree

from lienthong.errors import RejectedError
from lienthong.plugins.document_axis import edxml
from lienthong.plugins.document_axis.edxml import (
    Attachment,
    Business,
    Document,
    Organization,
    OtherInfo,
    Receiver,
    Replacement,
    ResponseFor,
    Signer,
    StaffInfo,
    Status,
    TraceHeader,
)
from lienthong.plugins.document_axis.validation import check

DATA = Path(__file__).parent / "data" / "edxml"
WELL_FORMED = [
    "edoc_new.edxml",
    "edoc_update.edxml",
    "status_inbox_01.edxml",
    "status_acceptance_03.edxml",
    "status_finish_06.edxml",
]


def sample(name: str) -> bytes:
    return (DATA / name).read_bytes()


def c14n(data: bytes) -> bytes:
    return etree.tostring(etree.fromstring(data).getroottree(), method="c14n")


def vietnamese_document() -> Document:
    return Document(
        sender=Organization(
            organ_id="000.00.00.H15",
            organization_in_charge="Ủy ban nhân dân tỉnh Đắk Lắk",
            organ_name="Văn phòng UBND tỉnh Đắk Lắk",
            organ_add="Số 03, đường Trường Thi, Thành phố Vinh",
            email="vanthu@daklak.gov.vn",
            telephone="0238 3840418",
        ),
        recipients=[
            Organization(organ_id="000.00.00.G22", organ_name="Văn phòng Chính phủ"),
            Organization(organ_id="000.00.15.H51", organ_name="Sở Thông tin và Truyền thông"),
        ],
        document_id="000.00.00.H15,2024/03/15,123/UBND-VX",
        code_number="123",
        code_notation="UBND-VX",
        place="Đắk Lắk",
        promulgation_date="2024/03/15",
        document_type="1",
        type_detail="0",
        type_name="Công văn",
        subject="V/v triển khai liên thông văn bản điện tử; ký tự đặc biệt <&> “ngoặc”",
        content="Nội dung: Đề nghị các đơn vị phối hợp thực hiện.",
        signer=Signer(
            competence="KT. CHỦ TỊCH", position="Phó Chủ tịch", full_name="Nguyễn Văn Đức"
        ),
        due_date="2024/04/30",
        to_places=["Các sở, ban, ngành", "UBND các huyện, thành, thị"],
        other_info=OtherInfo(
            priority="2",
            sphere="Liên thông văn bản quốc gia",
            typer_notation="NVA",
            promulgation_amount="5",
            page_amount="3",
            direction="false",
            appendixes=["Phụ lục I: Danh sách đơn vị"],
        ),
        steering_type="1",
        trace_headers=[TraceHeader("000.00.00.H15", "2024/03/15 08:30:00")],
        business=Business(
            doc_type="3",
            reason="Thay thế văn bản",
            paper="0",
            document_info="1",
            document_receiver="1",
            receivers=[Receiver("000.00.00.G22", "0")],
            replacements=[Replacement("000.00.00.H15,2024/03/01,100/UBND-VX", ["000.00.00.G22"])],
            staff=StaffInfo("Văn thư", "Trần Thị Hằng", "hang@daklak.gov.vn", "0912000001"),
        ),
        attachments=[
            Attachment.from_file("Công văn 123.pdf", b"%PDF-1.4 sample", "application/pdf")
        ],
    )


# ---------------------------------------------------------------- reading


@pytest.mark.parametrize("name", WELL_FORMED)
def test_every_well_formed_sample_parses(name: str) -> None:
    message = edxml.read(sample(name))
    assert message.kind == ("status" if name.startswith("status") else "document")


def test_new_document_fields() -> None:
    doc = edxml.read(sample("edoc_new.edxml"))
    assert isinstance(doc, Document)
    assert doc.sender.organ_id == "000.00.00.A80"
    assert doc.sender.organ_name == "UBND xã Hòa Tiến - UBND huyện Hòa Vang - Thành phố Đà Nẵng"
    assert doc.recipient_ids == ["28.22.H17"]
    assert doc.document_id == "000.00.00.G22,2015/09/30,7816/VPCP-TTĐT"
    assert (doc.code_number, doc.code_notation) == ("74fass22", "VPCP-TTĐT")
    assert (doc.place, doc.promulgation_date) == ("Hà Nội", "2019/01/16")
    assert (doc.document_type, doc.type_detail, doc.type_name) == ("1", "0", "Công văn")
    assert doc.signer == Signer(
        "TL. BO TRUONG", "Cuc truong cuc ung dung cong nghe thong tin", "Nguyen Thanh Phuc"
    )
    assert doc.to_places == ["Cac bo va co quan ngang bo", "Uy ban nhan dan cac tinh, TP"]
    assert doc.other_info is not None and doc.other_info.page_amount == "22"
    assert doc.other_info.appendixes == [
        "Công văn về việc kết nối, liên thông phần mềm quản lý văn bản"
    ]
    assert doc.steering_type == "1"
    assert doc.trace_headers == [TraceHeader("000.00.00.G22", "2018/09/28 00:00:00")]
    assert doc.business is not None
    assert (doc.business.doc_type, doc.business.doc_type_name) == ("0", "new")
    assert doc.business.staff == StaffInfo(
        "Văn thư văn phòng", "Nguyễn Thị Ngọc Trâm", "vanthuvanphong@gov.vn", "84912000001"
    )
    [attachment] = doc.attachments
    assert attachment.content_id == "cid:209"
    assert attachment.name == "1896_QD-TTg_m_294779.doc"
    assert attachment.content_type == attachment.manifest_content_type == "application/zip"
    entry, payload = attachment.extract(max_bytes=10_000_000)
    assert entry == "32da2890-1a55-4ccd-9ac9-cd0d98559e67.edxml"
    assert len(payload) == 388347


def test_update_document_business_receivers() -> None:
    doc = edxml.read(sample("edoc_update.edxml"))
    assert isinstance(doc, Document)
    assert doc.recipient_ids == ["000.00.00.H41", "000.00.00.H14", "000.00.00.G17"]
    assert doc.business is not None and doc.business.doc_type_name == "update"
    assert doc.business.receivers == [
        Receiver("000.00.00.H41", "0"),
        Receiver("000.00.00.H14", "1"),
    ]


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("status_inbox_01.edxml", "01"),
        ("status_acceptance_03.edxml", "03"),
        ("status_finish_06.edxml", "06"),
    ],
)
def test_status_fields(name: str, code: str) -> None:
    status = edxml.read(sample(name))
    assert isinstance(status, Status)
    assert status.status_code == code
    assert status.meaning == edxml.STATUS_MEANINGS[code]
    assert status.document_id == "000.00.00.G22,2015/09/30,7816/VPCP-TTĐT"
    assert status.response_for.code == "7816/VPCP-TTĐT"
    assert status.sender.organ_id == "000.00.00.H41"
    assert status.staff is not None and status.staff.email == "ngoctram@nghean.vn"
    assert status.timestamp == "2015/09/20 11:08:36"


def test_status_meanings_cover_the_known_codes() -> None:
    assert sorted(edxml.STATUS_MEANINGS) == ["01", "02", "03", "04", "05", "06", "13", "15", "16"]


def test_signed_template_is_refused_with_line_and_column() -> None:
    with pytest.raises(RejectedError, match=r"xlink.*line 116, column 39"):
        edxml.read(sample("edoc_signed_template.edxml"))


def test_unknown_namespace_is_refused() -> None:
    data = sample("status_finish_06.edxml").replace(
        b"http://www.mic.gov.vn/TBT/QCVN_102_2016", b"urn:example:other"
    )
    with pytest.raises(RejectedError, match="not an edXML message.*urn:example:other"):
        edxml.read(data)


def test_message_without_header_is_refused() -> None:
    data = b'<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016"><edXMLEnvelope/></edXML>'
    with pytest.raises(RejectedError, match="no edXMLEnvelope/edXMLHeader/MessageHeader"):
        edxml.read(data)


# ---------------------------------------------------------------- building


@pytest.mark.parametrize("name", WELL_FORMED)
def test_build_read_build_is_stable(name: str) -> None:
    first = edxml.build(edxml.read(sample(name)))
    again = edxml.read(first)
    assert again == edxml.read(sample(name))
    second = edxml.build(again)
    assert second == first
    assert c14n(second) == c14n(first)
    assert check(first) == []


def test_build_keeps_the_samples_layout() -> None:
    built = edxml.build(edxml.read(sample("edoc_new.edxml")))
    assert built.startswith(
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016">\n'
        b'  <edXML:edXMLEnvelope xmlns:edXML="http://www.mic.gov.vn/TBT/QCVN_102_2016">\n'
        b"    <edXML:edXMLHeader>\n"
        b"      <edXML:MessageHeader>\n"
        b"        <edXML:From>\n"
        b"          <edXML:OrganId>000.00.00.A80</edXML:OrganId>\n"
    )
    assert b"<edXML:Bussiness>" in built and b"<edXML:BussinessDocType>0<" in built
    assert b'<edXML:edXMLManifest version="1.0">' in built
    # Attachments sit outside the envelope, under the default namespace, as in the sample.
    assert (
        b"\n  <AttachmentEncoded>\n    <Attachment>\n      <ContentId>cid:209</ContentId>" in built
    )
    assert (
        b'<edXML:ContentTransferEncoded xmlns:edXML="http://www.mic.gov.vn/TBT/QCVN_102_2016">'
        in built
    )
    # The sample's non-XMLDSig placeholder signature is not carried over.
    assert b"Signature" not in built


def test_build_has_the_same_content_as_the_sample() -> None:
    """Apart from whitespace and the dropped placeholder signature, the tree is the sample's."""

    def normalised(data: bytes) -> bytes:
        root = etree.fromstring(data, etree.XMLParser(remove_blank_text=True))
        for signature in root.iter(f"{{{edxml.NS}}}Signature"):
            signature.getparent().remove(signature)
        header = root.find(
            f"{{{edxml.NS}}}edXMLEnvelope/{{{edxml.NS}}}edXMLHeader/{{{edxml.NS}}}MessageHeader"
        )
        header[:] = sorted(header, key=lambda e: e.tag)  # element order differs between senders
        return etree.tostring(root, method="c14n")

    assert normalised(edxml.build(edxml.read(sample("edoc_update.edxml")))) == normalised(
        sample("edoc_update.edxml")
    )


def test_vietnamese_text_round_trips() -> None:
    doc = vietnamese_document()
    built = edxml.build(doc)
    assert "Ủy ban nhân dân tỉnh Đắk Lắk".encode() in built  # UTF-8, not character references
    assert "&amp;&gt; “ngoặc”".encode() in built
    back = edxml.read(built)
    assert back == doc
    assert edxml.build(back) == built
    assert check(built) == []


def test_status_round_trip_from_model() -> None:
    status = Status(
        sender=Organization(organ_id="000.00.00.G22", organ_name="Văn phòng Chính phủ"),
        response_for=ResponseFor(
            "000.00.00.H15", "123/UBND-VX", "2024/03/15", "000.00.00.H15,2024/03/15,123/UBND-VX"
        ),
        staff=StaffInfo("Phòng Hành chính", "Lê Thị Mai", "mai@chinhphu.vn", "0912"),
        status_code="03",
        description="Đã tiếp nhận, vào sổ văn bản đến",
        timestamp="2024/03/16 09:00:00",
    )
    built = edxml.build(status)
    assert edxml.read(built) == status
    assert check(built) == []
    assert b"<edXML:StatusCode>03</edXML:StatusCode>" in built


def test_empty_elements_stay_empty_and_absent_ones_absent() -> None:
    doc = Document(
        sender=Organization(organ_id="000.00.00.H15"),
        recipients=[Organization(organ_id="000.00.00.G22")],
        subject="Thử",
        response_for=ResponseFor("", "", "", ""),
    )
    built = edxml.build(doc)
    assert b"<edXML:ResponseFor>\n          <edXML:OrganId></edXML:OrganId>" in built
    assert b"Code>" not in built.split(b"ResponseFor")[0]
    assert edxml.read(built) == doc


def test_build_refuses_other_objects() -> None:
    with pytest.raises(TypeError, match="Document or a Status"):
        edxml.build("not a message")  # type: ignore[arg-type]


# ---------------------------------------------------------------- trace


def test_append_trace_adds_a_hop_after_the_last_one() -> None:
    data = sample("edoc_update.edxml")
    out = edxml.append_trace(data, "000.00.00.H15", datetime(2024, 3, 16, 7, 5, 9))
    doc = edxml.read(out)
    assert isinstance(doc, Document)
    assert doc.trace_headers == [
        TraceHeader("000.00.00.G22", "2018/09/28 00:00:00"),
        TraceHeader("000.00.00.H15", "2024/03/16 07:05:09"),
    ]
    assert doc.business is not None and doc.business.doc_type == "2"  # Bussiness stays after
    assert check(out) == []
    text = out.decode()
    assert (
        "</edXML:TraceHeader>\n        <edXML:TraceHeader>\n"
        "          <edXML:OrganId>000.00.00.H15</edXML:OrganId>"
    ) in text
    # The rest of the message is untouched.
    rest = edxml.read(data)
    assert isinstance(rest, Document)
    rest.trace_headers.append(TraceHeader("000.00.00.H15", "2024/03/16 07:05:09"))
    assert doc == rest


def test_append_trace_to_a_document_without_trace_list() -> None:
    doc = vietnamese_document()
    doc.trace_headers, doc.business = [], None
    out = edxml.append_trace(edxml.build(doc), "000.00.00.H15", datetime(2024, 1, 2, 3, 4, 5))
    again = edxml.read(out)
    assert isinstance(again, Document)
    assert again.trace_headers == [TraceHeader("000.00.00.H15", "2024/01/02 03:04:05")]
    assert check(out) == []
    assert out == edxml.build(again)  # laid out as build() would have written it
    doc.business = Business(doc_type="0")
    out = edxml.append_trace(edxml.build(doc), "000.00.00.H15", datetime(2024, 1, 2, 3, 4, 5))
    assert out == edxml.build(edxml.read(out))


def test_append_trace_refuses_a_status() -> None:
    with pytest.raises(RejectedError, match="status message has no TraceHeaderList"):
        edxml.append_trace(sample("status_inbox_01.edxml"), "000.00.00.H15", datetime.now())


# ---------------------------------------------------------------- attachments


ZIP = "application/zip"


def make_zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, payload in entries.items():
            archive.writestr(name, payload)
    return buffer.getvalue()


def test_a_pdf_travels_raw_as_the_vendor_library_writes_it() -> None:
    attachment = Attachment.from_file("Quyết định 01.pdf", b"%PDF-1.7 content")
    assert attachment.content_id.startswith("cid:")
    assert attachment.data == b"%PDF-1.7 content" and not attachment.zipped
    assert attachment.content_type == attachment.manifest_content_type == "application/pdf"
    assert attachment.extract(max_bytes=1000) == ("Quyết định 01.pdf", b"%PDF-1.7 content")
    assert base64.b64decode(attachment.encoded) == attachment.data


@pytest.mark.parametrize(
    ("name", "label"), [("bien-ban.DOCX", "application/docx"), ("a.doc", "application/doc")]
)
def test_word_files_travel_raw_with_the_vendor_label(name: str, label: str) -> None:
    attachment = Attachment.from_file(name, b"PK word")
    assert attachment.data == b"PK word" and attachment.content_type == label


@pytest.mark.parametrize("name", ["ghi-chu.txt", "du-toan.xlsx", "du-toan.xls", "anh.png"])
def test_other_files_are_zipped_and_labelled_zip(name: str) -> None:
    # The vendor library spells its spreadsheet formats "xsl"/"xslx": real .xls/.xlsx are zipped.
    attachment = Attachment.from_file(name, b"payload", "application/vnd.ms-excel")
    assert attachment.zipped and attachment.content_type == "application/zip"
    assert attachment.manifest_content_type == "application/vnd.ms-excel"
    entry, payload = attachment.extract(max_bytes=1000)
    assert entry == attachment.content_id[4:] + name[name.rindex(".") :]
    assert payload == b"payload"


def test_a_raw_file_over_the_limit_is_refused() -> None:
    attachment = Attachment.from_file("big.pdf", b"x" * 2000)
    with pytest.raises(RejectedError, match=r"2,000 bytes, over the limit of 1,000"):
        attachment.extract(max_bytes=1000)


def test_only_what_is_labelled_zip_is_unzipped() -> None:
    archive = make_zip({"../../evil.sh": b"rm -rf"})
    assert Attachment("cid:1", "a.pdf", content_type="application/pdf", data=archive).extract(
        max_bytes=1000
    ) == ("a.pdf", archive)
    with pytest.raises(RejectedError, match="climbs out"):
        Attachment("cid:1", "a.pdf", content_type="Application/ZIP", data=archive).extract(1000)


def test_a_symlink_zip_entry_is_refused() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        link = zipfile.ZipInfo("quyet-dinh.pdf")
        link.create_system = 3
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/shadow")
    attachment = Attachment(
        "cid:1", "quyet-dinh.pdf", content_type="application/zip", data=buffer.getvalue()
    )
    with pytest.raises(RejectedError, match=r"'quyet-dinh.pdf' is a symbolic link \(mode 120777\)"):
        attachment.extract(max_bytes=1000)


def test_a_traversing_manifest_name_is_refused() -> None:
    attachment = Attachment.from_file("ok.pdf", b"x")
    attachment.manifest_name = "../../../etc/cron.d/x"
    with pytest.raises(RejectedError, match="manifest AttachmentName '../../../etc/cron.d/x'"):
        attachment.extract(max_bytes=1000)


def test_a_comment_cannot_cut_a_value_short() -> None:
    data = sample("edoc_new.edxml").replace(
        b"<edXML:Subject>", b"<edXML:Subject>V/v <!-- hidden -->", 1
    )
    read = edxml.read(data)
    assert isinstance(read, edxml.Document)
    assert read.subject is not None and read.subject.startswith("V/v ")
    assert "hidden" not in read.subject and len(read.subject) > len("V/v ")


def test_zip_bomb_is_refused_by_declared_size() -> None:
    bomb = Attachment(
        "cid:1", "bomb.pdf", content_type=ZIP, data=make_zip({"a.pdf": b"\0" * 5_000_000})
    )
    assert len(bomb.data) < 10_000
    with pytest.raises(
        RejectedError, match=r"declares 5,000,000 bytes, over the limit of 1,000,000"
    ):
        bomb.extract(max_bytes=1_000_000)


def test_zip_bomb_lying_about_its_size_is_refused_while_streaming() -> None:
    data = bytearray(make_zip({"a.pdf": b"\0" * 5_000_000}))
    # Rewrite the uncompressed size in the local header (offset 22) and the
    # central directory (offset 24) to claim 100 bytes.
    struct.pack_into("<I", data, 22, 100)
    central = data.rfind(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 24, 100)
    liar = Attachment("cid:1", "liar.pdf", content_type=ZIP, data=bytes(data))
    with pytest.raises(RejectedError, match="liar.pdf") as info:
        liar.extract(max_bytes=1_000)
    assert "corrupt" in str(info.value) or "expands beyond" in str(info.value)


def test_check_inflates_the_entry_without_keeping_it() -> None:
    # 5 MB of zeros zips to a few KB: checking it must inflate it all (the cap is
    # 10 MB) yet hold only a chunk at a time, where extract holds all 5 MB.
    attachment = Attachment(
        "cid:1", "big.pdf", content_type=ZIP, data=make_zip({"big.pdf": b"\0" * 5_000_000})
    )
    tracemalloc.start()
    try:
        assert attachment.check(max_bytes=10_000_000) == "big.pdf"
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000, peak
    assert attachment.extract(max_bytes=10_000_000) == ("big.pdf", b"\0" * 5_000_000)


def test_check_refuses_what_extract_refuses() -> None:
    bomb = Attachment(
        "cid:1", "bomb.pdf", content_type=ZIP, data=make_zip({"a.pdf": b"\0" * 5_000_000})
    )
    with pytest.raises(RejectedError, match=r"declares 5,000,000 bytes"):
        bomb.check(max_bytes=1_000_000)
    data = bytearray(bomb.data)
    struct.pack_into("<I", data, 22, 100)
    struct.pack_into("<I", data, data.rfind(b"PK\x01\x02") + 24, 100)
    liar = Attachment("cid:1", "liar.pdf", content_type=ZIP, data=bytes(data))
    with pytest.raises(RejectedError, match="liar.pdf.*(corrupt|expands beyond)"):
        liar.check(max_bytes=1_000)
    slip = Attachment("cid:1", "ok.pdf", content_type=ZIP, data=make_zip({"../x.pdf": b"x"}))
    with pytest.raises(RejectedError, match="climbs out"):
        slip.check(max_bytes=1000)


def test_an_entry_whose_crc_does_not_match_is_corrupt() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("a.pdf", b"%PDF-1.7 the original content")
    data = buffer.getvalue().replace(b"original", b"altered!", 1)
    attachment = Attachment("cid:1", "a.pdf", content_type=ZIP, data=data)
    with pytest.raises(RejectedError, match="'a.pdf' is corrupt: Bad CRC-32"):
        attachment.check(max_bytes=1000)
    with pytest.raises(RejectedError, match="'a.pdf' is corrupt: Bad CRC-32"):
        attachment.extract(max_bytes=1000)


@pytest.mark.parametrize(
    "entry",
    ["../evil.pdf", "a/../../evil.pdf", "/etc/passwd", "..\\..\\evil.pdf", "C:\\evil.pdf"],
)
def test_traversing_entry_names_are_refused(entry: str) -> None:
    attachment = Attachment("cid:1", "ok.pdf", content_type=ZIP, data=make_zip({entry: b"x"}))
    with pytest.raises(RejectedError, match="absolute path or climbs out"):
        attachment.extract(max_bytes=1000)


def test_traversing_attachment_name_is_refused() -> None:
    attachment = Attachment.from_file("ok.pdf", b"x")
    attachment.name = "../../etc/cron.d/job"
    with pytest.raises(RejectedError, match="attachment name '../../etc/cron.d/job'"):
        attachment.extract(max_bytes=1000)


def test_several_entries_are_refused() -> None:
    attachment = Attachment(
        "cid:1", "two.pdf", content_type=ZIP, data=make_zip({"a.pdf": b"1", "b.pdf": b"2"})
    )
    with pytest.raises(RejectedError, match="holds 2 entries"):
        attachment.extract(max_bytes=1000)


def test_not_a_zip_is_refused() -> None:
    with pytest.raises(RejectedError, match="not a ZIP archive"):
        Attachment("cid:1", "plain.pdf", content_type=ZIP, data=b"%PDF-1.4 not").extract(1000)


def test_bad_base64_is_refused_when_read() -> None:
    data = sample("edoc_new.edxml")
    start = data.index(b"UEsDBBQ")
    bad = data[:start] + b"@@not base64!!" + data[start:]
    with pytest.raises(RejectedError, match=r"cid:209.*not valid base64"):
        edxml.read(bad)
    with pytest.raises(RejectedError, match="not valid base64"):
        Attachment.decode("QUJD$")


def test_manifest_and_attachments_must_pair() -> None:
    data = sample("edoc_new.edxml").replace(b"<ContentId>cid:209<", b"<ContentId>cid:999<")
    with pytest.raises(RejectedError, match="'cid:999'.*no manifest Reference"):
        edxml.read(data)
