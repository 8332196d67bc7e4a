"""Without Java or the vendor jars, the conformance tests skip and say what is missing."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conformance import vendor
from tests.conformance.vendor import REPO, missing


def test_without_java_the_reason_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    reason = missing()
    assert reason is not None
    assert "'java' is not on PATH" in reason and "apt-get install default-jdk-headless" in reason


def test_without_the_jars_the_reason_says_where_they_go(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(vendor.shutil, "which", lambda tool: f"/usr/bin/{tool}")
    reason = missing(tmp_path)
    assert reason is not None
    assert "SDKVXP-2.0.1.jar, EdXML102-0.0.3.jar" in reason and str(tmp_path) in reason
    assert "shared/reference/vxp-sdk/lib" in reason


def test_the_jars_are_referenced_not_copied() -> None:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout: no list of committed files")
    listed = subprocess.run(
        ["git", "ls-files", "*.jar"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    assert listed == "", "the vendor jars stay in ../shared/reference/vxp-sdk/lib"
