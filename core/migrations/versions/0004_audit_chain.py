"""Chain the audit trail by hash, so an altered or removed record is detected.

Records written before this revision get their hashes computed here, in id order.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from lienthong.audit import GENESIS, record_hash

    with op.batch_alter_table("audit") as batch:
        batch.add_column(sa.Column("prev_hash", sa.String(64), nullable=False, server_default=""))
        batch.add_column(sa.Column("hash", sa.String(64), nullable=False, server_default=""))
    conn = op.get_bind()
    previous = GENESIS
    rows = (
        conn.execute(
            sa.text("SELECT id, message_id, at, event, endpoint, detail FROM audit ORDER BY id")
        )
        .mappings()
        .all()
    )
    for row in rows:
        digest = record_hash(previous, dict(row))
        conn.execute(
            sa.text("UPDATE audit SET prev_hash = :p, hash = :h WHERE id = :i"),
            {"p": previous, "h": digest, "i": row["id"]},
        )
        previous = digest


def downgrade() -> None:
    with op.batch_alter_table("audit") as batch:
        batch.drop_column("hash")
        batch.drop_column("prev_hash")
