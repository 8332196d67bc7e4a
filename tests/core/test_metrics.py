"""Metrics and health over real HTTP, and the lag in 'lienthong status'."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from lienthong import cli as cli_module
from lienthong.adapter import Adapter, Capability, Secret
from lienthong.errors import ConfigError, RejectedError, TransientError
from lienthong.hookspecs import hookimpl
from lienthong.message import Message
from lienthong.metrics import Metrics, MetricsServer
from lienthong.plugins import memory
from lienthong.store import Outcome, Store, make_engine


@pytest.fixture(autouse=True)
def _fresh_memory() -> None:
    memory.reset()


class Down(Adapter):
    """A target that is down: every send fails with a transient error."""

    name = "down"
    summary = "test target that is always down"
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.SEND})

    def send(self, message: Message, *, key: str) -> None:
        raise TransientError("connection refused")


class Picky(Adapter):
    """A target that rejects messages whose body says so, and takes the rest."""

    name = "picky"
    summary = "test target that rejects some messages"
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.SEND})

    def send(self, message: Message, *, key: str) -> None:
        if b"reject" in message.body:
            raise RejectedError("the target refused it")


class Plugin:
    @hookimpl
    def lienthong_register_adapters(self, register):  # type: ignore[no-untyped-def]
        register(Down)
        register(Picky)


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def scrape(bus: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the bus's /metrics, by name and sorted labels."""
    host, port = bus.metrics_server.address
    status, content_type, body = get(f"http://{host}:{port}/metrics")
    assert status == 200 and content_type.startswith("text/plain"), (status, content_type)
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def health(bus: Any) -> tuple[int, dict[str, Any]]:
    host, port = bus.metrics_server.address
    status, content_type, body = get(f"http://{host}:{port}/health")
    assert content_type == "application/json"
    return status, json.loads(body)


def test_metrics_over_http_count_what_the_bus_did(lienthong_bus, lienthong_host) -> None:
    lienthong_host.add(Plugin(), "test-adapters")
    lienthong_host.refresh()
    bus = lienthong_bus(
        bus={"metrics_port": 0},
        endpoints={
            "in": {"adapter": "memory"},
            "out": {"adapter": "memory"},
            "picky": {"adapter": "picky"},
        },
        routes=[
            {"name": "copy", "from": "in", "to": ["out"]},
            {"name": "audit", "from": "in", "kind": "audit", "to": ["picky"]},
        ],
    )
    assert bus.metrics_server.address[0] == "127.0.0.1"
    memory.feed(
        "in",
        [
            Message(body=b"<a/>"),
            Message(body=b"<b/>"),
            Message(body=b"<reject/>", kind="audit"),
            Message(body=b"<not-closed>"),
        ],
    )
    total = bus.run(once=True)
    assert (total.received, total.delivered, total.dead) == (4, 3, 2)
    m = scrape(bus)
    assert m[("lienthong_messages_accepted_total", (("source", "in"),))] == 4
    assert m[("lienthong_messages_parked_total", (("source", "in"), ("stage", "accept")))] == 1

    def deliveries(endpoint: str, route: str, outcome: str) -> float:
        labels = (("endpoint", endpoint), ("outcome", outcome), ("route", route))
        return m.get(("lienthong_deliveries_total", labels), 0)

    assert deliveries("out", "copy", "delivered") == 3
    assert deliveries("picky", "audit", "dead") == 1
    assert deliveries("picky", "audit", "delivered") == 0
    assert m[("lienthong_delivery_seconds_count", (("endpoint", "out"),))] == 3
    assert 0 < m[("lienthong_delivery_seconds_sum", (("endpoint", "out"),))] < 60
    assert m[("lienthong_queue_depth", (("endpoint", "out"),))] == 0
    assert m[("lienthong_dead_letters_waiting", ())] == 2
    assert m[("lienthong_circuit_open", (("endpoint", "out"),))] == 0
    assert m[("lienthong_store_up", ())] == 1
    status, report = health(bus)
    assert status == 200 and report["status"] == "ok", report
    assert report["dead_letters_waiting"] == 2 and report["pending"] == 0
    assert "broker" not in report, "the embedded default has no broker"


