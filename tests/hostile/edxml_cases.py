"""Hostile edXML made at test time: attachment attacks, forged and stripped signatures.

Documents start from the vendor sample in tests/document_axis/data (its large
attachment dropped, so each case stays small) and are re-addressed with
:func:`document`.
"""

from __future__ import annotations

import base64
import io
import stat
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from lxml import etree

from lienthong import xml
from lienthong.plugins.document_axis import edxml
from lienthong.plugins.document_axis.signature import KeyMaterial
from tests.hostile.cases import CORPUS, REPO

SAMPLE = REPO / "tests/document_axis/data/edxml/edoc_new.edxml"
A, B, C = "000.00.00.H41", "000.00.00.G22", "000.00.15.H51"
SYSTEMS = {"dms-a": "secret-a-0123", "dms-b": "secret-b-4567", "dms-c": "secret-c-89ab"}
SYSTEM_OF = {A: "dms-a", B: "dms-b", C: "dms-c"}
BOUND = {system: (SYSTEMS[system], organ) for organ, system in SYSTEM_OF.items()}
DSIG = "{http://www.w3.org/2000/09/xmldsig#}"
ED = f"{{{edxml.NS}}}"


def document(
    sender: str = A,
    recipients: tuple[str, ...] = (B,),
    number: str = "7816",
    attachments: list[edxml.Attachment] | None = None,
    subject: str = "V/v triển khai liên thông văn bản điện tử",
) -> bytes:
    """The sample document from ``sender`` to ``recipients``, with only the given attachments."""
    doc = edxml.read(SAMPLE.read_bytes())
    assert isinstance(doc, edxml.Document)
    template = doc.recipients[0]
    doc.sender.organ_id = sender
    doc.recipients = [edxml.Organization(**{**vars(template), "organ_id": r}) for r in recipients]
    doc.document_id = f"{sender},2019/01/16,{number}/VPCP-TTĐT"
    doc.subject = subject
    doc.attachments = list(attachments or [])
    return edxml.build(doc)


