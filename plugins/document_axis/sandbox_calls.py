"""The calls of the SANDBOX axis: what each REST call of the vendor's SDK does with its state.

Each call is a function of the :class:`~.sandbox.SandboxAxis` it runs on, the
caller's signed parameters (already authenticated), the request headers and
body; it answers the SDK's JSON (or a file's bytes), or raises :class:`Refused`
with the HTTP status and the ``ErrorDesc`` the SDK reads. :data:`ROUTES` maps
each method and path to its call.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from lxml import etree

from lienthong import xml
from lienthong.errors import RejectedError

from .client import FILE_TYPE, IDEMPOTENCY_PARAM, sdk_hash_file, sha256_hex
from .edxml import text_of

if TYPE_CHECKING:
    from .sandbox import SandboxAxis, StoredDoc

NS = {"ed": "http://www.mic.gov.vn/TBT/QCVN_102_2016"}
_HEADER = "ed:edXMLEnvelope/ed:edXMLHeader/ed:MessageHeader/"


class Refused(Exception):
    """A request the axis refuses: the HTTP status and the ``ErrorDesc`` of the answer."""

    def __init__(self, code: int, desc: str) -> None:
        super().__init__(desc)
        self.code = code
        self.desc = desc


def now_text() -> str:
    """The axis's time stamp of a document or status change (UTC)."""
    return datetime.now(UTC).strftime("%Y/%m/%d %H:%M:%S")


def first(root: etree._Element, path: str) -> str:
    """The whole text of the first element at ``path`` in the message header; '' when none."""
    found = root.xpath(_HEADER + path, namespaces=NS)
    return text_of(found[0]).strip() if found else ""


def _ok(**fields: Any) -> dict[str, Any]:
    """A success answer: the three fields the SDK reads from every answer, and ``fields``."""
    return {"status": "OK", "ErrorCode": "0", "ErrorDesc": "", **fields}


def _file(body: bytes, announced: str) -> bytes:
    """The file of a sendEdoc body: its bytes, less the CRLF the SDK adds, matching hash-file."""
    candidates = [body[:-2], body] if body.endswith(b"\r\n") else [body]
    for content in candidates:
        if announced in (sha256_hex(content), sdk_hash_file(content)):
            return content
    raise Refused(400, "hash-file does not match the SHA-256 of the file")


def _agency(axis: SandboxAxis, params: dict[str, str]) -> str:
    """The agency the calling system acts for; a ``from`` naming another is refused."""
    system = params["systemid"]
    with axis.lock:
        agency = axis.systems[system][1]
        known = agency in axis.agencies
    claimed = params.get("from")
    if claimed is not None and claimed != agency:
        raise Refused(403, f"system '{system}' acts for agency '{agency}', not '{claimed}'")
    if not known:
        raise Refused(403, f"agency '{agency}' is not registered on this axis")
    return agency


def send(axis: SandboxAxis, params: dict[str, str], headers: Any, body: bytes) -> dict[str, Any]:
    sender = _agency(axis, params)
    if not headers.get("Content-Type", "").startswith(FILE_TYPE):
        raise Refused(400, f"sendEdoc needs the file as {FILE_TYPE}")
    content = _file(body, params.get("hash-file", ""))
    message_type = params.get("messagetype")
    if message_type not in ("edoc", "status"):
        raise Refused(400, f"messagetype {message_type!r} is not edoc or status")
    try:
        root = xml.parse(content, what="file_doc").getroot()
    except RejectedError as exc:
        raise Refused(400, str(exc)) from exc
    origin = first(root, "ed:From/ed:OrganId")
    if origin != sender:
        raise Refused(400, f"From/OrganId '{origin}' is not the calling agency '{sender}'")
    where = "ed:To/ed:OrganId" if message_type == "edoc" else "ed:ResponseFor/ed:OrganId"
    recipients = [text_of(e).strip() for e in root.xpath(_HEADER + where, namespaces=NS)]
    if not recipients:
        raise Refused(400, f"no {where.replace('ed:', '')} to route the {message_type} to")
    if message_type == "status" and recipients == [sender]:
        # A status about the sender's own document (13, asking to recall it) goes
        # to the agencies that document went to.
        recipients = _recipients_of(axis, sender, first(root, "ed:ResponseFor/ed:DocumentId"))
    system = params["systemid"]
    key = params.get(IDEMPOTENCY_PARAM)
    with axis.lock:
        unknown = [r for r in recipients if r not in axis.agencies]
        if unknown:
            raise Refused(400, f"unknown recipient agency {', '.join(unknown)}")
        if key and (system, key) in axis.sent_keys:
            return _ok(DocId=axis.sent_keys[(system, key)], ErrorDesc="duplicate")
        doc_id = axis.deliver(sender, recipients, content, message_type)
        if key:
            axis.sent_keys[(system, key)] = doc_id
    return _ok(DocId=doc_id)


def _recipients_of(axis: SandboxAxis, sender: str, document_id: str) -> list[str]:
    with axis.lock:
        for doc in axis.docs.values():
            if (
                doc.message_type == "edoc"
                and doc.sender == sender
                and doc.document_id == document_id
            ):
                return list(doc.recipients)
    raise Refused(400, f"no document {document_id!r} sent by {sender} to route this status to")


