"""Fixtures for the hostile tests: buses on the embedded default that a hostile input must not stop."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from lienthong.bus import Bus
from lienthong.plugins import memory
from tests.hostile.cases import APPLICATION, MAX_BYTES


@pytest.fixture(autouse=True)
def _fresh_memory() -> None:
    memory.reset()


@pytest.fixture
def folder_bus(folder_bus: Callable[..., Bus]) -> Callable[..., Bus]:
    """The shared folder bus (tests/conftest.py), with the hostile tests' small size limit."""
    return lambda **bus: folder_bus(**{"max_message_bytes": MAX_BYTES, **bus})


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
