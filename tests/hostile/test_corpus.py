"""The corpus itself: small files only, each one described."""

from __future__ import annotations

from tests.hostile.cases import CORPUS


def test_the_corpus_holds_no_big_file() -> None:
    big = [p for p in CORPUS.rglob("*") if p.is_file() and p.stat().st_size > 50 * 1024]
    assert big == [], "generate big hostile inputs at test time (see tests/hostile/cases.py)"


def test_the_readme_describes_every_file() -> None:
    readme = (CORPUS / "README.md").read_text(encoding="utf-8")
    missing = [
        str(p.relative_to(CORPUS))
        for p in sorted(CORPUS.rglob("*"))
        if p.is_file() and p.name != "README.md" and f"`{p.name}`" not in readme
    ]
    assert missing == []
