"""Ordered deliveries: a delivery's order group and its place in it (a route target's order_by).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("order_group", sa.String(200)))
        batch.add_column(sa.Column("order_seq", sa.String(200)))
        batch.create_index("ix_deliveries_order", ["endpoint", "order_group", "state"])


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_index("ix_deliveries_order")
        batch.drop_column("order_seq")
        batch.drop_column("order_group")
