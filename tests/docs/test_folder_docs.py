"""docs/folder.md says what the folder adapter does: its example config checks, its names come out.

The page's example endpoints pass config check, and every row of its table of
filename templates is what the adapter writes for the message the page describes.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from lienthong import config
from lienthong.adapter import Services, resolve_options
from lienthong.message import Message
from lienthong.plugins.folder import FolderAdapter

PAGE = Path(__file__).resolve().parents[2] / "docs" / "folder.md"
TEXT = PAGE.read_text(encoding="utf-8")
EXAMPLE_ROW = re.compile(r"^\| `([^`]+)`(?: \(the default\))? \| `([^`]+)` \|$", re.MULTILINE)


def described_message() -> tuple[Message, str]:
    """The message the page's examples are written for, and its delivery key."""
    found = re.search(
        r"For a message with key `([^`]+)`,\s+id\s+`([^`]+)`, kind `([^`]+)` and header\s+"
        r"`filename: ([^`]+)`",
        TEXT,
    )
    assert found, "the page describes the example message"
    key, message_id, kind, filename = found.groups()
    return Message(
        body=b"<receipt/>", kind=kind, id=message_id, headers={"filename": filename}
    ), key


def test_the_example_config_checks(tmp_path: Path) -> None:
    [block] = re.findall(r"^```yaml\n(.*?)^```$", TEXT, re.MULTILINE | re.DOTALL)
    config.from_dict(yaml.safe_load(block), base_dir=tmp_path / "config")


@pytest.mark.parametrize(("template", "written"), EXAMPLE_ROW.findall(TEXT))
def test_each_filename_example_is_what_the_adapter_writes(
    tmp_path: Path, template: str, written: str
) -> None:
    settings, problems = resolve_options(
        FolderAdapter,
        {"path": str(tmp_path / "out"), "direction": "out", "filename": template},
        "endpoints.docs",
    )
    assert not problems
    adapter = FolderAdapter("docs", settings, Services(base_dir=tmp_path))
    adapter.start()
    message, key = described_message()
    adapter.send(message, key=key)
    adapter.send(message, key=key)  # a redelivery writes nothing new
    assert [p.name for p in (tmp_path / "out").iterdir() if p.is_file()] == [written]


def test_the_page_has_an_example_for_the_default() -> None:
    assert ("{key}.xml", described_message()[1] + ".xml") in EXAMPLE_ROW.findall(TEXT)
