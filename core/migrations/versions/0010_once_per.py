"""A route target's once_per: which message used each value, so a later one is not sent.

One row per (route, endpoint, value), its key the primary key: the accept that
inserts it sends, an accept that finds it taken (committed, or being committed
by another worker, which it waits for) does not.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "once_per",
        sa.Column("route", sa.String(100), primary_key=True),
        sa.Column("endpoint", sa.String(100), primary_key=True),
        sa.Column("value", sa.String(200), primary_key=True),
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("delivery_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("once_per")