def test_retries_queue_depth_lag_and_an_open_circuit(lienthong_bus, lienthong_host) -> None:
    lienthong_host.add(Plugin(), "test-adapters")
    lienthong_host.refresh()
    bus = lienthong_bus(
        bus={
            "metrics_port": 0,
            "breaker_failures": 2,
            "breaker_reset_seconds": 600,
            "retry": {"initial_delay": 600, "max_delay": 600},
        },
        endpoints={"in": {"adapter": "memory"}, "down": {"adapter": "down"}},
        routes=[{"name": "r", "from": "in", "to": ["down"]}],
    )
    status, report = health(bus)
    assert (status, report["status"], report["open_circuits"]) == (200, "ok", [])
    memory.feed("in", [Message(body=f"<n>{i}</n>".encode()) for i in range(3)])
    total = bus.run(once=True)
    # Two failures open the circuit; the third delivery is deferred, not attempted.
    assert (total.delivered, total.retried) == (0, 2)
    time.sleep(0.05)  # the oldest delivery waits
    m = scrape(bus)
    retried = (("endpoint", "down"), ("outcome", "retried"), ("route", "r"))
    assert m[("lienthong_deliveries_total", retried)] == 2
    assert m[("lienthong_queue_depth", (("endpoint", "down"),))] == 3
    assert m[("lienthong_deliveries_retrying", (("endpoint", "down"),))] == 2
    assert m[("lienthong_oldest_pending_seconds", (("endpoint", "down"),))] >= 0.05
    assert m[("lienthong_circuit_open", (("endpoint", "down"),))] == 1
    assert m[("lienthong_circuit_open", (("endpoint", "in"),))] == 0
    status, report = health(bus)
    assert status == 200, "degraded still serves"
    assert report["status"] == "degraded" and report["open_circuits"] == ["down"]
    assert report["pending"] == 3 and report["oldest_pending_seconds"] >= 0.05


