"""The embedded default's SQLite file on a full disk: a clear error, nothing lost, no corruption.

The store lives on a small tmpfs mounted for the test (root may mount; others
skip, saying so); the drop folders are on the ordinary disk. While the disk is
full every file stays in the inbox; once space is freed each is delivered once.
"""

from __future__ import annotations

import contextlib
import errno
import json
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.harness import (
    FaultProject,
    account,
    folder_in,
    folder_out,
    receipt_route,
    wait_settled,
)

BEFORE, DURING = 50, 300


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs, unmounted afterwards."""
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        pytest.skip(
            f"cannot mount a small tmpfs for the full-disk test ({done.stderr.strip()}): "
            "run the test as root, or in a container with CAP_SYS_ADMIN"
        )
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def fill(disk: Path) -> Path:
    """Take every free byte of ``disk``; returns the filler file to delete later."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as f:
        chunk = b"\0" * 65536
        with contextlib.suppress(OSError):
            while True:
                f.write(chunk)
        small = b"\0" * 512
        with contextlib.suppress(OSError):
            while True:
                f.write(small)
    probe = disk / "probe"
    with pytest.raises(OSError) as full:
        probe.write_bytes(b"\0" * 4096)
    assert full.value.errno == errno.ENOSPC
    probe.unlink(missing_ok=True)
    return filler


def integrity(db: Path) -> str:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


def stored(db: Path) -> set[str]:
    """Names of the input files the store holds as messages."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return {
            json.loads(h)["filename"] for (h,) in conn.execute("SELECT headers FROM messages")
        }


@pytest.mark.slow
def test_a_full_disk_stops_the_store_clearly_and_loses_nothing(
    fault_project: FaultProject, small_disk: Path
) -> None:
    db = small_disk / "bus.db"
    store = f"sqlite:///{db}"
    fault_project.write(
        store=store,
        endpoints={"in": folder_in(), "out": folder_out()},
        routes=[receipt_route()],
    )
    assert fault_project.command("db", "upgrade").returncode == 0
    written = fault_project.drop(BEFORE)
    fault_project.start_worker()
    assert len(fault_project.wait_for(BEFORE, timeout=60)) == BEFORE, fault_project.logs()

    # The disk fills while the bus runs.
    filler = fill(small_disk)
    written = fault_project.drop(BEFORE + DURING)
    deadline = time.monotonic() + 30
    while "Hint: free space" not in fault_project.all_logs() and time.monotonic() < deadline:
        time.sleep(0.2)
    said = fault_project.all_logs()
    assert "Hint: free space on that disk" in said, said[-3000:]
    assert f"SQLite file {db}" in said
    assert "Traceback" not in said, "a clear error, not a stack trace"
    assert fault_project.workers[0].poll() is None, "the bus keeps running"
    waiting = {p.name for p in fault_project.inbox.glob("*.xml")}
    assert waiting, "files not stored stay in the inbox"
    assert waiting | stored(db) == set(written), "each file is in the inbox or in the store"
    assert integrity(db) == "ok"
    fault_project.kill_all(signal.SIGTERM)

    # A bus started on the full disk refuses clearly, and still takes nothing.
    refused = fault_project.command("run", "--once")
    said = refused.stdout + refused.stderr
    assert "Traceback" not in said, said
    assert "Hint: free space on that disk" in said, said
    assert {p.name for p in fault_project.inbox.glob("*.xml")} | stored(db) == set(written)
    assert integrity(db) == "ok"

    filler.unlink()
    fault_project.start_worker()
    wait_settled(fault_project, store, len(written), timeout=60)
    fault_project.kill_all(signal.SIGTERM)
    assert integrity(db) == "ok"
    result = account(store, written, folder=("out", fault_project.outbox))
    assert result.delivered == len(written), result.dead
