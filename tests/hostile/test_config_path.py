"""Hostile configuration: YAML bombs, unsafe tags, broken bytes, and mappings that read or write files.

A config file must be refused with a ConfigError that names the file and the
problem, never executed and never left to hang or crash the loader. A mapping
that reaches for files or the network parks the messages routed through it
with its reason, while other routes go on delivering.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from lienthong import config
from lienthong.errors import ConfigError
from lienthong.message import Message
from lienthong.plugins import memory
from tests.hostile.cases import APPLICATION, CORPUS, MAPPINGS

YAML = CORPUS / "yaml"
HANG_SECONDS = 60
GOOD = "bus:\n  poll_interval: 2\nendpoints:\n  inbox: {adapter: folder, path: in}\n"


@dataclass(frozen=True)
class YamlCase:
    name: str
    make: Callable[[], bytes]
    reason: tuple[str, ...]
    bug: str | None = None  # an open product bug: the case is expected to fail until fixed
    hangs: bool = False  # load it in a child process with a time limit


def _yaml(name: str) -> Callable[[], bytes]:
    return (YAML / name).read_bytes


YAML_CASES = [
    YamlCase(
        "billion-laughs-aliases.yaml",
        _yaml("billion-laughs-aliases.yaml"),
        ("alias",),
        hangs=True,
    ),
    YamlCase(
        "merge-key-bomb.yaml",
        _yaml("merge-key-bomb.yaml"),
        ("alias",),
        hangs=True,
    ),
    YamlCase(
        "recursive-alias.yaml",
        _yaml("recursive-alias.yaml"),
        ("alias",),
    ),
    YamlCase(
        "python-object-apply.yaml",
        _yaml("python-object-apply.yaml"),
        ("python/object/apply",),
    ),
    YamlCase(
        "python-object-new.yaml",
        _yaml("python-object-new.yaml"),
        ("python/object/new",),
    ),
    YamlCase(
        "python-name.yaml",
        _yaml("python-name.yaml"),
        ("not valid YAML", "could not determine a constructor", "python/name:os.system"),
    ),
    YamlCase(
        "unknown-local-tag.yaml",
        _yaml("unknown-local-tag.yaml"),
        ("not valid YAML", "could not determine a constructor", "'!include'"),
    ),
    YamlCase(
        "malformed-utf8.yaml",
        _yaml("malformed-utf8.yaml"),
        ("UTF-8",),
    ),
    YamlCase(
        "nul-byte.yaml",
        _yaml("nul-byte.yaml"),
        ("#x0000",),
    ),
    YamlCase(
        "deep-nesting",
        lambda: b"bus: " + b"[" * 50_000 + b"]" * 50_000 + b"\n",
        ("nested",),
    ),
    YamlCase(
        "huge-file",
        lambda: b"bus:\n  poll_interval: 1\n# " + b"x" * (12 * 1024 * 1024) + b"\n",
        ("bytes",),
        hangs=True,
    ),
    YamlCase(
        "section-of-the-wrong-type",
        lambda: b"bus: [1, 2]\n",
        ("bus", "mapping"),
    ),
]


def _params() -> list[object]:
    return [
        pytest.param(
            c,
            id=c.name,
            marks=[pytest.mark.xfail(strict=True, reason=f"product bug: {c.bug}")] if c.bug else [],
        )
        for c in YAML_CASES
    ]


_LOAD = """
import sys
from lienthong import config
from lienthong.errors import ConfigError
try:
    config.load(sys.argv[1])
except ConfigError as exc:
    print(exc)
    sys.exit(3)
