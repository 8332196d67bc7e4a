"""Who marked a delivery as queued: a worker that dies between its commit and its publish.

The mark (``enqueued_at``) keeps the relay from publishing a key twice. When the
process that set it died before publishing, the key is in no queue; knowing
whose mark it is lets the holder reaper clear it at once, instead of the relay
waiting ``requeue_seconds`` for the mark to go stale.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("enqueued_by", sa.String(100)))


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("enqueued_by")
