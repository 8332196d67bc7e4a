"""Fixtures for the hostile tests: buses on the embedded default that a hostile input must not stop."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lienthong.bus import Bus
from lienthong.plugins import memory
from tests.hostile.cases import APPLICATION, MAPPINGS, MAX_BYTES


@pytest.fixture(autouse=True)
def _fresh_memory() -> None:
    memory.reset()


@pytest.fixture
def folder_bus(lienthong_bus, tmp_path: Path) -> Callable[..., Bus]:
    """A bus reading the folder ``in``, mapping applications to receipts into ``out``."""

    def build(**bus: Any) -> Bus:
        (tmp_path / "in").mkdir(exist_ok=True)
        return lienthong_bus(
            mappings=MAPPINGS,
            bus={"max_message_bytes": MAX_BYTES, **bus},
            endpoints={
                "inbox": {"adapter": "folder", "path": "in", "kind": "onestop.application"},
                "outbox": {
                    "adapter": "folder",
                    "path": "out",
                    "direction": "out",
                    "filename": "receipt-{filename}",
                },
            },
            routes=[
                {
                    "name": "receipts",
                    "from": "inbox",
                    "to": [
                        {
                            "endpoint": "outbox",
                            "mapping": "onestop/application-to-receipt.xsl",
                            "params": {"issuer": "000.00.00.H41"},
                        }
                    ],
                }
            ],
        )

    return build


@pytest.fixture
def still_serving(tmp_path: Path) -> Callable[[Bus], None]:
    """Assert a bus still delivers a good application dropped after the hostile input."""

    def check(bus: Bus) -> None:
        (tmp_path / "in/good.xml").write_bytes(APPLICATION)
        total = bus.run(once=True)
        assert total.delivered == 1, f"the good message was not delivered: {total}"
        receipt = (tmp_path / "out/receipt-good.xml").read_text(encoding="utf-8")
        assert "<applicant>Nguyễn Thị Hoà</applicant>" in receipt

    return check
