"""The memory adapter passes the contract suite every adapter must pass.

The other built-in adapters run it beside their own tests, against their real
systems: tests/folder/test_folder_contract.py, tests/accounting_soap/test_soap_contract.py,
tests/email_directory/test_contract.py, tests/document_axis/test_axis_contract.py.
The suite's own tests, which break adapters on purpose, are in test_contract_suite.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lienthong.adapter import Adapter
from lienthong.message import Message
from lienthong.plugins import memory
from lienthong.plugins.memory import MemoryAdapter
from lienthong.testing import AdapterContract


class TestMemoryContract(AdapterContract):
    adapter_class = MemoryAdapter

    @pytest.fixture(autouse=True)
    def channels(self) -> Iterator[None]:
        memory.reset()
        yield
        memory.reset()

    def settings(self, tmp_path: Path) -> dict[str, Any]:
        return {"channel": "contract"}

    def put(self, adapter: Adapter, body: bytes) -> None:
        memory.feed("contract", [Message(body=body)])

    def fetch(self, adapter: Adapter) -> list[bytes]:
        return [m.body for m in memory.delivered("contract")]
