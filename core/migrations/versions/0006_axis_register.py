"""The document axis's own tables: documents through the axis, refusals sent, signers met.

Owned by the document_axis plugin (``plugins/document_axis/register.py``,
``refusal.py``, ``certificates.py``): which documents crossed an axis endpoint
(for ``edxml overdue`` and the links between a document and what revoked,
updated or replaced it), the status 02 refusals sent to senders (one per
document), and the signing certificates whose signatures were verified
(``edxml certs`` and the expiry gauge).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "axis_documents",
        sa.Column("endpoint", sa.String(100), primary_key=True),
        sa.Column("direction", sa.String(3), primary_key=True),
        sa.Column("sender", sa.String(64), primary_key=True),
        sa.Column("document_id", sa.String(300), primary_key=True),
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("organ_id", sa.String(64), nullable=False),
        sa.Column("correlation_id", sa.String(64), nullable=False, index=True),
        sa.Column("recipients", sa.Text, nullable=False),
        sa.Column("business", sa.String(16), nullable=False),
        sa.Column("concerns", sa.Text, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("at", sa.DateTime, nullable=False, index=True),
    )
    op.create_table(
        "axis_refusals",
        sa.Column("endpoint", sa.String(100), primary_key=True),
        sa.Column("axis_doc_id", sa.String(100), primary_key=True),
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("organ_id", sa.String(64), nullable=False),
        sa.Column("document_id", sa.String(300), nullable=False),
        sa.Column("correlation_id", sa.String(64), nullable=False, index=True),
        sa.Column("sender", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("status_doc_id", sa.String(100), nullable=False),
        sa.Column("sent_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "axis_certificates",
        sa.Column("fingerprint", sa.String(64), primary_key=True),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("issuer", sa.Text, nullable=False),
        sa.Column("serial", sa.String(80), nullable=False),
        sa.Column("not_valid_before", sa.DateTime, nullable=False),
        sa.Column("not_valid_after", sa.DateTime, nullable=False, index=True),
        sa.Column("agency", sa.String(64), nullable=False),
        sa.Column("trusted", sa.Boolean, nullable=False),
        sa.Column("first_seen", sa.DateTime, nullable=False),
        sa.Column("last_seen", sa.DateTime, nullable=False),
        sa.Column("last_document", sa.String(300), nullable=False),
        sa.Column("last_endpoint", sa.String(100), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("axis_certificates")
    op.drop_table("axis_refusals")
    op.drop_table("axis_documents")
