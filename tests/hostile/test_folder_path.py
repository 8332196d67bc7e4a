"""The hostile corpus dropped into a folder endpoint: each file parked with its reason, the bus goes on.

tests/core/test_bus.py checks a handful of attacks together; here every corpus
entry is its own test, and hostile file names join the hostile contents.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from lienthong.errors import ConfigError, RejectedError
from lienthong.message import Message
from tests.hostile.cases import APPLICATION, Case, assert_reason, params, xml_cases

T = TypeVar("T")


@pytest.mark.parametrize("case", params(xml_cases()))
def test_hostile_file_is_parked_with_its_reason_and_the_bus_goes_on(
    folder_bus, still_serving, tmp_path: Path, case: Case
) -> None:
    bus = folder_bus()
    body = case.body
    (tmp_path / "in/hostile.xml").write_bytes(body)

    total = bus.run(once=True)

    assert (total.received, total.delivered, total.dead) == (1, 0, 1)
    [dead] = bus.store.dead_letters()
    assert dead["stage"] == "accept"
    assert_reason(dead["reason"], case.reason, case.name)
    reason = (tmp_path / "in/.error/hostile.xml.reason.txt").read_text(encoding="utf-8")
    assert_reason(reason, case.reason, case.name)
    assert "lienthong dlq replay" in reason
    assert (tmp_path / "in/.error/hostile.xml").read_bytes() == body, "parked as it came"
    assert not list((tmp_path / "out").glob("*.xml"))
    still_serving(bus)


def test_a_name_with_shell_and_control_characters_is_just_a_name(
    folder_bus, still_serving, tmp_path: Path
) -> None:
    bus = folder_bus()
    name = "hồ sơ $(reboot);`id` |\n\t&.xml"
    (tmp_path / "in" / name).write_bytes(APPLICATION)
    assert bus.run(once=True).delivered == 1
    assert (tmp_path / "out" / f"receipt-{name}").exists()
    still_serving(bus)


def test_a_name_that_is_not_utf8_does_not_block_the_folder(
    folder_bus, still_serving, tmp_path: Path
) -> None:
    bus = folder_bus()
    with open(os.fsencode(tmp_path / "in") + b"/h\xf4 s\xff.xml", "wb") as handle:
        handle.write(APPLICATION)
    bus.run(once=True)
    still_serving(bus)


def test_a_replayed_hostile_file_still_fails_with_its_reason(folder_bus, tmp_path: Path) -> None:
    bus = folder_bus()
    (tmp_path / "in/xxe.xml").write_bytes(
        (Path(__file__).parent / "corpus/xml/xxe-local-file.xml").read_bytes()
    )
    bus.run(once=True)
    [dead] = bus.store.dead_letters()
    with pytest.raises(RejectedError, match="still fails: .*declares a DTD"):
        bus.replay(dead["id"])


def test_a_symbolic_link_is_not_followed(folder_bus, still_serving, tmp_path: Path) -> None:
    bus = folder_bus()
    secret = tmp_path / "outside.xml"
    secret.write_bytes(APPLICATION)
    (tmp_path / "in" / "link.xml").symlink_to(secret)
    bus.run(once=True)
    [dead] = bus.store.dead_letters()
    assert "symbolic link" in dead["reason"]
    assert bus.store.message(dead["message_id"]).body == b"", "the target was never read"
    assert (tmp_path / "in/.error/link.xml").is_symlink()
    still_serving(bus)


# --- links, pipes and long names in a folder others can write ------------------------


def _within(seconds: float, action: Callable[[], T], unblock: Callable[[], None]) -> T:
    """Run ``action`` on a thread; fail if it has not returned in ``seconds`` (then unblock it)."""
    outcome: list[Any] = []
    thread = threading.Thread(target=lambda: outcome.append(_capture(action)), daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        unblock()
        thread.join(10)
        pytest.fail(f"blocked for over {seconds} s")
    [(value, error)] = outcome
    if error is not None:
        raise error
    return value


def _capture(action: Callable[[], T]) -> tuple[T | None, BaseException | None]:
    try:
        return action(), None
    except BaseException as exc:  # handed back to the test's thread
        return None, exc


def _release(fifo: Path) -> Callable[[], None]:
    """Open ``fifo`` for writing and close it, so a reader blocked on it gets end of file."""

    def release() -> None:
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))

    return release


def test_a_processed_folder_swapped_for_a_link_moves_nothing_out_of_the_inbox(
    folder_bus, still_serving, tmp_path: Path
) -> None:
    bus = folder_bus()
    other = tmp_path / "other-endpoint-inbox"
    other.mkdir()
    (tmp_path / "in/.processed").rename(tmp_path / "in/.moved-away")
    (tmp_path / "in/.processed").symlink_to(other)
    (tmp_path / "in/app.xml").write_bytes(APPLICATION)

    assert bus.run(once=True).delivered == 1
    assert list(other.iterdir()) == [], "nothing was moved through the link"
    assert (tmp_path / "in/.moved-away/app.xml").read_bytes() == APPLICATION
    still_serving(bus)


def test_an_error_folder_swapped_for_a_link_writes_nothing_outside(
    folder_bus, still_serving, tmp_path: Path
) -> None:
    bus = folder_bus()
    victim_dir = tmp_path / "cron.d"
    victim_dir.mkdir()
    victim = victim_dir / "bad.xml.reason.txt"
    victim.write_text("* * * * * root precious\n")
    (tmp_path / "in/.error").rename(tmp_path / "in/.error-moved-away")
    (tmp_path / "in/.error").symlink_to(victim_dir)
    (tmp_path / "in/bad.xml").write_bytes(b"<a><b></a>")

    assert bus.run(once=True).dead == 1
    assert victim.read_text() == "* * * * * root precious\n"
    assert sorted(p.name for p in victim_dir.iterdir()) == ["bad.xml.reason.txt"]
    kept = tmp_path / "in/.error-moved-away"
    assert (kept / "bad.xml").read_bytes() == b"<a><b></a>"
    assert "not well-formed" in (kept / "bad.xml.reason.txt").read_text()
    still_serving(bus)


@pytest.mark.parametrize("link", ["symbolic", "hard"])
def test_a_link_at_the_reason_file_name_is_replaced_not_written_through(
    folder_bus, tmp_path: Path, link: str
) -> None:
    bus = folder_bus()
    victim = tmp_path / "victim.conf"
    victim.write_text("precious\n")
    reason = tmp_path / "in/.error/bad.xml.reason.txt"
    if link == "symbolic":
        reason.symlink_to(victim)
    else:
        os.link(victim, reason)
    (tmp_path / "in/bad.xml").write_bytes(b"<a><b></a>")

    assert bus.run(once=True).dead == 1
    assert victim.read_text() == "precious\n"
    assert "not well-formed" in reason.read_text() and not reason.is_symlink()


def test_side_folders_that_are_links_at_start_refuse_to_start(folder_bus, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "in/.processed").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ConfigError, match=r"'.*in/\.processed' is a symbolic link, not a folder"):
        folder_bus()


def test_a_named_pipe_in_the_inbox_is_parked_and_never_opened_for_a_blocking_read(
    folder_bus, still_serving, tmp_path: Path
) -> None:
    bus = folder_bus()
    fifo = tmp_path / "in/pipe.xml"
    os.mkfifo(fifo)
    total = _within(20, lambda: bus.run(once=True), _release(fifo))
    assert (total.received, total.dead) == (1, 1)
    [dead] = bus.store.dead_letters()
    assert "'pipe.xml' is a named pipe (FIFO), not a plain file" in dead["reason"]
    assert stat.S_ISFIFO((tmp_path / "in/.error/pipe.xml").lstat().st_mode)
    still_serving(bus)


def test_a_hard_link_to_a_file_outside_is_not_read(
    folder_bus, still_serving, tmp_path: Path
) -> None:
    bus = folder_bus()
    secret = tmp_path / "outside.xml"
    secret.write_bytes(APPLICATION.replace("Nguyễn Thị Hoà".encode(), "BÍ MẬT".encode()))
    os.link(secret, tmp_path / "in/linked.xml")
    bus.run(once=True)
    [dead] = bus.store.dead_letters()
    assert "'linked.xml' has 2 hard links" in dead["reason"]
    assert bus.store.message(dead["message_id"]).body == b""
    still_serving(bus)


@pytest.mark.parametrize("planted", ["fifo", "symlink"])
def test_a_pipe_or_link_at_the_output_name_is_refused_not_opened(
    folder_bus, tmp_path: Path, planted: str
) -> None:
    bus = folder_bus()
    (tmp_path / "out").mkdir(exist_ok=True)
    target = tmp_path / "out/receipt-app.xml"
    victim = tmp_path / "victim.xml"
    victim.write_bytes(b"precious")
    if planted == "fifo":
        os.mkfifo(target)
    else:
        target.symlink_to(victim)
    (tmp_path / "in/app.xml").write_bytes(APPLICATION)
    (tmp_path / "in/other.xml").write_bytes(APPLICATION)

    total = _within(20, lambda: bus.run(once=True), _release(target))
    assert (total.delivered, total.dead) == (1, 1), "the other message went on"
    [dead] = bus.store.dead_letters()
    what = "a named pipe (FIFO)" if planted == "fifo" else "a symbolic link"
    assert f"receipt-app.xml' already exists and is {what}" in dead["reason"]
    assert dead["stage"] == "deliver"
    assert victim.read_bytes() == b"precious"
    assert (tmp_path / "out/receipt-other.xml").exists()


def test_a_link_planted_at_the_temporary_name_is_not_written_through(
    folder_bus, tmp_path: Path
) -> None:
    bus = folder_bus()
    victim = tmp_path / "victim.xml"
    victim.write_bytes(b"precious")
    key = "a" * 64
    out = tmp_path / "out"
    for name in (
        f".receipt-x.xml.{key}.tmp",
        f".{hashlib.sha256(key.encode()).hexdigest()[:32]}.tmp",
    ):
        (out / name).symlink_to(victim)  # the names an earlier version and this one use
    bus.adapters["outbox"].send(Message(body=b"<r/>", headers={"filename": "x.xml"}), key=key)
    assert (out / "receipt-x.xml").read_bytes() == b"<r/>"
    assert victim.read_bytes() == b"precious"


def test_an_overlong_inbound_name_is_parked_at_once_and_good_files_go_on(
    folder_bus, tmp_path: Path
) -> None:
    bus = folder_bus()
    name = "h" * 200 + ".xml"  # 204 bytes: fits the disk, not "receipt-" + name + a temp suffix
    (tmp_path / "in" / name).write_bytes(APPLICATION)
    (tmp_path / "in/good.xml").write_bytes(APPLICATION)

    total = bus.run(once=True)
    assert (total.received, total.delivered, total.dead, total.retried) == (2, 1, 1, 0)
    [dead] = bus.store.dead_letters()
    assert dead["stage"] == "accept"
    assert "the file name is 204 bytes long, over the 200 the folder accepts" in dead["reason"]
    assert (tmp_path / "in/.error" / name).exists()
    assert (tmp_path / "in/.error" / (name + ".reason.txt")).exists()
    assert bus.breakers["outbox"].state.value == "closed"


def test_an_output_name_too_long_for_the_disk_is_a_dead_letter_not_a_retry(
    lienthong_bus, tmp_path: Path
) -> None:
    (tmp_path / "in").mkdir()
    bus = lienthong_bus(
        endpoints={
            "inbox": {"adapter": "folder", "path": "in"},
            "outbox": {
                "adapter": "folder",
                "path": "out",
                "direction": "out",
                "filename": "{filename}-{filename}",
            },
        },
        routes=[{"name": "copy", "from": "inbox", "to": "outbox"}],
    )
    name = "d" * 150 + ".xml"
    (tmp_path / "in" / name).write_bytes(b"<a/>")
    (tmp_path / "in/ok.xml").write_bytes(b"<a/>")

    total = bus.run(once=True)
    assert (total.delivered, total.dead, total.retried) == (1, 1, 0)
    [dead] = bus.store.dead_letters()
    assert dead["stage"] == "deliver"
    assert "is 309 bytes, over the 255 a name can have here" in dead["reason"]
    assert "Hint: shorten the filename template" in dead["reason"]
    assert (tmp_path / "out/ok.xml-ok.xml").read_bytes() == b"<a/>"
