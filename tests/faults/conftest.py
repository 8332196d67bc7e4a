"""Fixtures for fault runs: private servers to restart, and a bus project with workers."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.harness import FaultProject
from tests.faults.servers import private_postgres, private_rabbit, private_rabbit_node

__all__ = ["private_postgres", "private_rabbit", "private_rabbit_node"]


@pytest.fixture
def fault_project(tmp_path: Path) -> Iterator[FaultProject]:
    project = FaultProject(tmp_path)
    yield project
    project.kill_all(signal.SIGKILL)
