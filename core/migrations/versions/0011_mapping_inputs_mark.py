"""A kept mapping input is a mark, not a copy: ``mapping_inputs`` loses its body.

The body a mapped message was mapped from is its body in ``messages``, never
changed once stored, and a ``mapping_inputs`` row cannot outlive its message
(a foreign key), so ``lienthong mapping diff`` reads it from there. The row
still says the input is kept and since when (``bus.mapping_inputs_days``).
The downgrade copies each message's body back.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("mapping_inputs") as batch:  # SQLite rebuilds the table
        batch.drop_column("body")


def downgrade() -> None:
    with op.batch_alter_table("mapping_inputs") as batch:
        batch.add_column(sa.Column("body", sa.LargeBinary))
    op.execute(
        "UPDATE mapping_inputs SET body = "
        "(SELECT messages.body FROM messages WHERE messages.id = mapping_inputs.message_id)"
    )
    with op.batch_alter_table("mapping_inputs") as batch:
        batch.alter_column("body", existing_type=sa.LargeBinary, nullable=False)
