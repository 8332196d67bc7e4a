"""edXML (QCVN 102:2016/BTTTT): the document and status messages of the national axis.

Features:
- :func:`read` turns edXML bytes into a :class:`Document` or a :class:`Status`,
  through the bus's hardened parser, in whatever element order the sender used.
- :func:`build` writes them back exactly as the vendor samples look: default
  namespace on ``<edXML>``, the ``edXML:`` prefix from ``edXMLEnvelope`` down,
  UTF-8 with a declaration. ``build(read(build(x)))`` is byte-identical.
- :func:`append_trace` adds the hop's ``TraceHeader`` without rebuilding the rest.
- :class:`Attachment` carries a file raw or zipped by the vendor library's rule
  (PDF and Word raw, everything else in a ZIP labelled ``application/zip``),
  and opens it refusing hostile content (zip bombs, path traversal, links,
  bad base64, several entries).

Every leaf is kept as the text the sender wrote (``None`` when the element is
absent, ``""`` when it is empty), so nothing is lost or reinterpreted on the way
through; :mod:`.validation` says whether the values make sense. A leaf's text is
all of its text nodes (:func:`text_of`), as the canonical form a signature
covers sees it: a comment cannot hide part of a value from the checks.
"""

from __future__ import annotations

import base64
import binascii
import io
import posixpath
import stat
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from lxml import etree

from lienthong.errors import RejectedError
from lienthong.xml import DEFAULT_MAX_BYTES, parse

NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"
DATE_FORMAT = "%Y/%m/%d"
TIMESTAMP_FORMAT = "%Y/%m/%d %H:%M:%S"

#: The zone edXML dates and timestamps are written in: the axis and every agency on it
#: are in Vietnam, and its documents carry local dates with no offset.
AXIS_ZONE = ZoneInfo("Asia/Ho_Chi_Minh")


def axis_now(at: datetime | None = None) -> datetime:
    """``at`` (now by default) in Vietnam's zone, as edXML timestamps are written."""
    return (at or datetime.now(UTC)).astimezone(AXIS_ZONE)


def axis_today(at: datetime | None = None) -> date:
    """The day in Vietnam at ``at`` (now by default): what a ``PromulgationDate`` of today reads.

    Not the machine's ``date.today()``: from 17:00 UTC Vietnam is already on the
    next day, and a document an agency dated today must not look dated in the future.
    """
    return axis_now(at).date()


STATUS_MEANINGS: dict[str, str] = {
    "01": "arrived: the receiving system has it, the clerk has not handled it",
    "02": "refused: the electronic document is not accepted",
    "03": "accepted and entered in the incoming register",
    "04": "assigned for handling by leadership",
    "05": "being processed",
    "06": "processing completed",
    "13": "the sender asks to recall the document, with a reason",
    "15": "the recipient agrees to the update/recall request",
    "16": "the recipient refuses the update/recall request",
}

BUSINESS_DOC_TYPES: dict[str, str] = {"0": "new", "1": "revoke", "2": "update", "3": "replace"}

#: Formats the vendor library (EdXML102) carries raw, each labelled ``application/<format>``;
#: it zips every other file and labels it ``application/zip``. Its spelling is kept:
#: ``xsl``/``xslx``, so real ``.xls``/``.xlsx`` files travel zipped.
RAW_FORMATS = ("pdf", "doc", "docx", "xsl", "xslx")
ZIP_CONTENT_TYPE = "application/zip"

_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
_Q = f"{{{NS}}}"
_STRING_VALUE = etree.XPath("string()")
#: How much of an attachment's ZIP entry is inflated at a time while it is checked.
_CHUNK = 64 * 1024


def text_of(element: etree._Element) -> str:
    """All the text of ``element`` (its XPath string-value), comments and PIs left out.

    This is the text a canonical-form signature covers and a document system
    reads; ``element.text`` stops at the first comment, so a value split by
    ``<!---->`` would show the checks only its harmless first part.
    """
    if len(element) == 0:
        return element.text or ""  # no child, comment or PI: .text is all of it (the fast path)
    return str(_STRING_VALUE(element))


def q(name: str) -> str:
    """The Clark name of an edXML element."""
    return _Q + name


# ---------------------------------------------------------------- the model


@dataclass
class Organization:
    """A sender or recipient agency (``From``/``To``), keyed by its OrganId (mã định danh)."""

    organ_id: str | None = None
    organization_in_charge: str | None = None
    organ_name: str | None = None
    organ_add: str | None = None
    email: str | None = None
    telephone: str | None = None
    fax: str | None = None
    website: str | None = None


_ORG_FIELDS = (
    ("OrganId", "organ_id"),
    ("OrganizationInCharge", "organization_in_charge"),
    ("OrganName", "organ_name"),
    ("OrganAdd", "organ_add"),
    ("Email", "email"),
    ("Telephone", "telephone"),
    ("Fax", "fax"),
    ("Website", "website"),
)


