"""Every hook is documented, and the core really calls it (datasette's meta-tests, made to fail).

A recorder plugin, generated from the contract so it implements every hook, is
installed as a third party's would be (a module and its dist-info on the path,
entry-point group ``lienthong.adapters``). A real bus then runs through the
command line (received, routed, delivered, one message parked), ``trace``
describes a message, and the console reads its Documents page. Each hook must
have been called by the core on that way, with the arguments its spec names.
A new hook fails here until a step of this exercise reaches it.
"""

from __future__ import annotations

import inspect
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from lienthong import cli as cli_module
from lienthong import config, hookspecs

ROOT = Path(__file__).resolve().parents[2]
HOOKS = sorted(
    name
    for name, value in inspect.getmembers(hookspecs, inspect.isfunction)
    if name.startswith("lienthong_")
)
RECORDER = "lienthong_hook_recorder"


def test_there_are_hooks() -> None:
    assert len(HOOKS) >= 7


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented(hook: str) -> None:
    assert f"`{hook}" in (ROOT / "docs/plugins.md").read_text(encoding="utf-8"), (
        f"{hook} is not in docs/plugins.md"
    )
    assert (getattr(hookspecs, hook).__doc__ or "").strip(), f"{hook} has no docstring"


def _recorder_source() -> str:
    """A plugin module implementing every hook of the contract: each call is appended to CALLS."""
    lines = ["from lienthong.hookspecs import hookimpl", "", "CALLS = []", ""]
    for hook in HOOKS:
        params = list(inspect.signature(getattr(hookspecs, hook)).parameters)
        kwargs = ", ".join(f"{p}={p}" for p in params)
        lines += [
            "",
            "@hookimpl",
            f"def {hook}({', '.join(params)}):",
            f"    CALLS.append(({hook!r}, dict({kwargs})))",
            "",
        ]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def calls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """The hook calls the core made while a bus ran, a message was traced and documents read."""
    root = tmp_path_factory.mktemp("hooks")
    site = root / "site"
    site.mkdir()
    (site / f"{RECORDER}.py").write_text(_recorder_source())
    info = site / f"{RECORDER}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: lienthong-hook-recorder\nVersion: 1.0\n"
    )
    (info / "entry_points.txt").write_text(f"[lienthong.adapters]\nrecorder = {RECORDER}\n")

    project = root / "project"
    shutil.copytree(ROOT / "config", project / "config")
    shutil.copytree(ROOT / "mappings", project / "mappings")
    inbox = project / "var/onestop/outbox"
    inbox.mkdir(parents=True)
    for sample in (ROOT / "config/samples").glob("*.xml"):
        shutil.copy(sample, inbox)  # three applications and one that is not well-formed
    path = str(project / "config/lienthong.yaml")

    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(site))
        try:
            group = cli_module.build()
            ran = CliRunner().invoke(group, ["--config", path, "run", "--once"])
            assert ran.exit_code == 0, ran.output
            recorded: list[tuple[str, dict[str, Any]]] = sys.modules[RECORDER].CALLS
            delivered = next(kw for name, kw in recorded if name == "lienthong_after_deliver")
            traced = CliRunner().invoke(group, ["--config", path, "trace", delivered["message"].id])
            assert traced.exit_code == 0, traced.output

            from lienthong.console.services import Console

            console = Console(config.load(path))
            assert console.queries.recent_documents() == []
            console.queries.document_history("000.00.00.H41,2026/01/02,1/QĐ-UBND")
            yield recorded
        finally:
            sys.modules.pop(RECORDER, None)


@pytest.mark.parametrize("hook", HOOKS)
def test_the_core_calls_every_hook_with_its_arguments(
    hook: str, calls: list[tuple[str, dict[str, Any]]]
) -> None:
    made = [kwargs for name, kwargs in calls if name == hook]
    assert made, (
        f"the core never called {hook} while a bus ran, a message was traced and the console "
        "read documents. Hint: add a step that reaches it to the 'calls' fixture"
    )
    expected = list(inspect.signature(getattr(hookspecs, hook)).parameters)
    assert all(list(kwargs) == expected for kwargs in made)
