"""Refusal: the status 02 a sender gets when its document is parked for a reason it can fix.

A document the axis adapter refuses at intake (not edXML, invalid, unsigned
where a signature is required, a broken, untrusted or unbound signature, a
``From`` that is not the sender the axis reports, not addressed to this
agency) stays parked: only its sender can correct it and send it again. With
``on_refuse: status-02`` (the default) the adapter tells the sender so, with a
status 02 whose ``Description`` gives the reason in Vietnamese, signed with the
endpoint's signing key when it has one. What the bus parks later (no route, a
route's ``senders``, access rules) is this agency's to fix, and the sender is
not told.

One 02 per document and endpoint: the refusals sent are kept in the
``axis_refusals`` table, so a document fetched again, or a second copy of it,
brings no second 02.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Column, MetaData, String, Table, Text, or_, select
from sqlalchemy.engine import Engine

from lienthong.store import UtcDateTime

from . import edxml
from .register import insert_ignoring

ON_REFUSE = ("status-02", "silent")

#: What the sender is told for each kind of problem, by the prefix the checks give it.
REASONS: tuple[tuple[str, str], ...] = (
    ("signature missing", "văn bản chưa được ký số, trong khi văn bản này phải ký số"),
    (
        "signature invalid",
        "chữ ký số không hợp lệ (văn bản bị thay đổi sau khi ký hoặc chữ ký bị lỗi)",
    ),
    (
        "signature untrusted",
        "chứng thư số của người ký không được tin cậy, đã hết hạn hoặc đã bị thu hồi",
    ),
    ("signature not bound", "người ký không có thẩm quyền ký văn bản của cơ quan gửi"),
    (
        "sender mismatch",
        "mã định danh cơ quan gửi trong văn bản khác với cơ quan gửi trên trục liên thông",
    ),
    ("recipient unknown", "văn bản không gửi đến cơ quan này"),
)
#: Every other problem at intake: the edXML itself (schema, rules, attachments).
INVALID_REASON = "gói tin edXML không hợp lệ"
#: How long the technical detail after the reasons may be, so the Description stays readable.
DETAIL_CHARS = 400

metadata = MetaData()

refusals = Table(
    "axis_refusals",
    metadata,
    Column("endpoint", String(100), primary_key=True),
    Column("axis_doc_id", String(100), primary_key=True),
    Column("message_id", String(64), nullable=False),
    Column("organ_id", String(64), nullable=False),  # the refusing agency
    Column("document_id", String(300), nullable=False),
    Column("correlation_id", String(64), nullable=False, index=True),
    Column("sender", String(64), nullable=False),
    Column("reason", Text, nullable=False),
    Column("status_doc_id", String(100), nullable=False),
    Column("sent_at", UtcDateTime, nullable=False),
)


def reasons(problems: list[str]) -> list[str]:
    """The Vietnamese reasons for ``problems``, each once, in the order of :data:`REASONS`."""
    found = [text for prefix, text in REASONS if any(p.startswith(prefix) for p in problems)]
    known = tuple(prefix for prefix, _ in REASONS)
    if any(not p.startswith(known) for p in problems):
        found.append(INVALID_REASON)
    return found


def description(problems: list[str]) -> str:
    """The 02's ``Description``: the reasons in Vietnamese, then the first problem as found."""
    detail = " ".join(problems[0].split()) if problems else ""
    if len(detail) > DETAIL_CHARS:
        detail = detail[: DETAIL_CHARS - 3] + "..."
    text = (
        "Từ chối tiếp nhận văn bản điện tử: "
        + "; ".join(reasons(problems))
        + ". Đề nghị cơ quan gửi kiểm tra, khắc phục và gửi lại."
    )
    return f"{text} Chi tiết kỹ thuật: {detail}" if detail else text


def status_02(
    document: edxml.Document,
    *,
    organ_id: str,
    organ_name: str | None,
    sender: str,
    problems: list[str],
    now: datetime,
) -> edxml.Status:
    """The status 02 by which ``organ_id`` refuses ``document``, sent by ``sender``."""
    code = "/".join(p for p in (document.code_number, document.code_notation) if p)
    return edxml.Status(
        sender=edxml.Organization(organ_id=organ_id, organ_name=organ_name),
        response_for=edxml.ResponseFor(
            organ_id=sender,
            code=code or None,
            promulgation_date=document.promulgation_date or None,
            document_id=document.document_id,
        ),
        staff=edxml.StaffInfo(department="Văn thư", staff="lienthong (tự động)"),
        status_code="02",
        description=description(problems),
        timestamp=now.strftime(edxml.TIMESTAMP_FORMAT),
    )


@dataclass(frozen=True)
class Refused:
    """A status 02 this bus sent, as ``edxml history`` shows it."""

    endpoint: str
    organ_id: str
    document_id: str
    sender: str
    reason: str
    sent_at: datetime


def already(engine: Engine, endpoint: str, axis_doc_id: str, sender: str, document_id: str) -> bool:
    """Whether ``endpoint`` already refused this axis item, or this document from this sender."""
    with engine.connect() as conn:
        found = conn.execute(
            select(refusals.c.axis_doc_id)
            .where(refusals.c.endpoint == endpoint)
            .where(
                or_(
                    refusals.c.axis_doc_id == axis_doc_id,
                    (refusals.c.sender == sender) & (refusals.c.document_id == document_id),
                )
            )
            .limit(1)
        ).first()
    return found is not None


def record(engine: Engine, **row: object) -> None:
    """Keep a sent refusal (the columns of ``axis_refusals``)."""
    with engine.begin() as conn:
        insert_ignoring(conn, refusals, [row])


def of_correlation(engine: Engine, correlation_id: str) -> list[Refused]:
    """The refusals sent for one document (by its correlation id), oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(refusals)
            .where(refusals.c.correlation_id == correlation_id)
            .order_by(refusals.c.sent_at)
        ).all()
    return [
        Refused(r.endpoint, r.organ_id, r.document_id, r.sender, r.reason, r.sent_at) for r in rows
    ]
