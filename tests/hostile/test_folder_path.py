"""The hostile corpus dropped into a folder endpoint: each file parked with its reason, the bus goes on.

tests/core/test_bus.py checks a handful of attacks together; here every corpus
entry is its own test, and hostile file names join the hostile contents.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lienthong.errors import RejectedError
from tests.hostile.cases import APPLICATION, Case, assert_reason, params, xml_cases


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
