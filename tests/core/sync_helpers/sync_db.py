"""Engines for the sync tests: a SQLite file, or a throw-away schema on a local PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, make_url, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from lienthong.store import metadata

PG_URL = os.environ.get("LIENTHONG_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
_where = make_url(PG_URL)
PG_MISSING = (
    f"PostgreSQL not reachable at {_where.host}:{_where.port or 5432}: start it with "
    "'pg_ctlcluster 15 main start' (database 'test', user 'postgres' trusted on 127.0.0.1), "
    "or set LIENTHONG_TEST_PG to another URL"
)


def engine_for(url: str, schema: str | None = None) -> Engine:
    """An engine on ``url``; on PostgreSQL every connection works inside ``schema``."""
    if schema:
        return create_engine(url, connect_args={"options": f"-csearch_path={schema}"})
    return create_engine(url)


def postgres_reachable() -> str | None:
    """None when the test server answers, else why not."""
    admin = create_engine(PG_URL)
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        return f"{PG_MISSING} ({str(exc.orig).strip().splitlines()[0]})"
    finally:
        admin.dispose()
    return None


@contextmanager
def postgres_schema() -> Iterator[tuple[Engine, str]]:
    """A fresh schema with the store's tables, dropped afterwards."""
    schema = f"lt_sync_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = engine_for(PG_URL, schema)
    try:
        metadata.create_all(engine)
        yield engine, schema
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