@dataclass
class Signer:
    """``SignerInfo``: who signed the paper document."""

    competence: str | None = None
    position: str | None = None
    full_name: str | None = None


@dataclass
class OtherInfo:
    """``OtherInfo``: priority, circulation and page counts."""

    priority: str | None = None
    sphere: str | None = None
    typer_notation: str | None = None
    promulgation_amount: str | None = None
    page_amount: str | None = None
    direction: str | None = None
    appendixes: list[str] | None = None


@dataclass
class ResponseFor:
    """The document a message answers: a status always has one, a document may."""

    organ_id: str | None = None
    code: str | None = None
    promulgation_date: str | None = None
    document_id: str | None = None


@dataclass
class StaffInfo:
    """The clerk who handled the message (the vendor library also writes the two ids)."""

    department: str | None = None
    staff: str | None = None
    email: str | None = None
    mobile: str | None = None
    department_id: str | None = None
    staff_id: str | None = None


@dataclass
class TraceHeader:
    """One hop: the agency that passed the message on and when (``yyyy/MM/dd HH:mm:ss``)."""

    organ_id: str | None = None
    timestamp: str | None = None


@dataclass
class Receiver:
    """``ReceiverList/Receiver`` of an update: who gets it and how."""

    organ_id: str | None = None
    receiver_type: str | None = None


@dataclass
class Replacement:
    """``ReplacementInfo``: a document replaced, and the agencies that held it."""

    document_id: str | None = None
    organ_ids: list[str] | None = None


@dataclass
class Business:
    """``Bussiness`` (sic): what the message does, 0 new, 1 revoke, 2 update, 3 replace."""

    doc_type: str | None = None
    reason: str | None = None
    paper: str | None = None
    document_id: str | None = None
    document_info: str | None = None
    document_receiver: str | None = None
    receivers: list[Receiver] | None = None
    replacements: list[Replacement] | None = None
    staff: StaffInfo | None = None

    @property
    def doc_type_name(self) -> str:
        return BUSINESS_DOC_TYPES.get(self.doc_type or "", f"unknown ({self.doc_type})")


