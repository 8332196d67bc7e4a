"""The register entry of an edXML document the adapter sent or took in.

Entries feed ``edxml history`` and ``edxml overdue`` (:mod:`.register`): each
names the document, its business, the documents it concerns, and who sent it
to whom.
"""

from __future__ import annotations

import logging

from lxml import etree
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from lienthong.errors import RejectedError
from lienthong.message import Message
from lienthong.store import utcnow

from . import edxml, register
from .correlation import BUSINESS_HEADER, CONCERNS_HEADER, CONCERNS_SEPARATOR, facts
from .edxml import Document

# The adapter's logger, as before this module was split from it: log filters keep matching.
log = logging.getLogger(f"{__package__}.adapter")


def entry(
    message: Message,
    document: Document,
    *,
    endpoint: str,
    organ_id: str,
    direction: str,
    sender: str,
) -> register.Entry:
    """The entry of ``document``, sent (``out``) or taken in (``in``) as ``message``."""
    headers = message.headers
    return register.Entry(
        message_id=message.id,
        endpoint=endpoint,
        direction=direction,
        organ_id=organ_id,
        document_id=document.document_id or "",
        correlation_id=message.correlation_id,
        sender=sender,
        recipients=tuple(document.recipient_ids),
        business=headers.get(BUSINESS_HEADER, "new"),
        concerns=tuple(c for c in headers.get(CONCERNS_HEADER, "").split(CONCERNS_SEPARATOR) if c),
        subject=document.subject or "",
        at=utcnow(),
    )


def register_sent(
    engine: Engine, message: Message, tree: etree._ElementTree, *, endpoint: str, organ_id: str
) -> None:
    """Register a document sent, for ``edxml overdue`` and its history's links."""
    try:
        document = edxml.read_root(tree.getroot())
    except RejectedError:
        return  # send validated it; a document that cannot be read is not registered
    if not isinstance(document, Document) or not document.document_id:
        return
    found = facts(tree.getroot())
    if found is not None:
        message.headers.update(found.headers())
        message.correlation_id = found.correlation_id
    sent = entry(
        message, document, endpoint=endpoint, organ_id=organ_id, direction="out", sender=organ_id
    )
    try:
        register.record(engine, [sent])
    except SQLAlchemyError as exc:
        # Sent already: only the register's index misses it; say so, do not send again.
        log.warning(
            "endpoint '%s': document %s was sent but not registered: %s",
            endpoint,
            document.document_id,
            exc,
        )
