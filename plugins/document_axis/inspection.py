"""Inspection: everything the bus checks in one received edXML message, on one parse.

The axis adapter reads (the model), checks (:mod:`.validation`: schema, rules,
attachments opened as a receiver would) and verifies (:mod:`.provenance`:
sender, signature, chain, binding) each message it takes in. Each of those
also exists on bytes for the command line; here they share one tree, and the
attachments decoded for the model are the ones the checks open, so a 360 KB
document is parsed once and its attachments decoded once.

A document must also be addressed to the agency that receives it: the axis
lists it for ``organ_id``, and a document whose ``To`` (and, for an update,
``ReceiverList``) does not name that agency is refused as ``recipient
unknown``, for its sender to correct.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from lxml import etree

from lienthong.errors import RejectedError

from . import edxml, validation
from .provenance import Provenance, Verdict

_Q = f"{{{edxml.NS}}}"
_HEADER = f"{_Q}edXMLEnvelope/{_Q}edXMLHeader/{_Q}MessageHeader/"


@dataclass
class Inspection:
    """What one received message is, and everything wrong with it."""

    message: edxml.Document | edxml.Status | None  # None when it cannot be read
    verdict: Verdict
    problems: list[str] = field(default_factory=list)  # errors: the bus parks the message
    warnings: list[str] = field(default_factory=list)


def inspect(
    tree: etree._ElementTree,
    *,
    provenance: Provenance,
    axis_sender: str = "",
    document: bool = True,
    organ_id: str | None = None,
    max_attachment_bytes: int = validation.DEFAULT_ATTACHMENT_BYTES,
    now: date | None = None,
) -> Inspection:
    """Read, check and verify ``tree``, the message the axis reported from ``axis_sender``.

    ``document`` is false for what the axis lists as a status (its type never
    requires a signature by name). ``organ_id`` is the receiving agency: a
    document not addressed to it is a problem. Raises ``TransientError`` when
    revocation cannot be checked now.
    """
    root = tree.getroot()
    message: edxml.Document | edxml.Status | None
    try:
        message = edxml.read_root(root)
    except RejectedError:
        message = None  # the checks below say what is wrong with it
    decoded = [a.data for a in message.attachments] if isinstance(message, edxml.Document) else None
    found = validation.check_tree(
        tree, now=now, max_attachment_bytes=max_attachment_bytes, decoded=decoded
    )
    problems = [str(p) for p in found if p.is_error]
    warnings = [str(p) for p in found if not p.is_error]
    if organ_id and isinstance(message, edxml.Document):
        addressed = set(message.recipient_ids)
        if message.business is not None and message.business.receivers:
            addressed.update(r.organ_id for r in message.business.receivers if r.organ_id)
        if organ_id not in addressed:
            problems.append(
                f"recipient unknown: the document is addressed to "
                f"{', '.join(sorted(addressed)) or 'no agency'}, not to this agency "
                f"{organ_id!r}, to which the axis delivered it. Hint: the sender must put the "
                "recipient's code in To/OrganId and re-send"
            )
    verdict = provenance.check(
        root,
        axis_sender=axis_sender,
        document_sender=_text(root, "From/OrganId"),
        type_name=_text(root, "DocumentType/TypeName") if document else None,
    )
    problems.extend(verdict.problems)
    return Inspection(message, verdict, problems, warnings)


def _text(root: etree._Element, path: str) -> str:
    found = root.find(_HEADER + "/".join(_Q + step for step in path.split("/")))
    return "" if found is None else edxml.text_of(found).strip()
