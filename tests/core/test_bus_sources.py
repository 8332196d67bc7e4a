"""The bus and its sources: polled concurrently, a hanging one left behind, one down at start.

Every source here is a real one: drop folders, a SOAP service that accepts the
connection and never answers, and the accounting SOAP sandbox stopped and
started again on the same port.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from lienthong.plugins.accounting_soap.sandbox import ACCOUNTING_WSDL, AccountingSandbox
from lienthong.store import deliveries, messages
from tests.busproject import APPLICATION
from tests.faults.harness import RECEIPT_MAPPING, VOUCHER_MAPPING, make_mappings

USER, PASSWORD = "ketoan-test", "sources-sandbox-password"


class SilentService:
    """A TCP server that accepts every connection and never answers: a service that hangs."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.connections:
            conn.close()


@pytest.fixture
def silent() -> Iterator[SilentService]:
    service = SilentService()
    yield service
    service.close()


def drop(folder: Path, name: str, case: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    temporary = folder / f".{name}.tmp"
    temporary.write_bytes(APPLICATION.replace(b"HS-2026-000123", case.encode()))
    temporary.replace(folder / name)


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {timeout:g} s"
        time.sleep(0.05)


def folder_routes(out: str = "out") -> list[dict]:
    return [
        {
            "name": "receipts",
            "from": "in",
            "to": [
                {"endpoint": out, "mapping": RECEIPT_MAPPING, "params": {"issuer": "000.00.00.H41"}}
            ],
        }
    ]


FOLDERS = {
    "in": {"adapter": "folder", "path": "in", "kind": "onestop.application"},
    "out": {"adapter": "folder", "path": "out", "direction": "out", "filename": "{filename}"},
}


def latencies(bus) -> list[float]:
    """Seconds from acceptance to delivery of every delivered message, from the store."""
    with bus.store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(messages.c.accepted_at, deliveries.c.delivered_at)
            .join(deliveries, deliveries.c.message_id == messages.c.id)
            .where(deliveries.c.state == "delivered")
        ).all()
    return [(d - a).total_seconds() for a, d in rows]


def test_a_hanging_source_delays_neither_the_other_sources_nor_the_deliveries(
    lienthong_bus, tmp_path: Path, silent: SilentService
) -> None:
    bus = lienthong_bus(
        mappings=make_mappings(tmp_path),
        bus={"poll_interval": 0.2},
        endpoints={
            **FOLDERS,
            "treasury": {
                "adapter": "accounting_soap",
                "wsdl": str(ACCOUNTING_WSDL),
                "address": f"http://127.0.0.1:{silent.port}/AccountingService",
                "receive_operation": "ListVoucherChanges",
                "timeout": 30,  # it answers in 30 s, if ever
            },
        },
        routes=folder_routes(),
    )
    runner = threading.Thread(target=bus.run)
    runner.start()
    try:
        wait_until(lambda: silent.connections, 5, "the treasury poll reached its service")
        for n in range(6):
            drop(tmp_path / "in", f"a-{n}.xml", f"HS-{n:05d}")
            wait_until(
                lambda n=n: (tmp_path / f"out/a-{n}.xml").exists(),
                3,
                f"a-{n}.xml delivered while the treasury poll hangs",
            )
            time.sleep(0.5)
        assert bus._polling(), "the treasury poll is still waiting for its answer"
        assert len(silent.connections) == 1, "one poll at a time for one endpoint"
        assert max(latencies(bus)) < 2.0, latencies(bus)
    finally:
        stopped_at = time.monotonic()
        bus.stop()
        runner.join(timeout=30)
        bus.close()
    assert not runner.is_alive()
    assert time.monotonic() - stopped_at < 15, "a clean stop does not wait for the hung call"