def _item(doc: StoredDoc, agency: str) -> dict[str, str]:
    return {
        "docId": doc.doc_id,
        "serviceType": "eDoc",
        "messageType": doc.message_type,
        "created_time": doc.created,
        "updated_time": doc.updated[agency],
        "from": doc.sender,
        "to": agency,
        "status": doc.status[agency],
        "status_desc": "",
    }


def _waiting(axis: SandboxAxis, params: dict[str, str]) -> list[dict[str, str]]:
    agency = _agency(axis, params)
    kind = params.get("messagetype", "edoc")
    with axis.lock:
        return [
            _item(d, agency)
            for d in axis.docs.values()
            if d.message_type == kind
            and agency in d.recipients
            and d.status[agency] in ("pending", "processing")
        ]


def received(
    axis: SandboxAxis, params: dict[str, str], headers: Any, body: bytes
) -> dict[str, Any]:
    return _ok(data=_waiting(axis, params))


def count(axis: SandboxAxis, params: dict[str, str], headers: Any, body: bytes) -> dict[str, Any]:
    return _ok(count=len(_waiting(axis, params)))


def sent(axis: SandboxAxis, params: dict[str, str], headers: Any, body: bytes) -> dict[str, Any]:
    agency = _agency(axis, params)
    kind = params.get("messagetype", "edoc")
    with axis.lock:
        data = [
            {
                "senderDocId": d.doc_id,
                "receiverDocId": d.doc_id,
                "fromCode": d.sender,
                "toCode": r,
                "sendStatus": "done",
                "sendStatusDesc": "",
                "receiveStatus": d.status[r],
                "receiveStatusDesc": "",
                "sentTime": d.created,
                "receivedTime": d.updated[r],
                "title": d.title,
                "notation": d.notation,
                "serviceType": "eDoc",
                "messageType": d.message_type,
            }
            for d in axis.docs.values()
            if d.message_type == kind and d.sender == agency
            for r in d.recipients
        ]
    return _ok(data=data)


def _doc_for(axis: SandboxAxis, params: dict[str, str]) -> tuple[StoredDoc, str]:
    agency = _agency(axis, params)
    doc_id = params.get("docId", "")
    with axis.lock:
        doc = axis.docs.get(doc_id)
    if doc is None or agency not in doc.recipients:
        raise Refused(404, f"no document '{doc_id}' for agency '{agency}'")
    return doc, agency


def get(axis: SandboxAxis, params: dict[str, str], headers: Any, body: bytes) -> dict[str, Any]:
    doc, _ = _doc_for(axis, params)
    return _ok(
        data=base64.b64encode(doc.content).decode("ascii"),
        hash=sha256_hex(doc.content),
        messageType=doc.message_type,
    )


def download(axis: SandboxAxis, params: dict[str, str], headers: Any, body: bytes) -> bytes:
    return _doc_for(axis, params)[0].content


def update(axis: SandboxAxis, params: dict[str, str], headers: Any, body: bytes) -> dict[str, Any]:
    doc, agency = _doc_for(axis, params)
    status = params.get("status")
    if status not in ("done", "fail", "processing"):
        raise Refused(400, f"status {status!r} is not done, fail or processing")
    with axis.lock:
        doc.status[agency] = status
        doc.updated[agency] = now_text()
    return _ok()


def agencies(
    axis: SandboxAxis, params: dict[str, str], headers: Any, body: bytes
) -> dict[str, Any]:
    with axis.lock:
        return _ok(data=[dict(a) for a in axis.agencies.values()])


def register(
    axis: SandboxAxis, params: dict[str, str], headers: Any, body: bytes
) -> dict[str, Any]:
    try:
        record = json.loads(body)
        code, name = str(record["code"]), str(record["name"])
    except (ValueError, KeyError, TypeError) as exc:
        raise Refused(
            400, "registerAgency needs a JSON record {id, pcode, code, name, mail, ...}"
        ) from exc
    parent = str(record.get("pcode") or "")
    with axis.lock:
        pid = axis.agencies[parent]["id"] if parent in axis.agencies else parent
    axis.register_agency(code, name, pid, str(record.get("mail") or ""))
    return _ok()


def delete(axis: SandboxAxis, params: dict[str, str], headers: Any, body: bytes) -> dict[str, Any]:
    code = params.get("AgencyCode", "")
    with axis.lock:
        if axis.agencies.pop(code, None) is None:
            raise Refused(404, f"no agency '{code}'")
    return _ok()


Call = Callable[["SandboxAxis", dict[str, str], Any, bytes], Any]
ROUTES: dict[tuple[str, str], Call] = {
    ("POST", "/sendEdoc"): send,
    ("POST", "/getReceivedEdocList"): received,
    ("POST", "/getSentEdocList"): sent,
    ("POST", "/countReceiveEdoc"): count,
    ("POST", "/countReceiveStatus"): count,
    ("POST", "/getEdoc"): get,
    ("GET", "/downloadEdoc"): download,
    ("POST", "/updateStatus"): update,
    ("POST", "/getAgenciesList"): agencies,
    ("POST", "/registerAgency"): register,
    ("POST", "/deleteAgency"): delete,
}
