"""Alembic revisions, applied in order by ``lienthong db upgrade``."""