"""


def load_refusal(path: Path, hangs: bool) -> str:
    """The ConfigError text loading ``path`` gives; fails if it loads, crashes or hangs."""
    if not hangs:
        with pytest.raises(ConfigError) as caught:
            config.load(path)
        return str(caught.value)
    # A refused bomb loads in well under a second; one let through expands 9**9 (387
    # million) strings, minutes and gigabytes. The limit sits far from both: on a loaded
    # machine the child's start alone (Python, pydantic, lxml) has taken over 3 s.
    try:
        child = subprocess.run(
            [sys.executable, "-c", _LOAD, str(path)],
            capture_output=True,
            text=True,
            timeout=HANG_SECONDS,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"loading {path.name} did not finish in {HANG_SECONDS} s: a bomb got through")
    assert child.returncode == 3, f"not a ConfigError: {child.stderr[-500:]}"
    return child.stdout


@pytest.mark.parametrize("case", _params())
def test_hostile_config_is_refused_with_a_clear_config_error(
    tmp_path: Path, case: YamlCase
) -> None:
    marker = tmp_path / "executed"
    path = tmp_path / "lienthong.yaml"
    path.write_bytes(case.make().replace(b"{MARKER}", str(marker).encode()))
    try:
        text = load_refusal(path, case.hangs)
    finally:
        assert not marker.exists(), "a tag in the config ran code"
    assert "lienthong.yaml" in text, f"the error must name the file: {text}"
    missing = [words for words in case.reason if words not in text]
    assert not missing, f"{text!r} lacks {missing}"
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    assert config.load(good).bus.poll_interval == 2, "the loader still loads a good config"


# --- mappings that reach for files or the network ---

XSLT_REASONS: dict[str, tuple[str, ...]] = {
    "reads-a-file-uri.xsl": ("tried to read 'file:///etc/hostname'", "may never do", "Hint:"),
    "reads-over-http.xsl": ("tried to read 'http://127.0.0.1:9/secret.xml'", "may never do"),
    "reads-a-sibling-file.xsl": ("tried to read", "secret.xml", "may never do"),
    "writes-a-relative-file.xsl": ("tried to write 'pwned.xml'", "may never do"),
    "imports-outside.xsl": ("outside the mappings folder", "Hint:"),
    "includes-an-absolute-path.xsl": ("include '/etc/passwd' is outside the mappings folder",),
    "entity-in-stylesheet.xsl": ("declares a DTD or entities",),
    "endless-recursion.xsl": ("infinite template recursion",),
}
XSLT_BUGS: dict[str, str] = {}  # open product bugs, as strict xfails: none now


@pytest.fixture
def mapping_bus(lienthong_bus, tmp_path: Path) -> Callable[[str], object]:
    """A bus with one hostile mapping (kind 'hostile') and the real onestop one (kind 'good')."""

    def build(name: str) -> object:
        mappings = tmp_path / "mappings"
        shutil.copytree(MAPPINGS / "onestop", mappings / "onestop")
        shutil.copy(CORPUS / "xslt" / name, mappings / name)
        (tmp_path / "secret.xml").write_text("<secret>root:x:0:0</secret>")
        (tmp_path / "outside.xsl").write_text(
            '<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform"/>'
        )
        return lienthong_bus(
            mappings=mappings,
            endpoints={"in": {"adapter": "memory"}, "out": {"adapter": "memory"}},
            routes=[
                {
                    "name": "hostile",
                    "kind": "hostile",
                    "to": [{"endpoint": "out", "mapping": name}],
                },
                {
                    "name": "good",
                    "kind": "good",
                    "to": [{"endpoint": "out", "mapping": "onestop/application-to-receipt.xsl"}],
                },
            ],
        )

    return build


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(
            n,
            id=n,
            marks=[pytest.mark.xfail(strict=True, reason=f"product bug: {XSLT_BUGS[n]}")]
            if n in XSLT_BUGS
            else [],
        )
        for n in sorted(XSLT_REASONS)
    ],
)
def test_a_mapping_that_reads_or_writes_files_parks_its_messages(
    mapping_bus, tmp_path: Path, monkeypatch, name: str
) -> None:
    monkeypatch.chdir(tmp_path)  # where a relative exsl:document would write
    bus = mapping_bus(name)
    memory.feed(
        "in", [Message(body=b"<a/>", kind="hostile"), Message(body=APPLICATION, kind="good")]
    )
    total = bus.run(once=True)
    assert (total.delivered, total.dead) == (1, 1)
    [dead] = bus.store.dead_letters()
    assert dead["stage"] == "route" and name in dead["reason"]
    missing = [words for words in XSLT_REASONS[name] if words not in dead["reason"]]
    assert not missing, f"{dead['reason']!r} lacks {missing}"
    [receipt] = memory.delivered("out")
    assert b"<applicant>Nguy" in receipt.body, "the good route still delivers"
    assert not list(tmp_path.rglob("pwned*")), "a mapping wrote a file"


def test_xslt2_result_document_is_inert_under_libxslt(mapping_bus, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bus = mapping_bus("writes-with-xsl-result-document.xsl")
    memory.feed("in", [Message(body=b"<a/>", kind="hostile")])
    bus.run(once=True)
    assert [m.body for m in memory.delivered("out")] == [
        b"<?xml version='1.0' encoding='UTF-8'?>\n<out/>"
    ]
    assert not list(tmp_path.rglob("pwned*")), "xsl:result-document wrote a file"


def test_every_yaml_and_xslt_corpus_file_has_a_case() -> None:
    assert {c.name for c in YAML_CASES} >= {p.name for p in YAML.iterdir()}
    assert set(XSLT_REASONS) | {"writes-with-xsl-result-document.xsl"} == {
        p.name for p in (CORPUS / "xslt").iterdir()
    }
