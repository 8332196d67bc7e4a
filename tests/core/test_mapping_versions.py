"""Mapping versions: a content hash over the resolved files, and running a stored version again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lienthong import xml
from lienthong.errors import ConfigError
from lienthong.mapping import MappingLibrary, MappingVersion

HEAD = '<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">\n'
TAIL = "</xsl:stylesheet>\n"
INPUT = b"<in><v>7</v></in>"


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


def main_sheet(include: str = "_common.xsl", extra: str = "") -> str:
    return (
        HEAD + f'<xsl:include href="{include}"/>\n'
        '<xsl:template match="/in"><out><xsl:call-template name="label"/>'
        f'<v><xsl:value-of select="v"/></v>{extra}</out></xsl:template>\n' + TAIL
    )


def fragment(label: str) -> str:
    return HEAD + f'<xsl:template name="label"><label>{label}</label></xsl:template>\n' + TAIL


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "mappings"
    write(folder / "flows/main.xsl", main_sheet())
    write(folder / "flows/_common.xsl", fragment("first"))
    write(folder / "flows/unrelated.xsl", HEAD + TAIL)
    return folder


def output(mapping: object, params: dict[str, str] | None = None) -> bytes:
    return mapping.apply_bytes(INPUT, params)  # type: ignore[attr-defined]


def test_the_version_holds_the_mapping_and_everything_it_includes(root: Path) -> None:
    version = MappingLibrary(root).get("flows/main.xsl").version
    assert version.name == "flows/main.xsl"
    assert sorted(version.files) == ["flows/_common.xsl", "flows/main.xsl"]
    assert len(version.hash) == 64


def test_the_hash_is_the_same_for_the_same_files_and_changes_with_an_include(root: Path) -> None:
    first = MappingLibrary(root).get("flows/main.xsl").version.hash
    assert MappingLibrary(root).get("flows/main.xsl").version.hash == first
    write(root / "flows/unrelated.xsl", HEAD + "<!-- edited -->" + TAIL)
    assert MappingLibrary(root).get("flows/main.xsl").version.hash == first
    write(root / "flows/_common.xsl", fragment("second"))
    assert MappingLibrary(root).get("flows/main.xsl").version.hash != first


def test_a_nested_include_and_an_import_are_part_of_the_version(root: Path) -> None:
    write(root / "flows/_common.xsl", HEAD + '<xsl:import href="../shared/_deep.xsl"/>' + TAIL)
    write(root / "shared/_deep.xsl", fragment("deep"))
    first = MappingLibrary(root).get("flows/main.xsl").version
    assert sorted(first.files) == ["flows/_common.xsl", "flows/main.xsl", "shared/_deep.xsl"]
    write(root / "shared/_deep.xsl", fragment("deeper"))
    assert MappingLibrary(root).get("flows/main.xsl").version.hash != first.hash


def test_an_old_version_runs_as_it_was_after_the_files_changed_on_disk(root: Path) -> None:
    library = MappingLibrary(root)
    old = library.get("flows/main.xsl")
    before = output(old)
    stored = old.version.to_text()

    write(root / "flows/main.xsl", main_sheet(extra="<added/>"))
    write(root / "flows/_common.xsl", fragment("second"))
    current = MappingLibrary(root).get("flows/main.xsl")
    assert b"<label>second</label>" in output(current) and b"<added/>" in output(current)

    again = MappingLibrary(root).load_version(stored)
    assert output(again) == before
    assert b"<label>first</label>" in before
    assert again.version.hash == old.version.hash != current.version.hash


def test_a_stored_version_needs_nothing_from_the_disk(root: Path) -> None:
    stored = MappingLibrary(root).get("flows/main.xsl").version.to_text()
    (root / "flows/_common.xsl").unlink()
    (root / "flows/main.xsl").unlink()
    assert b"<label>first</label>" in output(MappingLibrary(root).load_version(stored))


def test_a_stored_version_cannot_include_a_file_it_does_not_hold(root: Path) -> None:
    library = MappingLibrary(root)
    version = MappingVersion("flows/main.xsl", {"flows/main.xsl": main_sheet().encode()})
    with pytest.raises(
        ConfigError,
        match=r"include '_common.xsl' \(resolved to .*\) is not part of the stored version .*stored incomplete",
    ):
        library.load_version(version)


def test_loading_a_version_twice_compiles_it_once(root: Path) -> None:
    library = MappingLibrary(root)
    stored = library.get("flows/main.xsl").version.to_text()
    assert library.load_version(stored) is library.load_version(MappingVersion.from_text(stored))


def test_a_stylesheet_in_another_encoding_keeps_its_bytes(root: Path) -> None:
    latin = (
        '<?xml version="1.0" encoding="ISO-8859-1"?>\n'
        + HEAD
        + '<xsl:template match="/"><out>Café</out></xsl:template>'
        + TAIL
    )
    write(root / "latin.xsl", latin, encoding="latin-1")
    version = MappingLibrary(root).get("latin.xsl").version
    text = version.to_text()
    assert "base64" in text
    again = MappingVersion.from_text(text)
    assert again.files == version.files and again.hash == version.hash
    result = MappingLibrary(root).load_version(again).apply(xml.parse(b"<x/>"))
    assert result.getroot().text == "Café"


def test_a_damaged_stored_text_is_refused_with_the_reason(root: Path) -> None:
    stored = json.loads(MappingLibrary(root).get("flows/main.xsl").version.to_text())
    tampered = dict(stored, files=[dict(f, text=f["text"] + " ") for f in stored["files"]])
    with pytest.raises(ConfigError, match="hash to .*, not " + stored["hash"]):
        MappingVersion.from_text(json.dumps(tampered))
    with pytest.raises(ConfigError, match="cannot be read"):
        MappingVersion.from_text("{not json")
    with pytest.raises(ConfigError, match="format is 'other'"):
        MappingVersion.from_text(json.dumps(dict(stored, format="other")))
    without_main = dict(stored, files=[f for f in stored["files"] if f["path"] != "flows/main.xsl"])
    with pytest.raises(ConfigError, match="does not hold the mapping's own file"):
        MappingVersion.from_text(json.dumps(without_main))


def test_a_stored_text_naming_files_outside_the_folder_is_refused(root: Path) -> None:
    for bad in ("../outside.xsl", "/etc/passwd"):
        version = MappingVersion(
            "flows/main.xsl", {"flows/main.xsl": main_sheet().encode(), bad: b"<x/>"}
        )
        text = version.to_text()
        with pytest.raises(ConfigError, match="outside the mappings folder"):
            MappingVersion.from_text(text)


def test_a_stored_version_that_includes_a_url_fetches_nothing(root: Path) -> None:
    sheet = main_sheet(include="http://127.0.0.1:9/evil.xsl")
    version = MappingVersion("flows/main.xsl", {"flows/main.xsl": sheet.encode()})
    with pytest.raises(ConfigError, match="is a URL"):
        MappingLibrary(root).load_version(version.to_text())


def test_a_loaded_mapping_keeps_the_version_it_was_compiled_from(root: Path) -> None:
    # A running bus compiled the mapping at start: what it delivers is that version,
    # even after someone edits the files on disk.
    library = MappingLibrary(root)
    running = library.get("flows/main.xsl")
    first = running.version.hash
    write(root / "flows/_common.xsl", fragment("second"))
    assert library.get("flows/main.xsl").version.hash == first
    assert b"<label>first</label>" in output(library.get("flows/main.xsl"))
    assert MappingLibrary(root).get("flows/main.xsl").version.hash != first


def test_a_version_object_is_checked_like_a_stored_text(root: Path) -> None:
    library = MappingLibrary(root)
    outside = MappingVersion("../main.xsl", {"../main.xsl": main_sheet().encode()})
    with pytest.raises(ConfigError, match="outside the mappings folder"):
        library.load_version(outside)
    # Without its own file a version would have to read the disk: refused instead.
    headless = MappingVersion("flows/main.xsl", {"flows/_common.xsl": fragment("x").encode()})
    with pytest.raises(ConfigError, match="does not hold the mapping's own file"):
        library.load_version(headless)
