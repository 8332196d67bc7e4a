"""Whole-bus fault runs: a config, drop folders, worker processes and the final accounting.

Every fault test ends with :func:`account`: each input file became exactly one
message, each of its deliveries is delivered (its effect present once at the
target) or dead-lettered with a reason, and nothing is pending or lost.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml

from tests.busproject import APPLICATION, LIENTHONG, REPO, BusProject

HERE = Path(__file__).parent
VOUCHER_MAPPING = "onestop/application-to-voucher.xsl"
RECEIPT_MAPPING = "onestop/application-to-receipt.xsl"


def make_mappings(root: Path) -> Path:
    """A mappings folder with the repo's onestop mappings and the tests' voucher mapping."""
    target = root / "mappings"
    shutil.copytree(REPO / "mappings/onestop", target / "onestop", dirs_exist_ok=True)
    shutil.copytree(HERE / "mappings/onestop", target / "onestop", dirs_exist_ok=True)
    return target


class FaultProject(BusProject):
    """A :class:`BusProject` whose config is given whole, with worker environment and logs."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.env: dict[str, str] = {}
        self.log_level = "WARNING"

    def write(
        self,
        *,
        store: str | dict[str, str],
        broker: str | dict[str, str] = "embedded",
        endpoints: Mapping[str, Any],
        routes: list[dict[str, Any]],
        bus: Mapping[str, Any] | None = None,
        jobs: Mapping[str, Any] | None = None,
    ) -> None:
        settings: dict[str, Any] = {
            "store": store,
            "broker": broker,
            "var_dir": "var",
            "mappings": str(make_mappings(self.root)),
            "poll_interval": 0.2,
            "claim_seconds": 2,
            "requeue_seconds": 2,
            "batch_size": 100,
            "retry": {"initial_delay": 0.2, "max_delay": 1, "max_attempts": 10},
        }
        settings.update(bus or {})
        config: dict[str, Any] = {"bus": settings, "endpoints": dict(endpoints), "routes": routes}
        if jobs:
            config["jobs"] = dict(jobs)
        self.config.write_text(yaml.safe_dump(config, allow_unicode=True))

    def command(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [LIENTHONG, "--config", str(self.config), *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={**os.environ, **self.env},
        )

    def start_worker(self, *run_args: str) -> subprocess.Popen[bytes]:
        """Start ``lienthong run`` (with ``run_args``), logging to worker-N.log."""
        log = open(self.root / f"worker-{len(list(self.root.glob('worker-*.log')))}.log", "wb")  # noqa: SIM115
        worker = subprocess.Popen(
            [
                LIENTHONG,
                "--config",
                str(self.config),
                "--log-level",
                self.log_level,
                "run",
                *run_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
        )
        self.workers.append(worker)
        return worker

    def drop_more(self, written: dict[str, bytes], count: int) -> dict[str, bytes]:
        """Drop ``count`` more applications, numbered on from ``written`` (which gains them)."""
        self.inbox.mkdir(parents=True, exist_ok=True)
        for n in range(len(written), len(written) + count):
            name = f"application-{n:05d}.xml"
            body = APPLICATION.replace(b"HS-2026-000123", f"HS-{n:05d}".encode())
            temporary = self.inbox / f".{name}.tmp"
            temporary.write_bytes(body)
            temporary.replace(self.inbox / name)
            written[name] = body
        return written

    def all_logs(self) -> str:
        return "\n".join(
            p.read_text(errors="replace") for p in sorted(self.root.glob("worker-*.log"))
        )


def inbox_files(folder: Path) -> list[Path]:
    """Input files not yet taken by the bus."""
    if not folder.exists():
        return []
    return [p for p in folder.iterdir() if p.is_file() and p.suffix == ".xml"]


@dataclass
class Accounting:
    """How every input ended: delivered once, dead-lettered (with reason), or wrong."""

    messages: int = 0
    delivered: int = 0
    dead: dict[str, str] = field(default_factory=dict)  # delivery or message id -> reason
    pending: int = 0
    attempts: int = 0


def store_counts(url: str) -> dict[str, int]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT state, count(*) FROM deliveries GROUP BY state")
            ).all()
    finally:
        engine.dispose()
    return {state: int(n) for state, n in rows}


def wait_settled(
    project: FaultProject,
    url: str,
    expected: int,
    timeout: float,
    check: Callable[[], None] | None = None,
) -> None:
    """Wait until the inbox is empty and ``expected`` deliveries are done (delivered or dead)."""
    deadline = time.monotonic() + timeout
    counts: dict[str, int] = {}
    while time.monotonic() < deadline:
        if check:
            check()
        try:
            counts = store_counts(url)
        except sa.exc.OperationalError:
            counts = {}
        done = counts.get("delivered", 0) + counts.get("dead", 0)
        if not inbox_files(project.inbox) and done >= expected and not counts.get("pending"):
            return
        time.sleep(0.3)
    raise AssertionError(
        f"not settled within {timeout:.0f} s: {counts}, "
        f"{len(inbox_files(project.inbox))} files left in the inbox\n{project.logs()}"
    )


def account(
    url: str,
    written: Mapping[str, bytes],
    *,
    source: str = "in",
    folder: tuple[str, Path] | None = None,
    vouchers: tuple[str, list[dict[str, str]]] | None = None,
) -> Accounting:
    """The full accounting of one run; raises AssertionError naming what is lost or doubled.

    ``folder`` is (endpoint, path) of an output folder written as ``{filename}``;
    ``vouchers`` is (endpoint, the accounting sandbox's vouchers): each delivered
    delivery's key must be the external reference of exactly one voucher.
    """
    engine = sa.create_engine(url)
    result = Accounting()
    try:
        with engine.connect() as conn:
            msgs = conn.execute(
                sa.text("SELECT id, headers, state FROM messages WHERE source = :s"), {"s": source}
            ).all()
            dlv = conn.execute(
                sa.text(
                    "SELECT d.id, d.message_id, d.endpoint, d.state, d.attempts, m.headers "
                    "FROM deliveries d JOIN messages m ON m.id = d.message_id "
                    "WHERE m.source = :s"
                ),
                {"s": source},
            ).all()
            dead = conn.execute(
                sa.text(
                    "SELECT message_id, delivery_id, reason FROM dead_letters "
                    "WHERE replayed_at IS NULL"
                )
            ).all()
    finally:
        engine.dispose()
    names = [json.loads(h).get("filename") for _, h, _ in msgs]
    doubled = sorted({n for n in names if names.count(n) > 1})
    assert not doubled, f"inputs stored as more than one message: {doubled[:5]}"
    assert sorted(names) == sorted(written), (
        f"{len(names)} messages for {len(written)} inputs; missing: "
        f"{sorted(set(written) - set(names))[:5]}"
    )
    result.messages = len(msgs)
    reasons = {(r.message_id, r.delivery_id): r.reason for r in dead}
    for mid, _, state in msgs:
        if state == "parked":
            reason = reasons.get((mid, None))
            assert reason, f"message {mid} parked without a dead letter"
            result.dead[mid] = reason
    delivered_names: dict[str, list[str]] = {}
    delivered_keys: dict[str, set[str]] = {}
    for d in dlv:
        result.attempts += d.attempts
        if d.state == "pending":
            result.pending += 1
        elif d.state == "dead":
            reason = reasons.get((d.message_id, d.id))
            assert reason, f"delivery {d.id} dead without a dead letter and reason"
            result.dead[d.id] = reason
        else:
            result.delivered += 1
            delivered_names.setdefault(d.endpoint, []).append(json.loads(d.headers)["filename"])
            delivered_keys.setdefault(d.endpoint, set()).add(d.id)
    assert result.pending == 0, f"{result.pending} deliveries still pending"
    if folder:
        endpoint, path = folder
        outputs = sorted(p.name for p in path.iterdir() if p.is_file() and p.suffix == ".xml")
        assert outputs == sorted(delivered_names.get(endpoint, [])), (
            f"{endpoint}: {len(outputs)} files for "
            f"{len(delivered_names.get(endpoint, []))} deliveries"
        )
        for name in outputs:
            case = written[name].split(b'id="')[1].split(b'"')[0]
            assert b"<caseNumber>" + case + b"</caseNumber>" in (path / name).read_bytes(), name
    if vouchers:
        endpoint, posted = vouchers
        refs = [v.get("externalReference", "") for v in posted]
        assert len(refs) == len(set(refs)), "a voucher was posted twice"
        assert set(refs) == delivered_keys.get(endpoint, set()), (
            f"{endpoint}: {len(refs)} vouchers for "
            f"{len(delivered_keys.get(endpoint, set()))} deliveries"
        )
    return result


def folder_in(batch: int = 100) -> dict[str, Any]:
    return {"adapter": "folder", "path": "in", "kind": "onestop.application", "batch": batch}


def folder_out() -> dict[str, Any]:
    return {"adapter": "folder", "path": "out", "direction": "out", "filename": "{filename}"}


def receipt_route(out: str = "out", source: str = "in") -> dict[str, Any]:
    return {
        "name": "receipts",
        "from": source,
        "to": [
            {
                "endpoint": out,
                "mapping": RECEIPT_MAPPING,
                "params": {"issuer": "000.00.00.H41"},
            }
        ],
    }
