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

from .edxml import NS, text_of

PREFIX = "edxml-"
_Q = f"{{{NS}}}"
_HEADER = f"{_Q}edXMLEnvelope/{_Q}edXMLHeader/{_Q}MessageHeader"

#: Headers :func:`headers_for` sets, for routes to match on.
DOCUMENT_ID_HEADER = "edxml_document_id"
KIND_HEADER = "edxml_kind"
STATUS_HEADER = "edxml_status"
FROM_HEADER = "edxml_from"


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

    @property
    def correlation_id(self) -> str:
        return correlation_id(self.document_id)

    def headers(self) -> dict[str, str]:
        """The routing headers: document id, kind, sender and, for a status, its code."""
        found = {DOCUMENT_ID_HEADER: self.document_id, KIND_HEADER: self.kind}
        if self.sender:
            found[FROM_HEADER] = self.sender
        if self.kind == "status":
            found[STATUS_HEADER] = self.status_code
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
    return Facts(kind, document_id, status_code, sender)


def _text(header: etree._Element, path: str) -> str:
    """All the text of the first element at ``path``: a comment cannot cut a value short."""
    found = header.find(path)
    return "" if found is None else text_of(found).strip()
