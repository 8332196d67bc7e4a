"""The store: messages, deliveries, attempts, dead letters, cursors, audit, leases.

Work in progress: the tables are declared here on one ``metadata`` that other core
modules extend; the Alembic migrations in ``migrations/`` create them.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Column, DateTime, MetaData, String, Table, Text, insert, select, update
from sqlalchemy.engine import Engine

metadata = MetaData()

cursors = Table(
    "cursors",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)


class Cursors:
    """Named positions in the ``cursors`` table (see :class:`lienthong.adapter.Cursors`)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, name: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(
                select(cursors.c.value).where(cursors.c.name == name)
            ).scalar_one_or_none()

    def set(self, name: str, value: str) -> None:
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            updated = conn.execute(
                update(cursors).where(cursors.c.name == name).values(value=value, updated_at=now)
            ).rowcount
            if not updated:
                conn.execute(insert(cursors).values(name=name, value=value, updated_at=now))