def test_health_fails_when_the_store_or_broker_is_unreachable(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    lost = Store(make_engine(f"postgresql+psycopg://lt@127.0.0.1:{closed}/none?connect_timeout=2"))
    server = MetricsServer(Metrics(lost, {}), "127.0.0.1", 0)
    server.start()
    try:
        host, port = server.address
        status, _, body = get(f"http://{host}:{port}/health")
        report = json.loads(body)
        assert status == 503 and report["status"] == "failing" and report["store"] is False
        assert str(closed) in report["store_error"]
        status, _, body = get(f"http://{host}:{port}/metrics")
        assert status == 200 and "lienthong_store_up 0.0" in body
        status, _, body = get(f"http://{host}:{port}/nothing")
        assert status == 404 and "/metrics" in body
    finally:
        server.stop()
    store = Store(make_engine(f"sqlite:///{tmp_path / 'bus.db'}"))
    store.upgrade()
    broker = Secret(f"amqp://lienthong:s3cret-pw@127.0.0.1:{closed}//")
    report = Metrics(store, {}, broker=broker).health()
    assert report["status"] == "failing" and report["broker"] is False and report["store"]
    assert str(closed) in report["broker_error"] and "s3cret-pw" not in report["broker_error"]


def test_a_taken_port_refuses_to_start_with_a_hint(tmp_path: Path) -> None:
    store = Store(make_engine(f"sqlite:///{tmp_path / 'bus.db'}"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError) as caught:
            MetricsServer(Metrics(store, {}), "127.0.0.1", port)
    message = str(caught.value)
    assert f"bus.metrics_port: cannot listen on 127.0.0.1:{port}" in message
    assert "Hint:" in message and "--metrics-port" in message


@pytest.mark.parametrize("port", ["9464", 70000, -1, True, 94.64])
def test_a_bad_metrics_port_is_a_config_problem(lienthong_bus, port: Any) -> None:
    with pytest.raises(ConfigError) as caught:
        lienthong_bus(bus={"metrics_port": port})
    assert "bus.metrics_port" in str(caught.value) and repr(port) in str(caught.value)


def test_each_bus_keeps_its_own_registry(lienthong_bus) -> None:
    endpoints = {"in": {"adapter": "memory"}, "out": {"adapter": "memory"}}
    routes = [{"name": "copy", "from": "in", "to": ["out"]}]
    first = lienthong_bus(bus={"metrics_port": 0}, endpoints=endpoints, routes=routes)
    second = lienthong_bus(bus={"metrics_port": 0}, endpoints=endpoints, routes=routes)
    memory.feed("in", [Message(body=b"<a/>")])
    first.run(once=True)
    accepted = ("lienthong_messages_accepted_total", (("source", "in"),))
    assert scrape(first)[accepted] == 1
    assert accepted not in scrape(second)


def test_status_json_shows_lag_retries_and_jobs(lienthong_bus, tmp_path: Path) -> None:
    settings = {
        "endpoints": {"in": {"adapter": "memory"}, "out": {"adapter": "memory"}},
        "routes": [{"name": "copy", "from": "in", "to": ["out"]}],
        "jobs": {"poll-in": {"interval": 3600, "poll": "in"}},
    }
    bus = lienthong_bus(**settings)
    memory.feed("in", [Message(body=b"<a/>"), Message(body=b"<b/>")])
    assert bus.poll_endpoint("in") == 2  # accepted, not delivered yet (the job polls 'in')
    failed = bus._claimed[0]
    bus.store.finish([Outcome(failed, "transient", "timed out")], "test")
    time.sleep(0.05)
    config = tmp_path / "lienthong.yaml"
    config.write_text(
        yaml.safe_dump({"bus": {"store": "sqlite:///var/bus.db", "var_dir": "var"}, **settings})
    )
    result = CliRunner().invoke(cli_module.cli, ["--config", str(config), "status", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["pending_by_endpoint"] == {"out": 2}
    assert data["retrying_by_endpoint"] == {"out": 1}
    assert 0.05 <= data["lag_seconds"]["out"] < 60
    (job,) = data["jobs"]
    assert job["name"] == "poll-in" and job["last_outcome"] is None
    result = CliRunner().invoke(cli_module.cli, ["--config", str(config), "status"])
    assert result.exit_code == 0, result.output
    assert "lag" in result.output and "job poll-in (poll in): not run yet" in result.output


def test_health_reaches_a_real_broker(tmp_path: Path, amqp_url: str) -> None:
    store = Store(make_engine(f"sqlite:///{tmp_path / 'bus.db'}"))
    store.upgrade()
    report = Metrics(store, {}, broker=Secret(amqp_url)).health()
    assert (report["status"], report["broker"], report["store"]) == ("ok", True, True), report


def test_store_metrics_read_postgresql_too(pg_url: str) -> None:
    store = Store(make_engine(pg_url))
    store.upgrade()
    body = Metrics(store, {}).exposition().decode()
    assert "lienthong_store_up 1.0" in body and "lienthong_dead_letters_waiting 0.0" in body
    assert store.pending_overview() == {}
    store.engine.dispose()


def test_run_on_a_taken_port_exits_4_before_touching_anything(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in/a.xml").write_bytes(b"<a/>")
    config = tmp_path / "lienthong.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "bus": {"store": "sqlite:///var/bus.db", "var_dir": "var"},
                "endpoints": {
                    "in": {"adapter": "folder", "path": "in"},
                    "out": {"adapter": "folder", "path": "out", "direction": "out"},
                },
                "routes": [{"name": "copy", "from": "in", "to": ["out"]}],
            }
        )
    )
    lienthong = str(Path(sys.executable).parent / "lienthong")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        done = subprocess.run(
            [lienthong, "--config", str(config), "run", "--once", "--metrics-port", port],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 4, done.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr and "Hint:" in done.stderr
    assert (tmp_path / "in/a.xml").exists(), "nothing was received"


class CountingListener:
    """A TCP port that counts the connections made to it and closes each at once."""

    def __init__(self) -> None:
        import threading

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()


def test_health_checks_the_broker_at_most_every_few_seconds(tmp_path: Path) -> None:
    import threading

    store = Store(make_engine(f"sqlite:///{tmp_path / 'bus.db'}"))
    store.upgrade()
    broker = CountingListener()
    try:
        metrics = Metrics(store, {}, broker=Secret(f"amqp://guest:guest@127.0.0.1:{broker.port}//"))
        reports: list[dict[str, Any]] = []
        askers = [
            threading.Thread(target=lambda: reports.append(metrics.health())) for _ in range(20)
        ]
        started = time.monotonic()
        for asker in askers:
            asker.start()
        for asker in askers:
            asker.join(30)
        assert time.monotonic() - started < 5, "the check is reused, not redone"
        assert len(reports) == 20 and all(r["broker"] is False for r in reports)
        assert all(str(broker.port) in r["broker_error"] for r in reports)
        assert 1 <= broker.accepted <= 2, "one check (with its one retry) for twenty requests"
    finally:
        broker.sock.close()


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_idle_connections_cannot_take_the_bus_file_descriptors(tmp_path: Path) -> None:
    from tests.faults.harness import FaultProject, folder_in, folder_out, receipt_route
    from tests.faults.servers import free_port

    project = FaultProject(tmp_path)
    project.write(
        store="sqlite:///var/bus.db",
        endpoints={"in": folder_in(), "out": folder_out()},
        routes=[receipt_route()],
    )
    port = free_port()
    worker = project.start_worker("--metrics-port", str(port))
    idle: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                status, _, _ = get(f"http://127.0.0.1:{port}/health")
                break
            except OSError:
                assert time.monotonic() < deadline, project.logs()
                time.sleep(0.2)
        assert status == 200
        before = fd_count(worker.pid)
        for _ in range(600):
            with contextlib.suppress(OSError):  # a full listen queue: one idle client fewer
                idle.append(socket.create_connection(("127.0.0.1", port), timeout=2))
        assert len(idle) >= 100, "the idle clients got connected"
        most = before
        until = time.monotonic() + 2  # while the server accepts what is queued
        while time.monotonic() < until:
            most = max(most, fd_count(worker.pid))
            time.sleep(0.05)
        assert most <= before + 12, f"{most} descriptors, {before} before: not bounded"
        written = project.drop(3)
        project.wait_for(3, timeout=30)
        assert sorted(project.outputs()) == sorted(written), "the bus kept working"
        deadline = time.monotonic() + 30  # the idle ones time out, then /health answers again
        while True:
            try:
                status, _, body = get(f"http://127.0.0.1:{port}/health")
                break
            except OSError:
                assert time.monotonic() < deadline, "health never answered again"
                time.sleep(0.5)
        assert status == 200 and json.loads(body)["status"] == "ok"
        assert worker.poll() is None
    finally:
        for conn in idle:
            conn.close()
        project.kill_all()