@dataclass
class Attachment:
    """One inline attachment, paired with its manifest ``Reference``.

    ``data`` holds the decoded bytes: a ZIP of one entry when ``content_type``
    is ``application/zip``, the file itself otherwise (the vendor library's
    rule); :meth:`extract` opens either safely. ``content_type``/``description``
    are the attachment's own, ``manifest_*`` those of its manifest entry, and
    ``manifest_name`` the manifest's ``AttachmentName`` (a receiver may save the
    file under either name, so both are checked).
    """

    content_id: str
    name: str | None = None
    description: str | None = None
    content_type: str | None = None
    data: bytes = b""
    manifest_content_type: str | None = None
    manifest_description: str | None = None
    manifest_name: str | None = None

    @classmethod
    def from_file(
        cls,
        name: str,
        payload: bytes,
        content_type: str | None = None,
        *,
        description: str | None = None,
    ) -> Attachment:
        """Carry a file as the vendor library does: PDF/Word raw, anything else in a ZIP.

        A raw file is labelled ``content_type`` (default ``application/<format>``,
        the vendor's label); a zipped one holds one entry ``<uuid>.<ext>``, is
        labelled ``application/zip``, and its manifest entry names
        ``content_type`` when given (the file's own type, as the samples do).
        """
        ident = str(uuid.uuid4())
        ext = posixpath.splitext(name.replace("\\", "/"))[1]
        shown = description if description is not None else name
        fmt = ext[1:].lower()
        if fmt in RAW_FORMATS:
            label = content_type or f"application/{fmt}"
            data, manifest_type = payload, label
        else:
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
                archive.writestr(ident + ext, payload)
            label, data = ZIP_CONTENT_TYPE, buffer.getvalue()
            manifest_type = content_type or ZIP_CONTENT_TYPE
        return cls(
            content_id=f"cid:{ident}",
            name=name,
            description=shown,
            content_type=label,
            data=data,
            manifest_content_type=manifest_type,
            manifest_description=shown,
            manifest_name=name,
        )

    @staticmethod
    def decode(text: str, *, what: str = "attachment") -> bytes:
        """Strict base64 (whitespace and line breaks allowed), or :class:`RejectedError`.

        Most senders write one unbroken line: that is decoded as it stands, and
        only text that fails to decode is stripped of whitespace and tried again,
        so the common case makes no copy of a large attachment.
        """
        try:
            return binascii.a2b_base64(text, strict_mode=True)
        except (binascii.Error, ValueError):
            pass
        compact = "".join(text.split())
        try:
            return binascii.a2b_base64(compact, strict_mode=True)
        except (binascii.Error, ValueError) as exc:
            shown = compact[:40] + ("..." if len(compact) > 40 else "")
            raise RejectedError(
                f"{what}: ContentTransferEncoded is not valid base64 ({exc}; starts {shown!r}). "
                "Hint: the sender must base64-encode the file (or its ZIP) and nothing else."
            ) from exc

    @property
    def encoded(self) -> str:
        return base64.b64encode(self.data).decode("ascii")

    @property
    def zipped(self) -> bool:
        """Whether ``data`` is a ZIP to open: only what is labelled ``application/zip`` is."""
        return (self.content_type or "").strip().lower() == ZIP_CONTENT_TYPE

    def extract(self, max_bytes: int) -> tuple[str, bytes]:
        """Return ``(file name, payload)``, refusing anything hostile.

        Refused with :class:`RejectedError`: an attachment name (its own or the
        manifest's) or ZIP entry name that is absolute or climbs out (``../``,
        ``..\\``, drive letters); a raw file over ``max_bytes``; for a ZIP: not a
        ZIP, not exactly one entry, an entry that is a folder, a link or any
        other non-regular file, encrypted, declared or found larger than
        ``max_bytes`` (the stream is capped, so a lying header does not help a
        zip bomb), or corrupt (its CRC-32 does not match).
        """
        chunks: list[bytes] = []
        name = self._open(max_bytes, chunks.append)
        return name, b"".join(chunks) if self.zipped else self.data

    def check(self, max_bytes: int) -> str:
        """Refuse what :meth:`extract` refuses, keeping none of the payload; the file name.

        The ZIP's entry is inflated once, as a stream of small chunks that are
        counted and dropped, so checking a 10 MB entry holds 64 KiB of it, not
        10 MB: the intake needs to know the entry is sound, not its bytes.
        """
        return self._open(max_bytes, lambda chunk: None)

    def _open(self, max_bytes: int, take: Callable[[bytes], object]) -> str:
        """Check names and sizes, stream a ZIP's entry to ``take``; the file name."""
        what = f"attachment {self.content_id!r} ({self.name!r})"
        if self.name is not None:
            _check_name(self.name, what, "attachment name")
        if self.manifest_name is not None:
            _check_name(self.manifest_name, what, "manifest AttachmentName")
        if not self.zipped:
            if len(self.data) > max_bytes:
                raise RejectedError(
                    f"{what} is {len(self.data):,} bytes, over the limit of {max_bytes:,}. "
                    "Hint: raise the attachment limit if such files are expected."
                )
            return self.name or self.content_id
        try:
            archive = zipfile.ZipFile(io.BytesIO(self.data))
        except (zipfile.BadZipFile, ValueError) as exc:
            raise RejectedError(
                f"{what} is labelled {ZIP_CONTENT_TYPE} but is not a ZIP archive ({exc}). "
                "Hint: label a file carried raw with its own type (application/pdf, ...)."
            ) from exc
        with archive:
            entries = archive.infolist()
            if len(entries) != 1:
                names = [e.filename for e in entries[:5]]
                raise RejectedError(
                    f"{what} holds {len(entries)} entries {names}, expected exactly one. "
                    "Hint: the axis format puts one file, named <uuid>.<ext>, in each ZIP."
                )
            entry = entries[0]
            _check_name(entry.filename, what, "ZIP entry")
            if entry.is_dir():
                raise RejectedError(f"{what}: its only ZIP entry {entry.filename!r} is a folder.")
            mode = entry.external_attr >> 16
            if stat.S_IFMT(mode) not in (0, stat.S_IFREG):
                kind = "a symbolic link" if stat.S_ISLNK(mode) else "not a regular file"
                raise RejectedError(
                    f"{what}: ZIP entry {entry.filename!r} is {kind} (mode {mode:o}), which an "
                    "unzipping receiver would follow. Refused."
                )
            if entry.flag_bits & 0x1:
                raise RejectedError(f"{what}: ZIP entry {entry.filename!r} is encrypted.")
            if entry.file_size > max_bytes:
                raise RejectedError(
                    f"{what}: ZIP entry {entry.filename!r} declares {entry.file_size:,} bytes, "
                    f"over the limit of {max_bytes:,}. Hint: raise the attachment limit "
                    "if such files are expected."
                )
            size = 0
            try:
                with archive.open(entry) as stream:
                    # Capped: an entry lying about its size stops one chunk past the limit,
                    # and zipfile checks the CRC-32 when the stream ends.
                    while size <= max_bytes and (chunk := stream.read(_CHUNK)):
                        size += len(chunk)
                        take(chunk)
            except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
                raise RejectedError(
                    f"{what}: ZIP entry {entry.filename!r} is corrupt: {exc}"
                ) from exc
            if size > max_bytes:
                raise RejectedError(
                    f"{what}: ZIP entry {entry.filename!r} expands beyond "
                    f"{max_bytes:,} bytes although it declares "
                    f"{entry.file_size:,} (a zip bomb?). Refused."
                )
            return entry.filename


