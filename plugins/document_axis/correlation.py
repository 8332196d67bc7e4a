"""Correlation: one id shared by an edXML document and every status that answers it.

A document's ``DocumentId`` (``organ,yyyy/MM/dd,number/notation``) is the one
name all agencies use for it; a status names the document it answers in
``ResponseFor/DocumentId``. Both become the same correlation id,
``edxml-`` + the first 32 hex digits of SHA-256(DocumentId), so ``lienthong
trace`` and ``lienthong edxml history`` find a document's whole life in any
agency's store without knowing which message came first.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from lxml import etree

from .edxml import BUSINESS_DOC_TYPES, NS, text_of

PREFIX = "edxml-"
_Q = f"{{{NS}}}"
_HEADER = f"{_Q}edXMLEnvelope/{_Q}edXMLHeader/{_Q}MessageHeader"

#: Headers :meth:`Facts.headers` sets, for routes to match on.
DOCUMENT_ID_HEADER = "edxml_document_id"
KIND_HEADER = "edxml_kind"
STATUS_HEADER = "edxml_status"
FROM_HEADER = "edxml_from"
#: What a document does (new, revoke, update, replace) and the earlier documents it concerns.
BUSINESS_HEADER = "edxml_business"
CONCERNS_HEADER = "edxml_concerns"
#: A document's recipients (``To/OrganId``), comma-separated.
TO_HEADER = "edxml_to"
#: What to do with any edXML message, fit for a file name: a document's business
#: (``new``, ``revoke``, ...) or ``status-NN`` for a status.
ACTION_HEADER = "edxml_action"
#: Separates the DocumentIds in ``edxml_concerns``: a DocumentId holds commas, never this.
CONCERNS_SEPARATOR = " | "


def _safe(code: str) -> bool:
    return code.isascii() and code.isalnum() and len(code) <= 4


def correlation_id(document_id: str) -> str:
    """The correlation id of the document called ``document_id`` (64 characters at most)."""
    digest = hashlib.sha256(document_id.strip().encode("utf-8")).hexdigest()
    return PREFIX + digest[:32]


@dataclass(frozen=True)
class Facts:
    """What an edXML message says about the document it is, or answers."""

    kind: str  # "document" or "status"
    document_id: str
    status_code: str = ""
    sender: str = ""
    business: str = ""  # documents: new, revoke, update, replace (or unknown)
    concerns: tuple[
        str, ...
    ] = ()  # the earlier documents a revocation, update or replacement is of
    recipients: tuple[str, ...] = ()

    @property
    def correlation_id(self) -> str:
        return correlation_id(self.document_id)

    def headers(self) -> dict[str, str]:
        """The routing headers: document id, kind, sender; a status's code; a document's business.

        A document's ``edxml_business`` says what it does and ``edxml_concerns``
        which earlier documents (their DocumentIds, joined by ``" | "``) it revokes,
        updates or replaces; ``edxml_action`` (the business, or ``status-NN``) fits
        a file name, so a route, a drop folder or a document system can act on
        any message without reading the edXML.
        """
        found = {DOCUMENT_ID_HEADER: self.document_id, KIND_HEADER: self.kind}
        if self.sender:
            found[FROM_HEADER] = self.sender
        if self.kind == "status":
            found[STATUS_HEADER] = self.status_code
            found[ACTION_HEADER] = (
                f"status-{self.status_code}" if _safe(self.status_code) else "status"
            )
        else:
            found[ACTION_HEADER] = self.business
            found[BUSINESS_HEADER] = self.business
            found[TO_HEADER] = ",".join(self.recipients)
            if self.concerns:
                found[CONCERNS_HEADER] = CONCERNS_SEPARATOR.join(self.concerns)
        return found


def facts(root: etree._Element) -> Facts | None:
    """The facts of an edXML root element; ``None`` for anything else or with no DocumentId.

    Never raises: a message that is not edXML, or is edXML too broken to name
    its document, is simply not correlated here (validation reports it).
    """
    if root.tag != _Q + "edXML":
        return None
    header = root.find(_HEADER)
    if header is None:
        return None
    code = header.find(_Q + "StatusCode")
    if code is not None:
        document_id = _text(header, f"{_Q}ResponseFor/{_Q}DocumentId")
        kind, status_code = "status", text_of(code).strip()
    else:
        document_id = _text(header, _Q + "DocumentId")
        kind, status_code = "document", ""
    if not document_id:
        return None
    sender = _text(header, f"{_Q}From/{_Q}OrganId")
    if kind == "status":
        return Facts(kind, document_id, status_code, sender)
    recipients = tuple(
        value for e in header.iterfind(f"{_Q}To/{_Q}OrganId") if (value := text_of(e).strip())
    )
    business, concerns = _business(root)
    return Facts(
        kind,
        document_id,
        sender=sender,
        business=business,
        concerns=concerns,
        recipients=recipients,
    )


def _business(root: etree._Element) -> tuple[str, tuple[str, ...]]:
    """What a document does and the earlier documents it concerns (``Bussiness``, sic).

    A revocation or update names the document in ``Bussiness/DocumentId``; a
    replacement lists the documents it replaces in ``ReplacementInfoList`` (and
    may name one in ``DocumentId`` too). A document with no ``Bussiness`` is new.
    """
    business = root.find(f"{_Q}edXMLEnvelope/{_Q}edXMLHeader/{_Q}TraceHeaderList/{_Q}Bussiness")
    if business is None:
        return "new", ()
    code = _text(business, _Q + "BussinessDocType")
    name = BUSINESS_DOC_TYPES.get(code or "0", "unknown")
    if name == "new":
        return name, ()
    concerns = [_text(business, _Q + "DocumentId")]
    concerns += [
        text_of(e).strip()
        for e in business.iterfind(f"{_Q}ReplacementInfoList/{_Q}ReplacementInfo/{_Q}DocumentId")
    ]
    return name, tuple(dict.fromkeys(c for c in concerns if c))


def _text(parent: etree._Element, path: str) -> str:
    """All the text of the first element at ``path``: a comment cannot cut a value short."""
    found = parent.find(path)
    return "" if found is None else text_of(found).strip()
