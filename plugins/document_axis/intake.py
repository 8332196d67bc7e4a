"""The receive path: what waits on the axis, fetched, inspected, handed over, then acknowledged.

Each item listed for the endpoint's agency is fetched and made a message with
its routing headers and every problem inspecting it found. The bus takes the
batch; the documents taken in and the certificates that signed them are
registered; a document refused for a reason its sender can fix brings its
sender a status 02 (``on_refuse``); only then is each item acknowledged to the
axis: ``done`` once stored, ``fail`` when the bus parked it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lxml import etree
from sqlalchemy.exc import SQLAlchemyError

from lienthong.adapter import INVALID_HEADER, Acceptance, Inbox, Services
from lienthong.errors import RejectedError, TransientError
from lienthong.message import Message
from lienthong.store import utcnow
from lienthong.xml import XmlRejected

from . import certificates, edxml, entries, refusal, register
from .client import AxisAuthError, AxisClient, ReceivedItem
from .correlation import DOCUMENT_ID_HEADER, facts
from .edxml import Document, text_of
from .edxml import build as edxml_build
from .inspection import Inspection, inspect
from .provenance import Provenance
from .validation import parse_problem

# The adapter's logger, as before this module was split from it: log filters keep matching.
log = logging.getLogger(f"{__package__}.adapter")

NS = {"ed": "http://www.mic.gov.vn/TBT/QCVN_102_2016"}
_HEADER = "/ed:edXML/ed:edXMLEnvelope/ed:edXMLHeader/ed:MessageHeader/"
KIND_DOCUMENT = "edxml.document"
KIND_STATUS = "edxml.status"


def header_text(tree: etree._ElementTree, path: str) -> str:
    """The text at ``path`` in the edXML message header; '' when absent."""
    return str(tree.xpath(f"string({_HEADER}{path})", namespaces=NS)).strip()


def _texts(tree: etree._ElementTree, path: str) -> list[str]:
    """Each element's whole text: ``text()`` would split a value at a comment into two."""
    return [text_of(e).strip() for e in tree.xpath(f"{_HEADER}{path}", namespaces=NS)]


@dataclass(frozen=True)
class Received:
    item: ReceivedItem
    message: Message
    inspection: Inspection | None


