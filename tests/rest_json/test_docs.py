"""docs/rest.md stays true: its example config runs against the sandboxes, its tables name
every option."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from lienthong.plugins.rest_json.adapter import RestJsonAdapter
from lienthong.plugins.rest_json.onestop_sandbox import OneStopSandbox
from lienthong.plugins.rest_json.portal_sandbox import PortalSandbox
from tests.busproject import REPO

DOC = (REPO / "docs/rest.md").read_text(encoding="utf-8")


def test_every_option_is_in_the_guide() -> None:
    missing = [o.name for o in RestJsonAdapter.options if f"`{o.name}`" not in DOC]
    assert not missing, f"docs/rest.md does not mention {missing}"


def test_the_guides_example_connects_the_one_stop_system_to_the_portal(
    lienthong_bus: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    [example] = [b for b in re.findall(r"```yaml\n(.*?)```", DOC, re.S) if "endpoints:" in b]
    with (
        OneStopSandbox() as onestop,
        PortalSandbox(username="lienthong-nghean") as portal,
    ):
        text = (
            example.replace("https://lgsp.nghean.gov.vn/motcua", onestop.url)
            .replace("https://lgsp.nghean.gov.vn", onestop.url)
            .replace("https://dichvucong.gov.vn", portal.url)
        )
        monkeypatch.setenv("MOTCUA_SECRET", onestop.client_secret)
        monkeypatch.setenv("DVCQG_PASSWORD", portal.password)
        config = yaml.safe_load(text)
        number = onestop.add_dossier()["dossierNo"]
        for status in ("received", "processing", "done"):
            onestop.add_step(number, stepStatus=status)
        bus = lienthong_bus(
            mappings=REPO / "mappings", endpoints=config["endpoints"], routes=config["routes"]
        )
        deadline = time.monotonic() + 30
        while portal.steps_recorded < 3:
            assert time.monotonic() < deadline, "the example's flow delivered everything"
            bus.run(once=True)
        assert portal.dossiers[number]["TrangThaiHoSo"] == "10"
        assert bus.store.dead_letters() == []
