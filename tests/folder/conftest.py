"""Fixtures: a real slapd on loopback for reconciles into the directory (from the directory's tests)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lienthong.plugins.email_directory.slapd import TemporarySlapd
from tests.email_directory.directory_fixtures import Tree, start_slapd


@pytest.fixture(scope="session")
def slapd() -> Iterator[TemporarySlapd]:
    server = start_slapd()
    yield server
    server.stop()


@pytest.fixture
def tree(slapd: TemporarySlapd) -> Iterator[Tree]:
    t = Tree(slapd)
    yield t
    t.close()