def _check_name(name: str, what: str, kind: str) -> None:
    normal = name.replace("\\", "/")
    parts = normal.split("/")
    if (
        normal.startswith("/")
        or (len(normal) > 1 and normal[1] == ":")
        or ".." in parts
        or "\x00" in name
    ):
        raise RejectedError(
            f"{what}: {kind} {name!r} is an absolute path or climbs out of its folder. "
            "Hint: a file name must be a plain name such as '<uuid>.pdf'."
        )


@dataclass
class Document:
    """A document message: header, trace, business info and inline attachments."""

    sender: Organization = field(default_factory=Organization)
    recipients: list[Organization] = field(default_factory=list)
    document_id: str | None = None
    code_number: str | None = None
    code_notation: str | None = None
    place: str | None = None
    promulgation_date: str | None = None
    document_type: str | None = None
    type_detail: str | None = None
    type_name: str | None = None
    subject: str | None = None
    content: str | None = None
    signer: Signer | None = None
    due_date: str | None = None
    to_places: list[str] | None = None
    other_info: OtherInfo | None = None
    response_for: ResponseFor | None = None
    steering_type: str | None = None
    trace_headers: list[TraceHeader] = field(default_factory=list)
    business: Business | None = None
    attachments: list[Attachment] = field(default_factory=list)

    kind = "document"

    @property
    def recipient_ids(self) -> list[str]:
        return [r.organ_id for r in self.recipients if r.organ_id]


@dataclass
class Status:
    """A status message: what a recipient did with a document (see :data:`STATUS_MEANINGS`)."""

    sender: Organization = field(default_factory=Organization)
    response_for: ResponseFor = field(default_factory=ResponseFor)
    staff: StaffInfo | None = None
    status_code: str | None = None
    description: str | None = None
    timestamp: str | None = None

    kind = "status"

    @property
    def document_id(self) -> str | None:
        return self.response_for.document_id

    @property
    def meaning(self) -> str:
        return STATUS_MEANINGS.get(
            self.status_code or "", f"unknown status code {self.status_code!r}"
        )


# ---------------------------------------------------------------- reading


def _text(parent: etree._Element | None, name: str) -> str | None:
    if parent is None:
        return None
    child = parent.find(_Q + name)
    if child is None:
        return None
    return text_of(child)


def _texts(parent: etree._Element | None, name: str) -> list[str]:
    if parent is None:
        return []
    return [text_of(c) for c in parent.iterfind(_Q + name)]


def _organization(element: etree._Element) -> Organization:
    return Organization(**{attr: _text(element, tag) for tag, attr in _ORG_FIELDS})


def _staff(element: etree._Element | None) -> StaffInfo | None:
    if element is None:
        return None
    return StaffInfo(
        department=_text(element, "Department"),
        staff=_text(element, "Staff"),
        email=_text(element, "Email"),
        mobile=_text(element, "Mobile"),
        department_id=_text(element, "DepartmentId"),
        staff_id=_text(element, "StaffId"),
    )


def _response_for(element: etree._Element | None) -> ResponseFor | None:
    if element is None:
        return None
    return ResponseFor(
        organ_id=_text(element, "OrganId"),
        code=_text(element, "Code"),
        promulgation_date=_text(element, "PromulgationDate"),
        document_id=_text(element, "DocumentId"),
    )


