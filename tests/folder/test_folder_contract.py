"""The folder adapter passes the contract suite, in and out, against real folders."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from lienthong.adapter import Adapter
from lienthong.plugins.folder import FolderAdapter
from lienthong.testing import AdapterContract

_names = itertools.count(1)


class TestFolderContract(AdapterContract):
    adapter_class = FolderAdapter

    def settings(self, tmp_path: Path) -> dict[str, Any]:
        return {"path": str(tmp_path / "in")}

    def send_settings(self, tmp_path: Path) -> dict[str, Any]:
        return {"path": str(tmp_path / "out"), "direction": "out"}

    def put(self, adapter: Adapter, body: bytes) -> None:
        (Path(adapter.settings["path"]) / f"item-{next(_names)}.xml").write_bytes(body)

    def put_malformed(self, adapter: Adapter) -> None:
        (Path(adapter.settings["path"]) / "broken.xml").write_bytes(b"<application><name>")

    def fetch(self, adapter: Adapter) -> list[bytes]:
        folder = Path(adapter.settings["path"])
        return [p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()]
