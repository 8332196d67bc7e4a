"""The hostile corpus as test cases: the files in ``corpus/`` plus the big ones made at test time.

Each case is one hostile input and the words its refusal must contain. Files
over a few kilobytes (oversized, deeply nested, zip bombs) are generated here,
never committed; ``corpus/README.md`` lists what each file attacks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

CORPUS = Path(__file__).parent / "corpus"
REPO = Path(__file__).resolve().parents[2]
MAPPINGS = REPO / "mappings"
APPLICATION = (MAPPINGS / "onestop/application-to-receipt.cases/basic/input.xml").read_bytes()
#: The message size limit the hostile buses run with: small, so "oversized" stays cheap.
MAX_BYTES = 256 * 1024

DTD = ("declares a DTD", "never accepts")
SYNTAX = "not well-formed XML"
BAD_BYTES = (SYNTAX, "Invalid bytes in character encoding")


@dataclass(frozen=True)
class Case:
    """One hostile input: its id, how to make its bytes, and what the refusal must say."""

    name: str
    make: Callable[[], bytes]
    reason: tuple[str, ...]

    @property
    def body(self) -> bytes:
        return self.make()


def _file(kind: str, name: str) -> Callable[[], bytes]:
    path = CORPUS / kind / name
    return path.read_bytes


def deep(levels: int) -> bytes:
    """Elements nested ``levels`` deep: libxml2 stops at 256 without XML_PARSE_HUGE."""
    return b"<?xml version='1.0'?>" + b"<a>" * levels + b"x" + b"</a>" * levels


def oversized(limit: int = MAX_BYTES) -> bytes:
    """Well-formed XML one byte over ``limit``."""
    head, tail = b"<application><note>", b"</note></application>"
    return head + b"x" * (limit + 1 - len(head) - len(tail)) + tail


_XML_REASONS: dict[str, tuple[str, ...]] = {
    "xxe-local-file.xml": DTD,
    "xxe-parameter-entity.xml": DTD,
    "external-dtd.xml": DTD,
    "billion-laughs.xml": DTD,
    "quadratic-blowup.xml": DTD,
    "declared-utf16-doctype.xml": ("declares a DTD",),
    "malformed-utf8.xml": BAD_BYTES,
    "overlong-utf8.xml": BAD_BYTES,
    "utf8-surrogate.xml": BAD_BYTES,
    "nul-byte.xml": (SYNTAX, "Char 0x0 out of allowed range"),
    "control-char-reference.xml": (SYNTAX, "invalid xmlChar value 0"),
    "undefined-entity.xml": (SYNTAX, "Entity 'nbsp' not defined"),
    "unclosed.xml": (SYNTAX, "Premature end of data"),
    "two-roots.xml": (SYNTAX, "Extra content at the end"),
    "not-xml.pdf": (SYNTAX, "Start tag expected"),
    "empty.xml": (SYNTAX, "Document is empty"),
}


def xml_cases() -> list[Case]:
    """Every hostile XML document, for any inbound path that carries XML."""
    found = sorted(p.name for p in (CORPUS / "xml").iterdir())
    assert found == sorted(_XML_REASONS), "corpus/xml and its expected reasons differ"
    cases = [Case(name, _file("xml", name), _XML_REASONS[name]) for name in found]
    cases += [
        Case("deep-300", lambda: deep(300), (SYNTAX, "Excessive depth")),
        Case("deep-20000", lambda: deep(20_000), (SYNTAX, "Excessive depth")),
        Case("oversized", oversized, ("over the limit", f"{MAX_BYTES:,} bytes", "Hint:")),
    ]
    return cases


def params(cases: list[Case]) -> list[object]:
    """``pytest.param`` per case, each with its own test id."""
    return [pytest.param(case, id=case.name) for case in cases]


def assert_reason(text: str, reason: tuple[str, ...], name: str) -> None:
    """The refusal of case ``name`` says what is wrong in the ``reason`` words."""
    missing = [words for words in reason if words not in text]
    assert not missing, f"{name}: reason {text!r} lacks {missing}"