def test_a_scheduled_poll_is_delivered_at_once_not_at_the_next_loop_pass(
    lienthong_bus, tmp_path: Path
) -> None:
    bus = lienthong_bus(
        mappings=make_mappings(tmp_path),
        bus={"poll_interval": 5},  # the worker loop's own pace: slow on purpose
        endpoints=FOLDERS,
        routes=folder_routes(),
        jobs={"poll-in": {"interval": 1, "poll": "in"}},
    )
    runner = threading.Thread(target=bus.run)
    runner.start()
    try:
        for n in range(4):
            drop(tmp_path / "in", f"b-{n}.xml", f"HS-B{n:04d}")
            wait_until(lambda n=n: (tmp_path / f"out/b-{n}.xml").exists(), 10, "delivered")
        assert len(latencies(bus)) == 4
        assert max(latencies(bus)) < 1.5, latencies(bus)
    finally:
        bus.stop()
        runner.join(timeout=30)
    with bus.store.engine.connect() as conn:
        details = [
            r.detail
            for r in conn.execute(sa.text("SELECT detail FROM job_runs WHERE outcome = 'ok'"))
        ]
    assert any(d.startswith("1 new message(s), 0 repeat(s)") for d in details), details


def get_json(url: str) -> dict:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read())


def test_an_endpoint_down_at_start_runs_degraded_and_catches_up_once_it_is_up(
    lienthong_bus, tmp_path: Path
) -> None:
    sandbox = AccountingSandbox(username=USER, password=PASSWORD).start()
    wsdl = sandbox.wsdl_url
    sandbox.stop()  # the accounting package is down when the bus starts
    try:
        bus = lienthong_bus(
            mappings=make_mappings(tmp_path),
            bus={"poll_interval": 0.2, "breaker_reset_seconds": 1, "metrics_port": 0},
            endpoints={
                **FOLDERS,
                "acct": {
                    "adapter": "accounting_soap",
                    "wsdl": wsdl,
                    "username": USER,
                    "password": PASSWORD,
                    "send_operation": "PostVoucher",
                    "reference_field": "voucher.externalReference",
                    "timeout": 2,
                },
            },
            routes=[
                *folder_routes(),
                {
                    "name": "fees",
                    "from": "in",
                    "to": [{"endpoint": "acct", "mapping": VOUCHER_MAPPING}],
                },
            ],
        )
        assert "did not answer" in bus.not_started()["acct"]
        health = bus.store.endpoint_health()["acct"]
        assert health["state"] == "open" and "did not start" in health["detail"]
        host, port = bus.metrics_server.address
        report = get_json(f"http://{host}:{port}/health")
        assert report["status"] == "degraded" and report["open_circuits"] == ["acct"]
        assert "did not start" in report["circuits"]["acct"]

        for n in range(5):
            drop(tmp_path / "in", f"c-{n}.xml", f"HS-C{n:04d}")
        runner = threading.Thread(target=bus.run)
        runner.start()
        try:
            wait_until(
                lambda: len(list((tmp_path / "out").glob("c-*.xml"))) == 5,
                10,
                "the folder route delivered while the accounting package is down",
            )
            assert bus.store.pending_overview()["acct"]["pending"] == 5
            assert sandbox.vouchers() == []
            sandbox.start()  # back, on the same port
            wait_until(lambda: not bus.not_started(), 30, "the endpoint started")
            wait_until(lambda: len(sandbox.vouchers()) == 5, 30, "the waiting postings went")
            wait_until(lambda: "acct" not in bus.store.pending_overview(), 10, "nothing pending")
        finally:
            bus.stop()
            runner.join(timeout=30)
        refs = [v["externalReference"] for v in sandbox.vouchers()]
        with bus.store.engine.connect() as conn:
            keys = set(
                conn.execute(
                    sa.select(deliveries.c.id).where(deliveries.c.endpoint == "acct")
                ).scalars()
            )
        assert sorted(refs) == sorted(keys), "each posting once, under its delivery key"
        assert bus.store.endpoint_health()["acct"]["state"] == "closed"
        report = get_json(f"http://{host}:{port}/health")
        assert report["status"] == "ok", report
    finally:
        sandbox.stop()