def zipped(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, payload in entries.items():
            archive.writestr(name, payload)
    return buffer.getvalue()


def attachment(data: bytes, name: str = "quyet-dinh.pdf") -> edxml.Attachment:
    return edxml.Attachment(
        content_id="cid:5d0e8f0a-0000-4000-8000-000000000001",
        name=name,
        description=name,
        content_type="application/zip",
        data=data,
        manifest_content_type="application/pdf",
        manifest_description=name,
    )


@dataclass(frozen=True)
class AttachmentCase:
    name: str
    make: Callable[[], bytes]  # the bytes of a whole edXML document
    reason: tuple[str, ...]


def _bomb() -> bytes:
    # 64 MiB of zeros deflate to about 64 KB: far over the 10 MiB attachment limit once opened.
    return document(attachments=[attachment(zipped({"a.pdf": bytes(64 * 1024 * 1024)}))])


def _lying_bomb() -> bytes:
    """The same bomb whose headers claim 100 bytes: zipfile stops there and the CRC fails."""
    data = bytearray(zipped({"a.pdf": bytes(64 * 1024 * 1024)}))
    small = struct.pack("<I", 100)
    assert data[:4] == b"PK\x03\x04"
    data[22:26] = small  # local file header: uncompressed size
    central = data.index(b"PK\x01\x02")
    data[central + 24 : central + 28] = small  # central directory: uncompressed size
    return document(attachments=[attachment(bytes(data))])


def _bad_base64() -> bytes:
    good = document(attachments=[attachment(zipped({"a.pdf": b"%PDF-1.4"}))])
    root = xml.parse(good).getroot()
    root.find(
        f"{ED}AttachmentEncoded/{ED}Attachment/{ED}ContentTransferEncoded"
    ).text = "UEsDBB<script>alert(1)</script>=="
    return xml.serialize(root)


def _symlink_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        link = zipfile.ZipInfo("quyet-dinh.pdf")
        link.create_system = 3  # Unix: the mode below is read by unzip
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/cron.d/lt")
    return buffer.getvalue()


def _harmless_then_slip() -> str:
    """base64 of a harmless ZIP, a comment, base64 of a zip-slip ZIP.

    The harmless ZIP is padded (its archive comment) to a multiple of 3 bytes,
    so the two base64 texts join into valid base64 of both ZIPs back to back:
    what a document system reading the element's whole text decodes.
    """

    def harmless(pad: int) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("a.pdf", b"%PDF-1.4 harmless")
            archive.comment = b"x" * pad
        return buffer.getvalue()

    first = harmless((-len(harmless(0))) % 3)
    slip = zipped({"../../../etc/cron.d/lt": b"* * * * * root sh -c 'id > /tmp/pwned'"})
    return base64.b64encode(first).decode() + "<!---->" + base64.b64encode(slip).decode()


def comment_hidden_name() -> bytes:
    """An attachment name the old reader saw as empty: a comment before the traversal."""
    body = document(attachments=[attachment(zipped({"a.pdf": b"%PDF-1.4"}))])
    return body.replace(
        b"<AttachmentName>quyet-dinh.pdf</AttachmentName>",
        b"<AttachmentName><!---->../../../../etc/cron.d/lt</AttachmentName>",
    )


def comment_split_attachment() -> bytes:
    """ContentTransferEncoded: a harmless ZIP, a comment, then a zip-slip ZIP."""
    body = document(attachments=[attachment(zipped({"a.pdf": b"%PDF-1.4"}))])
    root = xml.parse(body).getroot()
    encoded = root.find(f"{ED}AttachmentEncoded/{ED}Attachment/{ED}ContentTransferEncoded")
    encoded.text = "@"
    return xml.serialize(root).replace(b">@<", b">" + _harmless_then_slip().encode() + b"<")


def manifest_traversal() -> bytes:
    """A plain attachment name, but the manifest Reference names a path out of the folder."""
    doc = edxml.read(document(attachments=[attachment(zipped({"a.pdf": b"%PDF-1.4"}))]))
    assert isinstance(doc, edxml.Document)
    doc.attachments[0].manifest_name = "../../../etc/cron.d/x"
    return edxml.build(doc)


def symlink_entry() -> bytes:
    """A ZIP whose one entry is a symbolic link to a system file."""
    return document(attachments=[attachment(_symlink_zip())])


#: Hostile edXML kept in corpus/edxml (made by the functions above; see the corpus README).
CORPUS_EDXML = {
    "comment-hidden-attachment-name.edxml": (
        "climbs out of its folder",
        "../../../../etc/cron.d/lt",
    ),
    "comment-split-attachment.edxml": ("ZIP entry '../../../etc/cron.d/lt'", "climbs out"),
    "manifest-attachment-name-traversal.edxml": (
        "manifest AttachmentName '../../../etc/cron.d/x'",
        "climbs out",
    ),
    "symlink-zip-entry.edxml": ("ZIP entry 'quyet-dinh.pdf' is a symbolic link",),
}
MAKERS: dict[str, Callable[[], bytes]] = {
    "comment-hidden-attachment-name.edxml": comment_hidden_name,
    "comment-split-attachment.edxml": comment_split_attachment,
    "manifest-attachment-name-traversal.edxml": manifest_traversal,
    "symlink-zip-entry.edxml": symlink_entry,
}


def corpus_edxml(name: str) -> bytes:
    return (CORPUS / "edxml" / name).read_bytes()


ATTACHMENT_CASES = [
    AttachmentCase("zip-bomb", _bomb, ("declares 67,108,864 bytes", "over the limit", "Hint:")),
    AttachmentCase("zip-bomb-lying-header", _lying_bomb, ("ZIP entry", "is corrupt", "Bad CRC-32")),
    AttachmentCase(
        "traversal-in-attachment-name",
        lambda: document(
            attachments=[attachment(zipped({"a.pdf": b"x"}), name="../../../etc/cron.d/lt")]
        ),
        ("climbs out of its folder",),
    ),
    AttachmentCase(
        "windows-traversal-in-attachment-name",
        lambda: document(
            attachments=[attachment(zipped({"a.pdf": b"x"}), name="..\\..\\Windows\\evil.dll")]
        ),
        ("climbs out of its folder",),
    ),
    AttachmentCase(
        "absolute-attachment-name",
        lambda: document(attachments=[attachment(zipped({"a.pdf": b"x"}), name="/etc/passwd")]),
        ("absolute path",),
    ),
    AttachmentCase(
        "zip-slip-entry",
        lambda: document(attachments=[attachment(zipped({"../../../tmp/evil.sh": b"rm -rf"}))]),
        ("ZIP entry", "climbs out of its folder"),
    ),
    AttachmentCase(
        "several-zip-entries",
        lambda: document(attachments=[attachment(zipped({"a.pdf": b"x", "b.exe": b"MZ"}))]),
        ("expected exactly one",),
    ),
    AttachmentCase(
        "not-a-zip",
        lambda: document(attachments=[attachment(b"MZ\x90\x00 this is an executable")]),
        ("not a ZIP archive",),
    ),
    AttachmentCase("bad-base64", _bad_base64, ("not valid base64",)),
    *(
        AttachmentCase(name.removesuffix(".edxml"), lambda n=name: corpus_edxml(n), reason)
        for name, reason in CORPUS_EDXML.items()
    ),
]


# --- signatures -------------------------------------------------------------


def key(common_name: str, issuer: KeyMaterial | None = None, *, ca: bool = False) -> KeyMaterial:
    """A fresh RSA key with a certificate, self-signed or issued by ``issuer``.

    A CA gets basicConstraints cA and keyCertSign; anything else is a signing
    certificate (digitalSignature, nonRepudiation), as the government CA issues them.
    """
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    usage = dict.fromkeys(
        ("content_commitment", "key_encipherment", "data_encipherment", "key_agreement"), False
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.certificate.subject if issuer else name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
                **usage,
            ),
            critical=True,
        )
        .sign(issuer.private_key if issuer else private, hashes.SHA256())
    )
    return KeyMaterial(private, certificate)


