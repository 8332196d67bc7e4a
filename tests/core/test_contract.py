"""The built-in adapters pass the contract suite every adapter must pass."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lienthong.adapter import Adapter
from lienthong.message import Message
from lienthong.plugins import memory
from lienthong.plugins.folder import FolderAdapter
from lienthong.plugins.memory import MemoryAdapter
from lienthong.testing import AdapterContract


class TestFolderInContract(AdapterContract):
    adapter_class = FolderAdapter

    def settings(self, tmp_path: Path) -> dict[str, Any]:
        return {"path": str(tmp_path / "in")}

    def put(self, adapter: Adapter, body: bytes) -> None:
        (Path(adapter.settings["path"]) / "one.xml").write_bytes(body)


class TestFolderOutContract(AdapterContract):
    adapter_class = FolderAdapter

    def settings(self, tmp_path: Path) -> dict[str, Any]:
        return {"path": str(tmp_path / "out"), "direction": "out"}

    def fetch(self, adapter: Adapter, key: str) -> bytes:
        [written] = [p for p in Path(adapter.settings["path"]).iterdir() if p.is_file()]
        assert written.name == f"{key}.xml"
        return written.read_bytes()


class TestMemoryContract(AdapterContract):
    adapter_class = MemoryAdapter

    def settings(self, tmp_path: Path) -> dict[str, Any]:
        memory.reset()
        return {"channel": "contract"}

    def put(self, adapter: Adapter, body: bytes) -> None:
        memory.feed("contract", [Message(body=body)])

    def fetch(self, adapter: Adapter, key: str) -> bytes:
        [message] = memory.delivered("contract")
        return message.body