def root_of(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> etree._Element:
    """Parse with the hardened parser and check that the root is edXML's."""
    root = parse(data, max_bytes=max_bytes, what="edXML message").getroot()
    if root.tag != q("edXML"):
        raise RejectedError(
            f"not an edXML message: the root element is {root.tag!r}, expected "
            f"'edXML' in namespace {NS!r}. Hint: check the sender emits QCVN 102:2016 edXML."
        )
    return root


def _header(root: etree._Element) -> etree._Element:
    header = root.find(f"{_Q}edXMLEnvelope/{_Q}edXMLHeader/{_Q}MessageHeader")
    if header is None:
        raise RejectedError(
            "edXML message has no edXMLEnvelope/edXMLHeader/MessageHeader. "
            "Hint: every edXML message, document or status, carries one."
        )
    return header


def is_status(root: etree._Element) -> bool:
    """A status message is told from a document by its ``StatusCode``."""
    return _header(root).find(_Q + "StatusCode") is not None


def read(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Document | Status:
    """Parse edXML bytes into a :class:`Document` or :class:`Status`; RejectedError if not edXML."""
    return read_root(root_of(data, max_bytes=max_bytes))


def read_root(root: etree._Element) -> Document | Status:
    """The :class:`Document` or :class:`Status` of an already parsed edXML root element.

    For a caller that parsed the bytes once (the bus, with its hardened parser)
    and checks and verifies the same tree: one parse serves them all.
    """
    if root.tag != q("edXML"):
        raise RejectedError(
            f"not an edXML message: the root element is {root.tag!r}, expected "
            f"'edXML' in namespace {NS!r}. Hint: check the sender emits QCVN 102:2016 edXML."
        )
    header = _header(root)
    if header.find(_Q + "StatusCode") is not None:
        return _read_status(header)
    return _read_document(root, header)


def _read_status(header: etree._Element) -> Status:
    sender = header.find(_Q + "From")
    return Status(
        sender=_organization(sender) if sender is not None else Organization(),
        response_for=_response_for(header.find(_Q + "ResponseFor")) or ResponseFor(),
        staff=_staff(header.find(_Q + "StaffInfo")),
        status_code=_text(header, "StatusCode"),
        description=_text(header, "Description"),
        timestamp=_text(header, "Timestamp"),
    )


def _read_document(root: etree._Element, header: etree._Element) -> Document:
    sender = header.find(_Q + "From")
    code = header.find(_Q + "Code")
    promulgation = header.find(_Q + "PromulgationInfo")
    doc_type = header.find(_Q + "DocumentType")
    signer = header.find(_Q + "SignerInfo")
    to_places = header.find(_Q + "ToPlaces")
    other = header.find(_Q + "OtherInfo")
    doc = Document(
        sender=_organization(sender) if sender is not None else Organization(),
        recipients=[_organization(e) for e in header.iterfind(_Q + "To")],
        document_id=_text(header, "DocumentId"),
        code_number=_text(code, "CodeNumber"),
        code_notation=_text(code, "CodeNotation"),
        place=_text(promulgation, "Place"),
        promulgation_date=_text(promulgation, "PromulgationDate"),
        document_type=_text(doc_type, "Type"),
        type_detail=_text(doc_type, "TypeDetail"),
        type_name=_text(doc_type, "TypeName"),
        subject=_text(header, "Subject"),
        content=_text(header, "Content"),
        due_date=_text(header, "DueDate"),
        response_for=_response_for(header.find(_Q + "ResponseFor")),
        steering_type=_text(header, "SteeringType"),
    )
    if signer is not None:
        doc.signer = Signer(
            competence=_text(signer, "Competence"),
            position=_text(signer, "Position"),
            full_name=_text(signer, "FullName"),
        )
    if to_places is not None:
        doc.to_places = _texts(to_places, "Place")
    if other is not None:
        appendixes = other.find(_Q + "Appendixes")
        doc.other_info = OtherInfo(
            priority=_text(other, "Priority"),
            sphere=_text(other, "SphereOfPromulgation"),
            typer_notation=_text(other, "TyperNotation"),
            promulgation_amount=_text(other, "PromulgationAmount"),
            page_amount=_text(other, "PageAmount"),
            direction=_text(other, "Direction"),
            appendixes=_texts(appendixes, "Appendix") if appendixes is not None else None,
        )
    traces = root.find(f"{_Q}edXMLEnvelope/{_Q}edXMLHeader/{_Q}TraceHeaderList")
    if traces is not None:
        doc.trace_headers = [
            TraceHeader(organ_id=_text(t, "OrganId"), timestamp=_text(t, "Timestamp"))
            for t in traces.iterfind(_Q + "TraceHeader")
        ]
        business = traces.find(_Q + "Bussiness")
        if business is not None:
            doc.business = _read_business(business)
    doc.attachments = _read_attachments(root)
    return doc


def _read_business(element: etree._Element) -> Business:
    business = Business(
        doc_type=_text(element, "BussinessDocType"),
        reason=_text(element, "BussinessDocReason"),
        paper=_text(element, "Paper"),
        document_id=_text(element, "DocumentId"),
        staff=_staff(element.find(_Q + "StaffInfo")),
    )
    info = element.find(_Q + "BussinessDocumentInfo")
    if info is not None:
        business.document_info = _text(info, "DocumentInfo")
        business.document_receiver = _text(info, "DocumentReceiver")
        receivers = info.find(_Q + "ReceiverList")
        if receivers is not None:
            business.receivers = [
                Receiver(organ_id=_text(r, "OrganId"), receiver_type=_text(r, "ReceiverType"))
                for r in receivers.iterfind(_Q + "Receiver")
            ]
    replacements = element.find(_Q + "ReplacementInfoList")
    if replacements is not None:
        business.replacements = []
        for r in replacements.iterfind(_Q + "ReplacementInfo"):
            ids = r.find(_Q + "OrganIdList")
            business.replacements.append(
                Replacement(
                    document_id=_text(r, "DocumentId"),
                    organ_ids=_texts(ids, "OrganId") if ids is not None else None,
                )
            )
    return business


def _read_attachments(root: etree._Element) -> list[Attachment]:
    references = {
        (_text(r, "ContentId") or ""): r
        for r in root.iterfind(f"{_Q}edXMLEnvelope/{_Q}edXMLBody/{_Q}edXMLManifest/{_Q}Reference")
    }
    attachments = []
    seen = set()
    for element in root.iterfind(f"{_Q}AttachmentEncoded/{_Q}Attachment"):
        content_id = _text(element, "ContentId") or ""
        name = _text(element, "AttachmentName")
        what = f"attachment {content_id!r} ({name!r})"
        reference = references.get(content_id)
        if reference is None:
            raise RejectedError(
                f"{what} has no manifest Reference with that ContentId. "
                "Hint: every attachment must be listed in edXMLBody/edXMLManifest."
            )
        seen.add(content_id)
        attachments.append(
            Attachment(
                content_id=content_id,
                name=name,
                description=_text(element, "Description"),
                content_type=_text(element, "ContentType"),
                data=Attachment.decode(_text(element, "ContentTransferEncoded") or "", what=what),
                manifest_content_type=_text(reference, "ContentType"),
                manifest_description=_text(reference, "Description"),
                manifest_name=_text(reference, "AttachmentName"),
            )
        )
    missing = [cid for cid in references if cid not in seen]
    if missing:
        raise RejectedError(
            f"manifest lists attachment(s) {missing} that AttachmentEncoded does not carry. "
            "Hint: the sender must include every referenced attachment inline."
        )
    return attachments


# ---------------------------------------------------------------- building


class _Builder:
    def __init__(self) -> None:
        self.root = etree.Element(q("edXML"), nsmap={None: NS})
        self.envelope = etree.SubElement(self.root, q("edXMLEnvelope"), nsmap={"edXML": NS})
        self.header = etree.SubElement(self.envelope, q("edXMLHeader"))
        self.message = etree.SubElement(self.header, q("MessageHeader"))

    @staticmethod
    def leaf(parent: etree._Element, name: str, value: str | None) -> None:
        if value is not None:
            etree.SubElement(parent, q(name)).text = value

    def group(self, parent: etree._Element, name: str, pairs: list[tuple[str, str | None]]) -> None:
        if any(v is not None for _, v in pairs):
            element = etree.SubElement(parent, q(name))
            for tag, value in pairs:
                self.leaf(element, tag, value)

    def organization(self, name: str, org: Organization) -> None:
        element = etree.SubElement(self.message, q(name))
        for tag, attr in _ORG_FIELDS:
            self.leaf(element, tag, getattr(org, attr))

    def staff(self, parent: etree._Element, staff: StaffInfo | None) -> None:
        if staff is not None:
            element = etree.SubElement(parent, q("StaffInfo"))
            self.leaf(element, "Department", staff.department)
            self.leaf(element, "DepartmentId", staff.department_id)
            self.leaf(element, "Staff", staff.staff)
            self.leaf(element, "StaffId", staff.staff_id)
            self.leaf(element, "Email", staff.email)
            self.leaf(element, "Mobile", staff.mobile)

    def response_for(self, rf: ResponseFor | None) -> None:
        if rf is not None:
            element = etree.SubElement(self.message, q("ResponseFor"))
            self.leaf(element, "OrganId", rf.organ_id)
            self.leaf(element, "Code", rf.code)
            self.leaf(element, "PromulgationDate", rf.promulgation_date)
            self.leaf(element, "DocumentId", rf.document_id)

    def bytes(self) -> bytes:
        etree.indent(self.root, space="  ")
        return _DECLARATION + etree.tostring(self.root, encoding="UTF-8") + b"\n"


def build(obj: Document | Status) -> bytes:
    """Write a document or status as edXML bytes in the samples' layout and prefixes."""
    if isinstance(obj, Status):
        return _build_status(obj)
    if isinstance(obj, Document):
        return _build_document(obj)
    raise TypeError(f"build() takes a Document or a Status, not {type(obj).__name__}")


def _build_status(status: Status) -> bytes:
    b = _Builder()
    b.organization("From", status.sender)
    b.response_for(status.response_for)
    b.staff(b.message, status.staff)
    b.leaf(b.message, "StatusCode", status.status_code)
    b.leaf(b.message, "Description", status.description)
    b.leaf(b.message, "Timestamp", status.timestamp)
    return b.bytes()


def _build_document(doc: Document) -> bytes:
    b = _Builder()
    m = b.message
    b.organization("From", doc.sender)
    for recipient in doc.recipients:
        b.organization("To", recipient)
    b.leaf(m, "DocumentId", doc.document_id)
    b.group(m, "Code", [("CodeNumber", doc.code_number), ("CodeNotation", doc.code_notation)])
    b.group(
        m,
        "PromulgationInfo",
        [("Place", doc.place), ("PromulgationDate", doc.promulgation_date)],
    )
    b.group(
        m,
        "DocumentType",
        [("Type", doc.document_type), ("TypeDetail", doc.type_detail), ("TypeName", doc.type_name)],
    )
    b.leaf(m, "Subject", doc.subject)
    b.leaf(m, "Content", doc.content)
    if doc.signer is not None:
        signer = etree.SubElement(m, q("SignerInfo"))
        b.leaf(signer, "Competence", doc.signer.competence)
        b.leaf(signer, "Position", doc.signer.position)
        b.leaf(signer, "FullName", doc.signer.full_name)
    b.leaf(m, "DueDate", doc.due_date)
    if doc.other_info is not None:
        o = doc.other_info
        other = etree.SubElement(m, q("OtherInfo"))
        b.leaf(other, "Priority", o.priority)
        b.leaf(other, "SphereOfPromulgation", o.sphere)
        b.leaf(other, "TyperNotation", o.typer_notation)
        b.leaf(other, "PromulgationAmount", o.promulgation_amount)
        b.leaf(other, "PageAmount", o.page_amount)
        b.leaf(other, "Direction", o.direction)
        if o.appendixes is not None:
            appendixes = etree.SubElement(other, q("Appendixes"))
            for text in o.appendixes:
                b.leaf(appendixes, "Appendix", text)
    b.response_for(doc.response_for)
    b.leaf(m, "SteeringType", doc.steering_type)
    if doc.to_places is not None:
        places = etree.SubElement(m, q("ToPlaces"))
        for place in doc.to_places:
            b.leaf(places, "Place", place)
    if doc.trace_headers or doc.business is not None:
        traces = etree.SubElement(b.header, q("TraceHeaderList"))
        for trace in doc.trace_headers:
            b.group(
                traces, "TraceHeader", [("OrganId", trace.organ_id), ("Timestamp", trace.timestamp)]
            )
        if doc.business is not None:
            _build_business(b, traces, doc.business)
    if doc.attachments:
        body = etree.SubElement(b.envelope, q("edXMLBody"))
        manifest = etree.SubElement(body, q("edXMLManifest"), version="1.0")
        encoded = etree.SubElement(b.root, q("AttachmentEncoded"))
        for a in doc.attachments:
            reference = etree.SubElement(manifest, q("Reference"))
            b.leaf(reference, "ContentId", a.content_id)
            b.leaf(reference, "ContentType", a.manifest_content_type)
            b.leaf(reference, "Description", a.manifest_description)
            b.leaf(reference, "AttachmentName", a.manifest_name)
            element = etree.SubElement(encoded, q("Attachment"))
            b.leaf(element, "ContentId", a.content_id)
            b.leaf(element, "AttachmentName", a.name)
            b.leaf(element, "Description", a.description)
            b.leaf(element, "ContentType", a.content_type)
            # The samples declare the edXML prefix again on this one element.
            etree.SubElement(
                element, q("ContentTransferEncoded"), nsmap={"edXML": NS}
            ).text = a.encoded
    return b.bytes()


def _build_business(b: _Builder, parent: etree._Element, business: Business) -> None:
    element = etree.SubElement(parent, q("Bussiness"))
    b.leaf(element, "DocumentId", business.document_id)
    b.leaf(element, "BussinessDocType", business.doc_type)
    b.leaf(element, "BussinessDocReason", business.reason)
    b.leaf(element, "Paper", business.paper)
    if (
        business.document_info is not None
        or business.document_receiver is not None
        or business.receivers is not None
    ):
        info = etree.SubElement(element, q("BussinessDocumentInfo"))
        b.leaf(info, "DocumentInfo", business.document_info)
        b.leaf(info, "DocumentReceiver", business.document_receiver)
        if business.receivers is not None:
            receivers = etree.SubElement(info, q("ReceiverList"))
            for r in business.receivers:
                b.group(
                    receivers,
                    "Receiver",
                    [("OrganId", r.organ_id), ("ReceiverType", r.receiver_type)],
                )
    if business.replacements is not None:
        replacements = etree.SubElement(element, q("ReplacementInfoList"))
        for replacement in business.replacements:
            info = etree.SubElement(replacements, q("ReplacementInfo"))
            b.leaf(info, "DocumentId", replacement.document_id)
            if replacement.organ_ids is not None:
                ids = etree.SubElement(info, q("OrganIdList"))
                for organ_id in replacement.organ_ids:
                    b.leaf(ids, "OrganId", organ_id)
    b.staff(element, business.staff)


# ---------------------------------------------------------------- trace


def append_trace(
    data: bytes, organ_id: str, when: datetime, *, max_bytes: int = DEFAULT_MAX_BYTES
) -> bytes:
    """Add this hop's ``TraceHeader`` after the last one, leaving the rest of the bytes' tree alone.

    An existing signature no longer verifies afterwards (the trace is signed
    content): append before signing, or re-sign.
    """
    root = root_of(data, max_bytes=max_bytes)
    if is_status(root):
        raise RejectedError(
            "append_trace: a status message has no TraceHeaderList. "
            "Hint: trace headers belong to document messages only."
        )
    header = root.find(f"{_Q}edXMLEnvelope/{_Q}edXMLHeader")
    assert header is not None  # is_status() found the MessageHeader inside it
    trace = etree.Element(q("TraceHeader"))
    etree.SubElement(trace, q("OrganId")).text = organ_id
    etree.SubElement(trace, q("Timestamp")).text = when.strftime(TIMESTAMP_FORMAT)
    traces = header.find(_Q + "TraceHeaderList")
    if traces is None:
        traces = etree.Element(q("TraceHeaderList"))
        traces.append(trace)
        header.find(_Q + "MessageHeader").addnext(traces)  # type: ignore[union-attr]
        _indent_like(traces)
    else:
        existing = traces.findall(_Q + "TraceHeader")
        if existing:
            existing[-1].addnext(trace)
        else:
            traces.insert(0, trace)
        _indent_like(trace)
    return _DECLARATION + etree.tostring(root, encoding="UTF-8") + b"\n"


def _indent_like(element: etree._Element) -> None:
    """Give a new element the indentation of its neighbours, so the output still reads well."""
    parent = element.getparent()
    assert parent is not None
    depth = sum(1 for _ in element.iterancestors())
    pad = "\n" + "  " * depth
    etree.indent(element, space="  ", level=depth)
    previous = element.getprevious()
    if previous is not None:
        element.tail = previous.tail
        previous.tail = pad
    else:
        element.tail = parent.text or pad
        parent.text = pad


#: ``OtherInfo/Priority`` (độ khẩn), as QCVN 102:2016 numbers it.
PRIORITIES: dict[str, str] = {
    "0": "normal (thường)",
    "1": "urgent (khẩn)",
    "2": "very urgent (thượng khẩn)",
    "3": "flash (hỏa tốc)",
    "4": "flash, by the hour (hỏa tốc hẹn giờ)",
}


def summary(obj: Document | Status) -> dict[str, Any]:
    """Every field a clerk acts on, as a plain dict (``edxml show`` prints it)."""
    if isinstance(obj, Status):
        return {
            "kind": "status",
            "status_code": obj.status_code,
            "status_meaning": obj.meaning,
            "description": obj.description,
            "timestamp": obj.timestamp,
            "sender": obj.sender.organ_id,
            "sender_name": obj.sender.organ_name,
            "document_id": obj.document_id,
            "response_for": _plain(obj.response_for),
            "staff": _plain(obj.staff),
        }
    business = obj.business
    other = obj.other_info
    return {
        "kind": "document",
        "document_id": obj.document_id,
        "business_type": (
            f"{business.doc_type} ({business.doc_type_name})" if business else "0 (new)"
        ),
        "business": None
        if business is None
        else {
            "doc_type": business.doc_type,
            "name": business.doc_type_name,
            "reason": business.reason,
            "document_id": business.document_id,
            "paper": business.paper,
            "document_info": business.document_info,
            "document_receiver": business.document_receiver,
            "receivers": [_plain(r) for r in business.receivers or []],
            "replacements": [_plain(r) for r in business.replacements or []],
            "staff": _plain(business.staff),
        },
        "sender": obj.sender.organ_id,
        "sender_name": obj.sender.organ_name,
        "recipients": obj.recipient_ids,
        "code_number": obj.code_number,
        "code_notation": obj.code_notation,
        "place": obj.place,
        "promulgation_date": obj.promulgation_date,
        "document_type": obj.document_type,
        "type_name": obj.type_name,
        "subject": obj.subject,
        "content": obj.content,
        "signer": _plain(obj.signer),
        "due_date": obj.due_date,
        "steering_type": obj.steering_type,
        "to_places": obj.to_places,
        "response_for": _plain(obj.response_for),
        "other_info": None
        if other is None
        else {
            **(_plain(other) or {}),
            "priority_meaning": PRIORITIES.get(other.priority or "") if other.priority else None,
        },
        "attachments": [
            {"name": a.name, "content_type": a.content_type, "size": len(a.data)}
            for a in obj.attachments
        ],
        "trace_headers": [
            {"organ_id": t.organ_id, "timestamp": t.timestamp} for t in obj.trace_headers
        ],
    }


def _plain(value: Any) -> dict[str, Any] | None:
    """A model dataclass as a dict, or None."""
    from dataclasses import asdict

    return None if value is None else asdict(value)
