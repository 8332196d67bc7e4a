"""A read-only open of the store: the schema checked, never migrated; no file made."""

from __future__ import annotations

from pathlib import Path

import pytest

from lienthong import migrations
from lienthong.errors import ConfigError
from lienthong.store import Reads, Store, make_engine, open_read_only


def test_a_store_not_there_yet_says_nothing_is_stored_and_is_not_made(tmp_path: Path) -> None:
    db = tmp_path / "var" / "bus.db"
    with pytest.raises(ConfigError, match="nothing is stored yet") as caught:
        open_read_only(f"sqlite:///{db}")
    assert f"the SQLite file {db} does not exist" in str(caught.value)
    assert "'lienthong run' makes it" in str(caught.value)
    assert not db.exists() and not db.parent.exists()


def test_an_empty_sqlite_file_has_nothing_stored_yet(tmp_path: Path) -> None:
    db = tmp_path / "bus.db"
    db.touch(mode=0o600)
    with pytest.raises(ConfigError, match=f"the SQLite file {db} holds no tables"):
        open_read_only(f"sqlite:///{db}")
    engine = make_engine(f"sqlite:///{db}")
    assert migrations.current(engine) is None, "not migrated"
    engine.dispose()


def test_a_store_behind_is_refused_with_the_upgrade_and_left_as_it_is(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bus.db'}"
    engine = make_engine(url)
    migrations.upgrade(engine, "0007")
    with pytest.raises(ConfigError, match="run 'lienthong db upgrade' first") as caught:
        open_read_only(url)
    assert f"the database schema is at 0007, this version needs {migrations.head()}" in str(
        caught.value
    )
    assert migrations.current(engine) == "0007"
    engine.dispose()


def test_a_store_up_to_date_is_read(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bus.db'}"
    Store(make_engine(url)).upgrade()
    reads = Reads(open_read_only(url))
    try:
        assert reads.counts()["messages"] == 0
    finally:
        reads.close()


def test_postgresql_not_upgraded_is_refused_as_before(pg_url: str) -> None:
    with pytest.raises(ConfigError, match="schema is at nothing.*'lienthong db upgrade'"):
        open_read_only(pg_url)
    engine = make_engine(pg_url)
    Store(engine).upgrade()
    open_read_only(pg_url).dispose()
    engine.dispose()
