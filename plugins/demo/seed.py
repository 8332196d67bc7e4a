"""What the other agencies' systems make: signing keys, signed edXML documents and
statuses, and the personnel system's staff lists.

All of it SANDBOX: a CA made for the run (trusted by the demo's config), a key per
agency, documents built from :mod:`.province`'s data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .province import (
    AGENCIES,
    DOCUMENTS,
    MAIL_DOMAIN,
    NAMES,
    PLACES,
    SGD,
    STC,
    SYT,
    VN,
    Incoming,
)


@dataclass
class Pki:
    """The demo's SANDBOX CA (trusted by the config) and each agency's signing key."""

    folder: Path
    ca: Any
    signers: dict[str, Any]


#: Each agency's clerk's certificate subject, as the config's ``signer_agencies`` binds it:
#: the province's departments by name and place (names repeat across provinces).
SIGNERS = {
    code: f"CN=Văn thư điện tử,O={name}"
    + (",L=Đắk Lắk" if code in (STC, SYT, SGD) else "")
    + ",C=VN"
    for code, name, _, _ in AGENCIES
}

#: Our agencies' key and certificate files, as their axis endpoints name them.
OWN_KEYS = {SYT: "syt", SGD: "sgd"}


def make_pki(folder: Path) -> Pki:
    """A SANDBOX CA under ``folder`` (root, CRLs) and a signing certificate per agency.

    Each agency's clerk signs with a certificate whose ``O`` is the agency's
    name, as the config's ``signer_agencies`` binds it.
    """
    from ..document_axis.sandbox_ca import SandboxCA, write_key

    ca = SandboxCA(
        "CN=SANDBOX CA phục vụ các cơ quan nhà nước,O=lienthong demo,C=VN",
        intermediate="CN=SANDBOX CA cấp 2,O=lienthong demo,C=VN",
    )
    ca.write(folder, crl_days=365)
    signers = {code: ca.issue(SIGNERS[code]) for code in NAMES}
    for code, stem in OWN_KEYS.items():
        write_key(signers[code], folder / f"{stem}.key", folder / f"{stem}.pem")
    return Pki(folder, ca, signers)


def build_document(doc: Incoming, pki: Pki, today: str) -> bytes:
    """The edXML of ``doc``, with one attachment, signed unless it is the unsigned one."""
    from ..document_axis import edxml, signature

    built = edxml.Document(
        sender=edxml.Organization(
            organ_id=doc.sender,
            organ_name=NAMES[doc.sender],
            organization_in_charge=NAMES[doc.sender],
        ),
        recipients=[edxml.Organization(organ_id=r, organ_name=NAMES[r]) for r in doc.recipients],
        document_id=document_id(doc.sender, today, doc.number),
        code_number=doc.number,
        code_notation=doc.notation,
        place=PLACES.get(doc.sender, "Đắk Lắk"),
        promulgation_date=today,
        document_type="1",
        type_detail="2" if doc.type_name == "Quyết định" else "0",
        type_name=doc.type_name,
        subject=doc.subject,
        content=doc.content,
        signer=edxml.Signer(
            competence="KT. CHỦ TỊCH", position="Phó Chủ tịch", full_name="Lê Hồng Vinh"
        ),
        other_info=edxml.OtherInfo(priority="0", promulgation_amount="1", page_amount="2"),
        attachments=[
            edxml.Attachment.from_file(
                f"{doc.number}-{doc.notation.split('-')[0]}.pdf",
                b"%PDF-1.4\n% SANDBOX " + doc.subject.encode("utf-8") + b"\n%%EOF\n",
                "application/pdf",
            )
        ],
    )
    if doc.revokes:
        built.business = edxml.Business(
            doc_type="1",
            reason=doc.content,
            paper="0",
            document_id=document_id(doc.sender, today, doc.revokes),
        )
    data = edxml.build(built)
    return signature.sign(data, pki.signers[doc.sender]) if doc.signed else data


def document_id(sender: str, today: str, number: str) -> str:
    """The DocumentId the demo gives a sender's document of that number, sent today."""
    notation = next(
        d.notation
        for docs in DOCUMENTS.values()
        for d in docs
        if d.sender == sender and d.number == number
    )
    return f"{sender},{today},{number}/{notation}"


def make_status(organ: str, answered: str, document: str, code: str, text: str) -> Any:
    """A status ``code`` from ``organ`` about ``document``, a document of ``answered``."""
    from ..document_axis import edxml

    return edxml.Status(
        sender=edxml.Organization(organ_id=organ, organ_name=NAMES.get(organ)),
        response_for=edxml.ResponseFor(organ_id=answered, document_id=document),
        staff=edxml.StaffInfo(department="Văn thư", staff="Văn thư điện tử"),
        status_code=code,
        description=text,
        timestamp=datetime.now(VN).strftime("%Y/%m/%d %H:%M:%S"),
    )


def staff_list(people: tuple[tuple[str, str, str, str, str], ...]) -> bytes:
    """A personnel-system export (the format mappings/directory/staff-list-to-records.xsl reads)."""
    from lxml import etree

    root = etree.Element("DuLieuCanBo", PhienBan="2.1", NgayXuat=datetime.now(UTC).isoformat())
    unit = etree.SubElement(root, "DonVi", Ma=SYT, Ten=NAMES[SYT])
    for number, (uid, full, given, post, state) in enumerate(people, start=1):
        person = etree.SubElement(unit, "CanBo", Ma=f"CB-{number:04d}")
        for tag, value in (
            ("HoVaTen", full),
            ("Ten", given),
            ("TaiKhoan", uid),
            ("ThuDienTu", f"{uid}@{MAIL_DOMAIN}"),
            ("ChucVu", post),
            ("TrangThai", state),
        ):
            etree.SubElement(person, tag).text = value
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
