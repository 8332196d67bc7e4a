"""Soak: N messages through RabbitMQ + PostgreSQL with two worker processes and a real sandbox.

Each one-stop-shop application dropped in a folder goes two ways: mapped to a
receipt into an output folder, and mapped to a PostVoucher posted to the
SANDBOX accounting SOAP service (WS-Security on). One file in four goes to a
second folder that a scheduled job polls every second instead of the worker
loop, so scheduled polls publish beside the loop's consuming all along. Files
are dropped in waves so the inboxes hold a bounded backlog, as a real producer
would. At the end the run checks that every message is at both targets exactly
once (a file per input, a voucher per delivery key, no voucher twice), that
nothing is pending, that every tick of the job ran once and none failed, and
that each worker's memory stayed flat (median RSS of the last quarter of the
run against the first quarter). It prints throughput, accept-to-delivery
latency (p50/p99, from the store's messages.accepted_at and
deliveries.delivered_at) and peak RSS per worker.

    python benchmarks/soak.py                  # 100,000 messages
    python benchmarks/soak.py --messages 3000  # the short form CI runs

Servers: LIENTHONG_TEST_PG (default postgresql+psycopg://postgres@127.0.0.1:5432/test)
and LIENTHONG_TEST_AMQP (default amqp://guest:guest@127.0.0.1:5672//); the run
uses a fresh schema and endpoint names of its own, and removes the schema after.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
import yaml

from lienthong.plugins.accounting_soap.sandbox import AccountingSandbox

REPO = Path(__file__).resolve().parents[1]
LIENTHONG = str(Path(sys.executable).parent / "lienthong")
APPLICATION = (REPO / "mappings/onestop/application-to-receipt.cases/basic/input.xml").read_bytes()
VOUCHER_XSL = REPO / "tests/faults/mappings/onestop/application-to-voucher.xsl"
PG_URL = os.environ.get("LIENTHONG_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
AMQP_URL = os.environ.get("LIENTHONG_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672//")
USER, PASSWORD = "ketoan-soak", "soak-sandbox-password"
BACKLOG = 2000  # input files waiting at most; the producer drops more as they are taken
POLLED_EVERY = 4  # one file in four goes to the folder the scheduled job polls
SAMPLE_SECONDS = 2.0
WARMUP_SECONDS = 10.0  # RSS is sampled after the workers' start-up (imports, first batches)


@dataclass
class Report:
    """What a soak run measured and whether its checks held."""

    messages: int
    seconds: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    rss: dict[int, list[float]] = field(default_factory=dict)  # worker -> MiB samples
    restarts: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0

    def quarters(self, worker: int) -> tuple[float, float]:
        """Median RSS (MiB) of the first and the last quarter of the run."""
        samples = self.rss[worker]
        q = max(1, len(samples) // 4)
        return statistics.median(samples[:q]), statistics.median(samples[-q:])

    def lines(self) -> list[str]:
        out = [
            f"messages: {self.messages} (each to a folder and to the SOAP sandbox: "
            f"{2 * self.messages} deliveries; one in {POLLED_EVERY} taken by a scheduled "
            "poll), 2 workers, RabbitMQ + PostgreSQL",
            f"time: {self.seconds:.1f} s; throughput: {self.throughput:.0f} msg/s "
            f"({2 * self.throughput:.0f} deliveries/s)",
            f"latency accept->delivery: p50 {self.p50_ms:.0f} ms, p99 {self.p99_ms:.0f} ms",
        ]
        for worker in sorted(self.rss):
            if not self.rss[worker]:
                out.append(f"worker {worker}: no RSS sample (the run ended within the warm-up)")
                continue
            first, last = self.quarters(worker)
            out.append(
                f"worker {worker}: peak RSS {max(self.rss[worker]):.1f} MiB; median RSS first "
                f"quarter {first:.1f} MiB, last quarter {last:.1f} MiB "
                f"({len(self.rss[worker])} samples)"
            )
        out.append("checks: " + ("all passed" if not self.problems else "; ".join(self.problems)))
        return out


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def write_config(root: Path, store: str, broker: str, out: str, acct: str, wsdl: str) -> Path:
    mappings = root / "mappings"
    shutil.copytree(REPO / "mappings/onestop", mappings / "onestop")
    shutil.copy(VOUCHER_XSL, mappings / "onestop" / VOUCHER_XSL.name)
    config = {
        "bus": {
            "store": store,
            "broker": broker,
            "var_dir": "var",
            "mappings": str(mappings),
            "poll_interval": 0.2,
            "batch_size": 200,
            "claim_seconds": 60,
            "requeue_seconds": 60,
            "retry": {"initial_delay": 0.5, "max_delay": 5, "max_attempts": 20},
        },
        "endpoints": {
            "in": {"adapter": "folder", "path": "in", "kind": "onestop.application", "batch": 200},
            "in-job": {
                "adapter": "folder",
                "path": "in-job",
                "kind": "onestop.application",
                "batch": 200,
            },
            out: {"adapter": "folder", "path": "out", "direction": "out", "filename": "{filename}"},
            acct: {
                "adapter": "accounting_soap",
                "wsdl": wsdl,
                "username": USER,
                "password": {"env": "SOAK_SOAP_PASSWORD"},
                "send_operation": "PostVoucher",
                "reference_field": "voucher.externalReference",
                "timeout": 30,
            },
        },
        "routes": [
            {
                "name": "receipts-and-fees",
                "from": ["in", "in-job"],
                "to": [
                    {
                        "endpoint": out,
                        "mapping": "onestop/application-to-receipt.xsl",
                        "params": {"issuer": "000.00.00.H41"},
                    },
                    {"endpoint": acct, "mapping": "onestop/application-to-voucher.xsl"},
                ],
            }
        ],
        "jobs": {"poll-in-job": {"interval": 1, "poll": "in-job"}},
    }
    path = root / "lienthong.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    return path


def body(n: int) -> bytes:
    return APPLICATION.replace(b"HS-2026-000123", f"HS-{n:07d}".encode())


def drop(inboxes: tuple[Path, Path], start: int, stop: int) -> None:
    """Drop applications start..stop-1: one in POLLED_EVERY to the job's folder."""
    loop, polled = inboxes
    for n in range(start, stop):
        inbox = polled if n % POLLED_EVERY == 0 else loop
        name = f"application-{n:07d}.xml"
        temporary = inbox / f".{name}.tmp"
        temporary.write_bytes(body(n))
        temporary.replace(inbox / name)


