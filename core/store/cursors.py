"""Named positions of incremental sources, in the ``cursors`` table."""

from __future__ import annotations

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine

from .schema import cursors, utcnow


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
        now = utcnow()
        with self.engine.begin() as conn:
            updated = conn.execute(
                update(cursors).where(cursors.c.name == name).values(value=value, updated_at=now)
            ).rowcount
            if not updated:
                conn.execute(insert(cursors).values(name=name, value=value, updated_at=now))