class Intake:
    """One endpoint's receive path, from the axis's list to its acknowledgements."""

    def __init__(
        self,
        endpoint: str,
        settings: Mapping[str, Any],
        services: Services,
        *,
        provenance: Callable[[], Provenance],
        sign: Callable[[bytes], bytes],
    ) -> None:
        """``provenance`` is asked at each inspection: it refuses until the adapter started."""
        self.endpoint = endpoint
        self.settings = settings
        self.services = services
        self._provenance = provenance
        self._sign = sign

    def receive(self, client: AxisClient, inbox: Inbox) -> int:
        """Poll once: fetch, hand over, register, refuse, then acknowledge each item."""
        batch = int(self.settings["batch_size"])
        received: list[Received] = []
        for message_type in ("edoc", "status"):
            for item in client.received(message_type=message_type)[:batch]:
                self._check_addressee(item)
                try:
                    body = client.fetch(item.doc_id)
                except RejectedError as exc:
                    log.warning(
                        "endpoint '%s': skipping axis item %s: %s", self.endpoint, item.doc_id, exc
                    )
                    continue
                message, inspection = self.take(item, body)
                received.append(Received(item, message, inspection))
        if not received:
            return 0
        acceptances = inbox.accept([r.message for r in received])
        self._remember(received, acceptances)
        for r, acceptance in zip(received, acceptances, strict=True):
            if acceptance.parked:
                try:
                    self._refuse(client, r, acceptance)
                except TransientError as exc:
                    # Left unacknowledged: the next poll takes it again and refuses it then.
                    log.warning(
                        "endpoint '%s': the status 02 for axis item %s was not sent (%s); the "
                        "item stays on the axis until it is",
                        self.endpoint,
                        r.item.doc_id,
                        exc,
                    )
                    continue
                except RejectedError as exc:
                    # The axis refused the 02 itself: sending it again cannot help.
                    log.warning(
                        "endpoint '%s': the axis refused the status 02 for item %s: %s",
                        self.endpoint,
                        r.item.doc_id,
                        exc,
                    )
            client.update_status(r.item.doc_id, "fail" if acceptance.parked else "done")
        return len(received)

    def take(self, item: ReceivedItem, body: bytes) -> tuple[Message, Inspection | None]:
        """The message for one fetched item and what inspecting it found (None if not XML)."""
        kind = KIND_STATUS if item.message_type == "status" else KIND_DOCUMENT
        headers = {"axis_doc_id": item.doc_id, "from": item.from_}
        message = Message(
            body=body, kind=kind, source=self.endpoint, source_key=item.doc_id, headers=headers
        )
        try:
            tree = message.tree(max_bytes=self.services.max_message_bytes)
        except XmlRejected as exc:
            headers[INVALID_HEADER] = str(parse_problem(exc))
            return message, None
        found = facts(tree.getroot())
        if found is not None:
            # Set here too, not only in the prepare hook: a message parked as
            # invalid skips that hook but still belongs to its document's history.
            message.correlation_id = found.correlation_id
            headers.update(found.headers())
        response_for = header_text(tree, "ed:ResponseFor/ed:DocumentId")
        if response_for:
            headers["response_for"] = response_for
        if kind == KIND_STATUS:
            headers["to"] = header_text(tree, "ed:ResponseFor/ed:OrganId")
            headers["status_code"] = header_text(tree, "ed:StatusCode")
        else:
            headers["document_id"] = header_text(tree, "ed:DocumentId")
            headers["to"] = ",".join(_texts(tree, "ed:To/ed:OrganId"))
        inspection = inspect(
            tree,
            provenance=self._provenance(),
            axis_sender=item.from_,
            document=kind == KIND_DOCUMENT,
            organ_id=None if kind == KIND_STATUS else str(self.settings["organ_id"]),
            max_attachment_bytes=int(self.settings["max_attachment_bytes"]),
        )
        for warning in inspection.warnings:
            log.warning("endpoint '%s': %s", self.endpoint, warning)
        headers.update(inspection.verdict.headers())
        if inspection.problems:
            headers[INVALID_HEADER] = "; ".join(inspection.problems)
        return message, inspection

    def _check_addressee(self, item: ReceivedItem) -> None:
        """The axis lists what waits for the system's own agency: it must be ``organ_id``."""
        organ = self.settings["organ_id"]
        if item.to and item.to != organ:
            raise AxisAuthError(
                f"endpoint '{self.endpoint}': the axis lists item {item.doc_id} for agency "
                f"'{item.to}' to system '{self.settings['system_id']}', but this endpoint "
                f"receives for '{organ}'. Hint: the axis binds each system to one agency: "
                "check 'organ_id' and 'system_id'",
                option="organ_id",
            )

    def _remember(self, received: list[Received], acceptances: list[Acceptance]) -> None:
        """Register the documents taken in and the signing certificates verified."""
        engine = self.services.engine
        if engine is None:
            return
        now = self.services.clock()
        taken, seen = [], []
        for r, acceptance in zip(received, acceptances, strict=True):
            inspection = r.inspection
            if inspection is None:
                continue
            document_id = r.message.headers.get(DOCUMENT_ID_HEADER, "")
            info = inspection.verdict.signature
            if info is not None:
                seen.append(
                    certificates.Seen.of(
                        info,
                        agency=inspection.verdict.sender,
                        document_id=document_id,
                        endpoint=self.endpoint,
                        at=now,
                    )
                )
            document = inspection.message
            if not acceptance.parked and isinstance(document, Document) and document_id:
                taken.append(
                    entries.entry(
                        r.message,
                        document,
                        endpoint=self.endpoint,
                        organ_id=str(self.settings["organ_id"]),
                        direction="in",
                        sender=inspection.verdict.sender,
                    )
                )
        try:
            register.record(engine, taken)
            certificates.record(engine, seen)
        except SQLAlchemyError as exc:
            raise TransientError(
                f"endpoint '{self.endpoint}': the axis register could not be written: {exc}"
            ) from exc

    def _refuse(self, client: AxisClient, received: Received, acceptance: Acceptance) -> None:
        """Send the sender a status 02 for a document refused at intake (``on_refuse``)."""
        inspection = received.inspection
        message = received.message
        if (
            self.settings["on_refuse"] != "status-02"
            or INVALID_HEADER not in message.headers  # parked later: ours to fix, not the sender's
            or inspection is None
            or not isinstance(inspection.message, Document)
            or not inspection.message.document_id
        ):
            return
        document = inspection.message
        sender = inspection.verdict.sender
        engine = self.services.engine
        doc_id = received.item.doc_id
        if engine is None:
            if acceptance.duplicate:
                return  # no store to tell whether it was refused already
        elif refusal.already(engine, self.endpoint, doc_id, sender, document.document_id or ""):
            return
        status = refusal.status_02(
            document,
            organ_id=str(self.settings["organ_id"]),
            organ_name=self.settings.get("organ_name"),
            sender=sender,
            problems=inspection.problems,
            now=edxml.axis_now(self.services.clock()),
        )
        body = self._sign(edxml_build(status))
        status_doc_id = client.send(
            body,
            organ_id=str(self.settings["organ_id"]),
            message_type="status",
            key=f"status-02-{doc_id}",
        )
        log.info(
            "endpoint '%s': refused %s from %s with status 02 (axis docId %s)",
            self.endpoint,
            document.document_id,
            sender,
            status_doc_id,
        )
        if engine is not None:
            refusal.record(
                engine,
                endpoint=self.endpoint,
                axis_doc_id=doc_id,
                message_id=acceptance.message_id,
                organ_id=str(self.settings["organ_id"]),
                document_id=document.document_id or "",
                correlation_id=message.correlation_id,
                sender=sender,
                reason=status.description or "",
                status_doc_id=status_doc_id,
                sent_at=utcnow(),
            )