def forged(signed: bytes) -> bytes:
    """The signed document with its subject changed afterwards."""
    return signed.replace("triển khai".encode(), "hủy bỏ".encode(), 1)


def stripped(signed: bytes) -> bytes:
    """The signed document with its signature cut out."""
    root = xml.parse(signed).getroot()
    for signature in list(root.iter(f"{DSIG}Signature")):
        signature.getparent().remove(signature)
    return xml.serialize(root)


def wrapped(signed: bytes) -> bytes:
    """A second copy of the valid signature hidden in the body (signature wrapping)."""
    root = xml.parse(signed).getroot()
    signature = next(root.iter(f"{DSIG}Signature"))
    holder = etree.SubElement(root, f"{ED}AttachmentEncoded")
    holder.append(etree.fromstring(etree.tostring(signature)))
    return xml.serialize(root)


def moved(signed: bytes) -> bytes:
    """The signature moved out of edXMLHeader into the envelope."""
    root = xml.parse(signed).getroot()
    signature = next(root.iter(f"{DSIG}Signature"))
    root.find(f"{ED}edXMLEnvelope").append(signature)
    return xml.serialize(root)


def swapped_certificate(signed: bytes, other: KeyMaterial) -> bytes:
    """The signature kept, the certificate replaced by another (trusted) signer's."""
    root = xml.parse(signed).getroot()
    cert = next(root.iter(f"{DSIG}X509Certificate"))
    cert.text = base64.b64encode(other.certificate.public_bytes(Encoding.DER)).decode()
    return xml.serialize(root)
