"""The store's file on the embedded default: private to its owner."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from lienthong.message import Message
from lienthong.store import Intake, Store, make_engine


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_sqlite_store_and_its_wal_and_shm_are_readable_by_the_owner_only(
    tmp_path: Path,
) -> None:
    db = tmp_path / "var/bus.db"
    umask = os.umask(0o022)  # the usual one, under which files come out 0644
    try:
        store = Store(make_engine(f"sqlite:///{db}"))
        store.upgrade()
        store.accept([Intake(Message(body=b"<a>citizen data</a>", source="in"))])
        with store.engine.connect() as conn:  # while open, the -wal and -shm files exist
            conn.exec_driver_sql("SELECT count(*) FROM messages")
            files = [db, db.with_name("bus.db-wal"), db.with_name("bus.db-shm")]
            assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}
        store.engine.dispose()
    finally:
        os.umask(umask)


def test_an_existing_store_readable_by_others_is_named_with_the_fix(tmp_path: Path, caplog) -> None:
    db = tmp_path / "bus.db"
    db.touch(mode=0o644)
    db.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="lienthong.store"):
        make_engine(f"sqlite:///{db}").dispose()
    assert f"the store {db} can be read by other users (mode 0644)" in caplog.text
    assert f"Hint: chmod 600 {db}" in caplog.text
    assert mode(db) == 0o644, "an admin's choice of mode is left alone"
