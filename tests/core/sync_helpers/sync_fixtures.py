"""Fixtures shared by the sync, scheduler and lease tests (imported by each test module)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sync_db import PG_URL, engine_for, postgres_reachable, postgres_schema

from lienthong.store import metadata


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = engine_for(f"sqlite:///{tmp_path / 'bus.db'}")
    metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_engine() -> Iterator[Engine]:
    missing = postgres_reachable()
    if missing:
        pytest.skip(missing)
    with postgres_schema() as (engine, _schema):
        yield engine


@pytest.fixture
def pg_schema() -> Iterator[tuple[Engine, str, str]]:
    """Engine, schema and URL, for tests that start worker processes on the same schema."""
    missing = postgres_reachable()
    if missing:
        pytest.skip(missing)
    with postgres_schema() as (engine, schema):
        yield engine, schema, PG_URL


@pytest.fixture(params=["sqlite", "postgresql"])
def any_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """The same test on the embedded default and on production's database."""
    if request.param == "sqlite":
        engine = engine_for(f"sqlite:///{tmp_path / 'bus.db'}")
        metadata.create_all(engine)
        yield engine
        engine.dispose()
        return
    missing = postgres_reachable()
    if missing:
        pytest.skip(missing)
    with postgres_schema() as (engine, _schema):
        yield engine


__all__ = ["any_engine", "pg_engine", "pg_schema", "sqlite_engine"]