def waiting(inboxes: tuple[Path, Path]) -> int:
    count = 0
    for inbox in inboxes:
        with os.scandir(inbox) as entries:
            count += sum(1 for e in entries if e.name.endswith(".xml") and e.is_file())
    return count


def run(
    messages: int,
    *,
    pg_url: str = PG_URL,
    amqp_url: str = AMQP_URL,
    timeout: float = 3600,
    keep: bool = False,
) -> Report:
    """Run the soak and return its report (``report.problems`` empty when every check held)."""
    report = Report(messages)
    root = Path(tempfile.mkdtemp(prefix="lienthong-soak-"))
    suffix = uuid.uuid4().hex[:8]
    schema = f"soak_{suffix}"
    out, acct = f"soak-out-{suffix}", f"soak-acct-{suffix}"
    admin = sa.create_engine(pg_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    store = f"{pg_url}?options=-csearch_path%3D{schema}"
    sandbox = AccountingSandbox(username=USER, password=PASSWORD).start()
    workers: list[subprocess.Popen[bytes]] = []
    env = {**os.environ, "SOAK_SOAP_PASSWORD": PASSWORD}
    try:
        config = write_config(root, store, amqp_url, out, acct, sandbox.wsdl_url)
        inboxes, outbox = (root / "in", root / "in-job"), root / "out"
        for inbox in inboxes:
            inbox.mkdir()
        cli = [LIENTHONG, "--config", str(config)]
        subprocess.run([*cli, "db", "upgrade"], check=True, env=env, capture_output=True)
        for n in range(2):
            log = open(root / f"worker-{n}.log", "wb")  # noqa: SIM115
            workers.append(
                subprocess.Popen(
                    [*cli, "--log-level", "WARNING", "run"],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                )
            )
            report.rss[n] = []
        engine = sa.create_engine(store)
        started = time.monotonic()
        dropped, last_sample, delivered = 0, 0.0, 0
        while time.monotonic() - started < timeout:
            if dropped < messages:
                room = BACKLOG - waiting(inboxes)
                if room > BACKLOG // 4:
                    stop = min(messages, dropped + room)
                    drop(inboxes, dropped, stop)
                    dropped = stop
            now = time.monotonic()
            if now - last_sample >= SAMPLE_SECONDS:
                last_sample = now
                for n, worker in enumerate(workers):
                    if worker.poll() is not None:
                        report.problems.append(f"worker {n} exited with {worker.returncode}")
                        raise RuntimeError((root / f"worker-{n}.log").read_text()[-3000:])
                    value = rss_mib(worker.pid)
                    if value is not None and now - started >= WARMUP_SECONDS:
                        report.rss[n].append(value)
                with engine.connect() as conn:
                    delivered = conn.execute(
                        sa.text("SELECT count(*) FROM deliveries WHERE state = 'delivered'")
                    ).scalar_one()
                if delivered >= 2 * messages:
                    break
            time.sleep(0.05)
        report.seconds = time.monotonic() - started
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            worker.wait(timeout=60)
        check(report, engine, outbox, acct, sandbox)
        engine.dispose()
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
        sandbox.stop()
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()
        _delete_queues(amqp_url, [out, acct])
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    return report


def check(
    report: Report, engine: sa.Engine, outbox: Path, acct: str, sandbox: AccountingSandbox
) -> None:
    """Every message at both targets once, nothing pending or dead, ticks once, memory flat."""
    n = report.messages
    with engine.connect() as conn:
        count = conn.execute(sa.text("SELECT count(*) FROM messages")).scalar_one()
        polled = conn.execute(
            sa.text("SELECT count(*) FROM messages WHERE source = 'in-job'")
        ).scalar_one()
        ticks = conn.execute(
            sa.text(
                "SELECT outcome, count(*), count(DISTINCT scheduled_for) FROM job_runs GROUP BY 1"
            )
        ).all()
        states = dict(
            conn.execute(sa.text("SELECT state, count(*) FROM deliveries GROUP BY state")).all()
        )
        keys = set(
            conn.execute(
                sa.text("SELECT id FROM deliveries WHERE endpoint = :e AND state = 'delivered'"),
                {"e": acct},
            ).scalars()
        )
        p50, p99 = conn.execute(
            sa.text(
                "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x), "
                "percentile_cont(0.99) WITHIN GROUP (ORDER BY x) FROM ("
                "SELECT extract(epoch FROM d.delivered_at - m.accepted_at) AS x "
                "FROM deliveries d JOIN messages m ON m.id = d.message_id "
                "WHERE d.state = 'delivered') t"
            )
        ).one()
    report.p50_ms, report.p99_ms = float(p50 or 0) * 1000, float(p99 or 0) * 1000
    if count != n:
        report.problems.append(f"{count} messages stored for {n} inputs")
    if polled != len(range(0, n, POLLED_EVERY)):
        report.problems.append(f"{polled} messages from the scheduled poll, expected every 4th")
    outcomes = {outcome: runs for outcome, runs, _ in ticks}
    if set(outcomes) - {"ok"} or any(runs != distinct for _, runs, distinct in ticks):
        report.problems.append(f"scheduled poll runs by outcome: {outcomes} (each tick once, ok)")
    if states.get("delivered", 0) != 2 * n or set(states) - {"delivered"}:
        report.problems.append(f"deliveries by state: {states} (expected {2 * n} delivered)")
    files = {p.name for p in outbox.iterdir() if p.suffix == ".xml"}
    expected = {f"application-{i:07d}.xml" for i in range(n)}
    if files != expected:
        report.problems.append(
            f"{len(files)} receipts; missing {len(expected - files)}, stray {len(files - expected)}"
        )
    refs = [v.get("externalReference", "") for v in sandbox.vouchers()]
    if len(refs) != len(set(refs)):
        report.problems.append(f"{len(refs) - len(set(refs))} vouchers posted twice")
    if set(refs) != keys or len(keys) != n:
        report.problems.append(f"{len(refs)} vouchers for {len(keys)} delivered postings of {n}")
    for worker, samples in report.rss.items():
        if len(samples) >= 8:
            first, last = report.quarters(worker)
            if last > first * 1.2 + 10:
                report.problems.append(
                    f"worker {worker} memory grew: {first:.1f} MiB -> {last:.1f} MiB"
                )


def _delete_queues(amqp_url: str, endpoints: list[str]) -> None:
    from kombu import Connection

    from lienthong.relay import queue_for

    try:
        with Connection(amqp_url, connect_timeout=5) as conn:
            channel = conn.channel()
            for endpoint in endpoints:
                queue_for(endpoint)(channel).delete()
    except Exception as exc:  # cleanup only: a queue left behind is harmless
        print(f"could not delete the soak's queues: {exc}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", "-n", type=int, default=100_000)
    parser.add_argument("--pg", default=PG_URL, help="PostgreSQL URL (a schema is made in it)")
    parser.add_argument("--amqp", default=AMQP_URL, help="RabbitMQ URL")
    parser.add_argument("--timeout", type=float, default=3600, help="give up after seconds")
    parser.add_argument("--keep", action="store_true", help="keep the run's folder and logs")
    args = parser.parse_args(argv)
    report = run(
        args.messages, pg_url=args.pg, amqp_url=args.amqp, timeout=args.timeout, keep=args.keep
    )
    for line in report.lines():
        print(line, flush=True)
    print(
        f"RESULT soak.production {report.throughput:.1f} msg/s p50={report.p50_ms:.0f}ms "
        f"p99={report.p99_ms:.0f}ms",
        flush=True,
    )
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
