"""Every hook is documented and tested (datasette's meta-tests)."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from lienthong import hookspecs

ROOT = Path(__file__).resolve().parents[2]
HOOKS = sorted(
    name
    for name, value in inspect.getmembers(hookspecs, inspect.isfunction)
    if name.startswith("lienthong_")
)


def test_there_are_hooks() -> None:
    assert len(HOOKS) >= 7


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented(hook: str) -> None:
    assert f"`{hook}" in (ROOT / "docs/plugins.md").read_text(encoding="utf-8"), (
        f"{hook} is not in docs/plugins.md"
    )
    assert (getattr(hookspecs, hook).__doc__ or "").strip(), f"{hook} has no docstring"


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_test(hook: str) -> None:
    this = Path(__file__).resolve()
    sources = [p for p in (ROOT / "tests").rglob("test_*.py") if p.resolve() != this]
    assert any(f"def {hook}(" in p.read_text(encoding="utf-8") for p in sources), (
        f"no test implements {hook}"
    )
