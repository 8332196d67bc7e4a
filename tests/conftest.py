"""Shared fixtures: real PostgreSQL and RabbitMQ for production-mode tests.

Tests that need a server skip, when it is missing, with what is missing and how
to start it; ``.ci/run`` starts them so that on CI nothing is skipped.
"""

from __future__ import annotations

import os
import signal
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lienthong.plugins.email_directory.slapd import TemporarySlapd
from tests.busproject import REPO, BusProject
from tests.email_directory.directory_fixtures import Tree, start_slapd

PG_URL = os.environ.get("LIENTHONG_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
AMQP_URL = os.environ.get("LIENTHONG_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672//")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    if not _reachable("127.0.0.1", 5432):
        pytest.skip(
            "PostgreSQL not reachable at 127.0.0.1:5432: start it with "
            "'pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start'"
        )
    import sqlalchemy as sa

    schema = f"lt_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


@pytest.fixture
def amqp_url() -> Iterator[str]:
    """The RabbitMQ URL; queues are named after endpoints, so tests use unique endpoint names."""
    if not _reachable("127.0.0.1", 5672):
        pytest.skip(
            "RabbitMQ not reachable at 127.0.0.1:5672: start it with 'rabbitmq-server -detached'"
        )
    yield AMQP_URL


@pytest.fixture
def unique() -> str:
    """A short unique suffix for queue and endpoint names shared with a real broker."""
    return uuid.uuid4().hex[:8]


@pytest.fixture
def bus_project(tmp_path: Path) -> Iterator[BusProject]:
    project = BusProject(tmp_path)
    yield project
    project.kill_all(signal.SIGTERM)


@pytest.fixture
def folder_bus(lienthong_bus, tmp_path: Path):
    """Build an embedded bus: folder ``in`` → application-to-receipt mapping → folder ``out``."""

    def build(**bus: Any):
        (tmp_path / "in").mkdir(exist_ok=True)
        return lienthong_bus(
            mappings=REPO / "mappings",
            bus=bus,
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


@pytest.fixture(scope="session")
def slapd() -> Iterator[TemporarySlapd]:
    """One real slapd on a free loopback port for the whole run; skips, saying how to
    install it, where slapd is missing."""
    server = start_slapd()
    yield server
    server.stop()


@pytest.fixture
def tree(slapd: TemporarySlapd) -> Iterator[Tree]:
    """A directory tree of this test's own on the shared slapd."""
    t = Tree(slapd)
    yield t
    t.close()
