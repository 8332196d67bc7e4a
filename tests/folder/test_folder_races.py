"""Races against the folder adapter: another process swaps an inbox file while the bus reads it.

A folder writer does not wait for the bus: between the moment the bus lists a
file and the moment it reads it, the name may come to point at a link to a file
outside the inbox or at a named pipe. The swapper here is a separate process
renaming entries over one name as fast as it can, as an attacker would; the
bus polls concurrently until a deadline, and must never read through a link nor
block on a pipe.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from lienthong.store import messages
from tests.hostile.cases import APPLICATION

SECRET = "BÍ MẬT QUỐC GIA"
RACE_SECONDS = 6.0

# Swaps in/race.xml between a plain application and ``swap`` (a symbolic link to a
# file outside the inbox, or a named pipe, also hard-linked into ``keep`` so that a
# reader blocked on one can be released); names starting with "." are never read.
SWAPPER = """
import os, sys, itertools
inbox, kind, target, keep = sys.argv[1:5]
plain = open(sys.argv[5], "rb").read()
for n in itertools.count():
    tmp = os.path.join(inbox, f".plain-{n}")
    with open(tmp, "wb") as f:
        f.write(plain)
    os.replace(tmp, os.path.join(inbox, "race.xml"))
    tmp = os.path.join(inbox, f".swap-{n}")
    if kind == "link":
        os.symlink(target, tmp)
    else:
        os.mkfifo(tmp)
        os.link(tmp, os.path.join(keep, str(n)))
    os.replace(tmp, os.path.join(inbox, "race.xml"))
"""


@pytest.fixture
def swapper(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    started: list[subprocess.Popen[bytes]] = []
    plain = tmp_path / "plain.xml"
    plain.write_bytes(APPLICATION)
    keep = tmp_path / "fifos"
    keep.mkdir()

    def start(kind: str, target: Path | None = None) -> Path:
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                SWAPPER,
                str(tmp_path / "in"),
                kind,
                str(target),
                str(keep),
                str(plain),
            ]
        )
        started.append(process)
        return keep

    yield start
    for process in started:
        process.kill()
        process.wait(10)


def _release_all(keep: Path) -> None:
    """Give end of file to every reader blocked on one of the swapper's pipes."""
    for fifo in keep.iterdir():
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


def _poll_until(bus, deadline: float) -> int:  # type: ignore[no-untyped-def]
    cycles = 0
    while time.monotonic() < deadline:
        bus.run(once=True)
        cycles += 1
    return cycles


def test_a_file_swapped_for_a_link_while_being_read_is_never_read_through_it(
    folder_bus, swapper, tmp_path: Path
) -> None:
    bus = folder_bus()
    secret = tmp_path / "secret.xml"
    secret.write_bytes(APPLICATION.replace("Nguyễn Thị Hoà".encode(), SECRET.encode()))
    swapper("link", secret)

    cycles = _poll_until(bus, time.monotonic() + RACE_SECONDS)

    with bus.store.engine.connect() as conn:
        bodies = [row.body for row in conn.execute(select(messages.c.body))]
    read = [b for b in bodies if b]
    links = [d for d in bus.store.dead_letters() if "symbolic link" in d["reason"]]
    assert read and links, f"the race did not happen ({cycles} polls): nothing to judge"
    assert not [b for b in read if SECRET.encode() in b], "a link was read through"
    assert all(b == APPLICATION for b in read)
    delivered = b"".join(p.read_bytes() for p in (tmp_path / "out").iterdir())
    assert SECRET.encode() not in delivered


def test_a_file_swapped_for_a_named_pipe_while_being_read_never_blocks_the_bus(
    folder_bus, swapper, tmp_path: Path
) -> None:
    bus = folder_bus()
    keep = swapper("fifo")
    done = threading.Event()
    cycles: list[int] = []

    def poll() -> None:
        cycles.append(_poll_until(bus, time.monotonic() + RACE_SECONDS))
        done.set()

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    blocked = not done.wait(RACE_SECONDS + 20)
    if blocked:
        while thread.is_alive():  # release it, so the test ends and the store closes
            _release_all(keep)
            thread.join(0.5)
    assert not blocked, "the bus blocked opening a named pipe"
    pipes = [d for d in bus.store.dead_letters() if "named pipe" in d["reason"]]
    assert pipes, f"the race did not happen ({cycles} polls): nothing to judge"
