"""A bus in worker processes over drop folders: for production-mode and crash tests."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
LIENTHONG = str(Path(sys.executable).parent / "lienthong")
APPLICATION = (REPO / "mappings/onestop/application-to-receipt.cases/basic/input.xml").read_bytes()


class BusProject:
    """A config, drop folders and worker processes of ``lienthong run``, for whole-bus tests."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.inbox = root / "in"
        self.outbox = root / "out"
        self.config = root / "lienthong.yaml"
        self.workers: list[subprocess.Popen[bytes]] = []

    def write_config(
        self,
        *,
        store: str = "sqlite:///var/bus.db",
        broker: str = "embedded",
        out: str = "out",
        claim_seconds: float = 2,
        requeue_seconds: float | None = None,
        batch: int = 100,
    ) -> None:
        config = {
            "bus": {
                "store": store,
                "broker": broker,
                "var_dir": "var",
                "mappings": str(REPO / "mappings"),
                "poll_interval": 0.2,
                "claim_seconds": claim_seconds,
                "requeue_seconds": claim_seconds if requeue_seconds is None else requeue_seconds,
                "batch_size": batch,
                "retry": {"initial_delay": 0.2, "max_delay": 1},
            },
            "endpoints": {
                "in": {
                    "adapter": "folder",
                    "path": "in",
                    "kind": "onestop.application",
                    "batch": batch,
                },
                out: {
                    "adapter": "folder",
                    "path": "out",
                    "direction": "out",
                    "filename": "{filename}",
                },
            },
            "routes": [
                {
                    "name": "receipts",
                    "from": "in",
                    "to": [
                        {
                            "endpoint": out,
                            "mapping": "onestop/application-to-receipt.xsl",
                            "params": {"issuer": "000.00.00.H41"},
                        }
                    ],
                }
            ],
        }
        self.config.write_text(yaml.safe_dump(config, allow_unicode=True))

    def command(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [LIENTHONG, "--config", str(self.config), *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def start_worker(self) -> subprocess.Popen[bytes]:
        log = open(self.root / f"worker-{len(self.workers)}.log", "wb")  # noqa: SIM115
        worker = subprocess.Popen(
            [LIENTHONG, "--config", str(self.config), "--log-level", "WARNING", "run"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.workers.append(worker)
        return worker

    def drop(self, count: int) -> dict[str, bytes]:
        """Write ``count`` applications into the inbox; returns name → body."""
        self.inbox.mkdir(parents=True, exist_ok=True)
        written = {}
        for n in range(count):
            name = f"application-{n:05d}.xml"
            body = APPLICATION.replace(b"HS-2026-000123", f"HS-{n:05d}".encode())
            temporary = self.inbox / f".{name}.tmp"
            temporary.write_bytes(body)
            temporary.replace(self.inbox / name)
            written[name] = body
        return written

    def outputs(self) -> dict[str, bytes]:
        if not self.outbox.exists():
            return {}
        return {
            p.name: p.read_bytes()
            for p in self.outbox.iterdir()
            if p.is_file() and not p.name.startswith(".")
        }

    def wait_for_consumers(self, amqp_url: str, endpoint: str, count: int, timeout: float) -> None:
        """Wait until ``count`` workers consume ``endpoint``'s queue (their start is slow on a
        busy machine: without this, the first one up may take every message)."""
        from kombu import Connection

        from lienthong.relay import queue_for

        deadline = time.monotonic() + timeout
        with Connection(amqp_url, connect_timeout=5) as conn:
            while True:
                try:
                    _, _, consumers = queue_for(endpoint)(conn.channel()).queue_declare(
                        passive=True
                    )
                except Exception:  # not declared yet: no worker is up
                    consumers = 0
                if consumers >= count:
                    return
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"{consumers} of {count} workers consume {endpoint} after {timeout:g} s:"
                        f"\n{self.logs()}"
                    )
                time.sleep(0.2)

    def wait_for(self, count: int, timeout: float) -> dict[str, bytes]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            outputs = self.outputs()
            if len(outputs) >= count:
                return outputs
            time.sleep(0.1)
        return self.outputs()

    def logs(self) -> str:
        return "\n".join(
            p.read_text(errors="replace")[-3000:] for p in sorted(self.root.glob("worker-*.log"))
        )

    def kill_all(self, sig: int = signal.SIGKILL) -> None:
        for worker in self.workers:
            if worker.poll() is None:
                worker.send_signal(sig)
        for worker in self.workers:
            worker.wait(timeout=30)
        self.workers.clear()


def assert_each_delivered_once(
    project: BusProject, written: dict[str, bytes], outputs: dict[str, bytes]
) -> None:
    """Every input has exactly its own receipt: right count, right content, no strays."""
    assert sorted(outputs) == sorted(written), (
        f"{len(outputs)} outputs for {len(written)} inputs\n{project.logs()}"
    )
    for name, body in written.items():
        case = body.split(b'id="')[1].split(b'"')[0]
        assert b"<caseNumber>" + case + b"</caseNumber>" in outputs[name], name
