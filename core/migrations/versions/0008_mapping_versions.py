"""Mapping versions in the store: which version of which mapping made each delivery.

``mapping_versions`` keeps each mapping version's text (its stylesheet and
includes, :meth:`lienthong.mapping.MappingVersion.to_text`) under its hash, with
when it was first and last used; each delivery names the mapping, the version's
hash and the params that made its body; ``mapping_inputs`` keeps the body each
mapped message was mapped from, for ``bus.mapping_inputs_days``, so
``lienthong mapping diff`` can run an old and a new version on real traffic.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mapping_versions",
        sa.Column("hash", sa.String(64), primary_key=True),
        sa.Column("mapping", sa.String(300), nullable=False, index=True),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("first_used", sa.DateTime, nullable=False),
        sa.Column("last_used", sa.DateTime, nullable=False),
    )
    op.add_column("deliveries", sa.Column("mapping", sa.String(300)))
    op.add_column("deliveries", sa.Column("mapping_hash", sa.String(64)))
    op.add_column("deliveries", sa.Column("mapping_params", sa.Text))
    op.create_index("ix_deliveries_mapping", "deliveries", ["mapping", "mapping_hash"])
    op.create_table(
        "mapping_inputs",
        sa.Column("message_id", sa.String(64), sa.ForeignKey("messages.id"), primary_key=True),
        sa.Column("kept_at", sa.DateTime, nullable=False, index=True),
        sa.Column("body", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("mapping_inputs")
    op.drop_index("ix_deliveries_mapping", "deliveries")
    with op.batch_alter_table("deliveries") as batch:  # SQLite rebuilds the table
        batch.drop_column("mapping_params")
        batch.drop_column("mapping_hash")
        batch.drop_column("mapping")
    op.drop_table("mapping_versions")
