"""Benchmark: a year of the province's one-stop traffic, through the bus to the national portal.

The SANDBOX one-stop-shop system serves a synthetic year (156,815 dossiers, 5
processing steps each, as the province's figures give) and the SANDBOX portal
takes them, both in a process of their own (the other core). In the same run:

- raw baseline: a bare loop with the same HTTP client (the adapter's, on urllib3)
  and the same concurrency makes the same calls: a token and a session, the
  dossier and step pages, and one portal call per dossier (DongBoHoSoMC) and
  per step (CapNhatTienDoHoSoMC), the JSON built in Python; with ``--concurrency
  N`` each page's portal calls go out from N threads, each with its own client;
- the bus: the two one-stop endpoints polled by cursor and page, every item
  through the shipped mappings to the portal endpoint (``concurrency: N``: N
  send lanes), stored, delivered once, on the embedded default (SQLite, no
  broker) and, when the servers answer, on RabbitMQ + PostgreSQL; in this
  process, or with ``--workers W`` as deployed (docs/deploy.md, one worker per
  core): W ``lienthong run`` processes on one store, the raw loop then making
  W x N calls at once.

The raw loop and the bus each get fresh sandboxes and take the year in
alternating slices (``--rounds``): the sandbox shows one more slice, the raw
loop posts it, the other sandbox shows it, the bus delivers it, so a busy
moment on a shared machine hurts both alike. A slice ends when the portal's
own counters say every dossier and step arrived. Printed: dossiers/s, steps/s, calls/s, the bus's
ratio to the raw loop (target >= 0.5) and the time for the whole year (target
< 15 minutes).

Run: .venv/bin/python benchmarks/bench_onestop.py [--dossiers N] [--rounds R] [--quick]
[--concurrency N] [--workers W] [--skip-production] [--skip-embedded]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lienthong import config
from lienthong.bus import Bus, open_store
from lienthong.plugins.rest_json.client import Answer, HttpClient, Request
from lienthong.store import Store, make_engine

HERE = Path(__file__).resolve().parent
MAPPINGS = HERE.parent / "mappings"
PG_URL = os.environ.get("LIENTHONG_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
AMQP_URL = os.environ.get("LIENTHONG_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672//")
STEPS = 5
PAGE = 500
MADONVI = "000.00.00.H41"
STATUS = {
    "received": "2",
    "processing": "4",
    "waiting": "5",
    "releasing": "9",
    "done": "10",
}
YEAR_MINUTES_TARGET = 15


@contextmanager
def sandboxes(dossiers: int, latency_ms: float = 0.0) -> Iterator[dict[str, str]]:
    """Fresh SANDBOX one-stop system and portal in a process of their own, showing nothing
    until :func:`release` shows a slice of the year."""
    process = subprocess.Popen(
        [sys.executable, "-m", "lienthong.plugins.rest_json.sandbox"]
        + ["--year", str(dossiers), "--steps", str(STEPS), "--lean", "--hold"]
        # A production year takes over an hour: tokens and sessions must outlive it (the
        # raw loop does not renew; the adapter's renewal is tested elsewhere).
        + ["--token-ttl", str(24 * 3600)]
        + ["--portal-latency-ms", str(latency_ms)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        urls = json.loads(process.stdout.readline())
        yield urls
    finally:
        process.terminate()
        process.wait(timeout=30)


class Http:
    """The adapter's own HTTP client (urllib3, one pool per origin, one write per request)."""

    def __init__(self) -> None:
        self.client = HttpClient(timeout=30.0, max_bytes=10 * 1024 * 1024)

    def request(
        self,
        method: str,
        url: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        return self.client.send(Request(method, url, dict(headers or {}), body))


def release(http: Http, onestop: str, dossiers: int) -> None:
    """Let the one-stop sandbox show the year's first ``dossiers`` dossiers and their steps."""
    body = json.dumps({"dossiers": dossiers}).encode()
    http.request("POST", f"{onestop}/_sandbox/release", body, {"Content-Type": "application/json"})


def portal_counts(http: Http, portal: str) -> tuple[int, int]:
    stats = json.loads(http.request("GET", f"{portal}/_sandbox/stats").body)
    return stats["dossiers"], stats["steps"]


# --- the raw loop ------------------------------------------------------------------


def compact(iso: str | None) -> str:
    """2026-03-02T08:15:00+07:00 -> 20260302081500 (the sandbox writes Vietnam's time)."""
    return "" if not iso else iso[:19].replace("-", "").replace("T", "").replace(":", "")


class RawLoop:
    """The same calls as the bus, with no bus, keeping its place like the bus: one thread,
    or each page's portal calls on ``concurrency`` threads, each with a client of its own."""

    def __init__(self, urls: dict[str, str], concurrency: int = 1) -> None:
        self.urls = urls
        self.http = Http()
        self._local = threading.local()  # each calling thread's own client
        self.pool = ThreadPoolExecutor(concurrency) if concurrency > 1 else None
        self.json = {
            "Content-Type": "application/json; charset=utf-8",
            "Accept": "application/json",
        }
        self.since = ""  # the greatest updatedAt posted (the synthetic year's are all distinct)
        self.cursor = ""
        basic = base64.b64encode(b"lienthong-motcua:sandbox-secret").decode()
        token = self._json(
            "POST",
            f"{urls['onestop']}/oauth2/token",
            b"grant_type=client_credentials",
            {
                "Authorization": f"Basic {basic}",
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )["access_token"]
        self.bearer = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        login = json.dumps({"username": "lienthong", "password": "sandbox-password"}).encode()
        self.session = self._json("POST", f"{urls['portal']}/api/auth", login, self.json)["session"]

    def _json(self, method: str, url: str, body: bytes | None, headers: dict[str, str]) -> Any:
        return json.loads(self.http.request(method, url, body, headers).body)

    def _call(self, body: dict[str, Any]) -> None:
        body = {"session": self.session, "madonvi": MADONVI, **body}
        data = json.dumps(body, ensure_ascii=False).encode()
        http = getattr(self._local, "http", None) or Http()
        self._local.http = http
        url = f"{self.urls['portal']}/api/integration"
        code = json.loads(http.request("POST", url, data, self.json).body)
        if code["error_code"] != "00":
            raise RuntimeError(f"the portal answered {code}")

    def _call_all(self, bodies: list[dict[str, Any]]) -> None:
        if self.pool is None:
            for body in bodies:
                self._call(body)
        else:
            list(self.pool.map(self._call, bodies))

    def run(self) -> float:
        """Post whatever the one-stop system shows that was not posted yet: seconds taken."""
        start = time.perf_counter()
        onestop = self.urls["onestop"]
        while True:
            url = f"{onestop}/api/v1/dossiers?updated_since={self.since}&per_page={PAGE}"
            items = self._json("GET", url, None, self.bearer)["response"]["items"]
            items = [d for d in items if d["updatedAt"] != self.since]
            if not items:
                break
            self._call_all([dossier_call(d) for d in items])
            self.since = items[-1]["updatedAt"]
        while True:
            url = f"{onestop}/api/v1/steps?cursor={self.cursor}&limit={PAGE}"
            found = self._json("GET", url, None, self.bearer)["response"]
            self._call_all([step_call(step) for step in found["items"]])
            self.cursor = found["next_cursor"]
            if not found["has_more"]:
                break
        return time.perf_counter() - start


def dossier_call(d: dict[str, Any]) -> dict[str, Any]:
    """What dossier-to-portal.xsl makes of a dossier, in Python."""
    return {
        "service": "DongBoHoSoMC",
        "isUpdating": "False",
        "data": [
            {
                "MaHoSo": d["dossierNo"],
                "MaTTHC": d["serviceCode"],
                "TenTTHC": d["serviceName"],
                "MaLinhVuc": d["domainCode"],
                "TenLinhVuc": d["domainName"],
                "KenhThucHien": "2" if d["online"] else "1",
                "ChuHoSo": d["applicantName"],
                "LoaiDoiTuong": "2" if d["applicantIdType"] == "business" else "1",
                "SoGiayToChuHoSo": d["applicantIdNo"],
                "Email": d["contactEmail"],
                "SoDienThoai": d["contactTelNo"],
                "TrichYeuHoSo": d["dossierNote"],
                "NgayTiepNhan": compact(d["receiveDate"]),
                "NgayHenTra": compact(d["dueDate"]),
                "TrangThaiHoSo": STATUS[d["dossierStatus"]],
                "NgayTra": compact(d["finishDate"]),
                "HinhThuc": "1" if d["viaPostal"] > 1 else "0",
                "DonViXuLy": d["govAgencyName"],
            }
        ],
    }


def step_call(s: dict[str, Any]) -> dict[str, Any]:
    """What step-to-portal-progress.xsl makes of a step, in Python."""
    return {
        "service": "CapNhatTienDoHoSoMC",
        "data": [
            {
                "MaHoSo": s["dossierNo"],
                "NguoiXuLy": s["actionUser"],
                "ChucDanh": s["actionTitle"],
                "ThoiDiemXuLy": compact(s["createDate"]),
                "PhongBanXuLy": s["department"],
                "NoiDungXuLy": s["actionNote"],
                "TrangThai": STATUS[s["stepStatus"]],
                "NgayBatDau": compact(s["startDate"]),
                "NgayKetThucTheoQuyDinh": compact(s["dueDate"]),
            }
        ],
    }


# --- the bus -------------------------------------------------------------------------


def endpoints(urls: dict[str, str], suffix: str, concurrency: int) -> dict[str, Any]:
    onestop_auth = {
        "adapter": "rest_json",
        "base_url": f"{urls['onestop']}/api/v1",
        "auth": "oauth2",
        "login_path": f"{urls['onestop']}/oauth2/token",
        "client_id": "lienthong-motcua",
        "client_secret": {"env": "BENCH_ONESTOP_SECRET"},
        "error_path": "code",
        "error_ok": "200",
        "items_path": "response.items",
        "page_size": PAGE,
        "max_pages": 4,
    }
    return {
        f"onestop-dossiers-{suffix}": {
            **onestop_auth,
            "operations": {"dossiers": {"method": "GET", "path": "/dossiers"}},
            "receive_operation": "dossiers",
            "item_key": "dossierNo,version",
            "message_kind": "onestop.dossier",
            "cursor_param": "updated_since",
            "cursor_field": "updatedAt",
            "pagination": "page",
            "page_size_param": "per_page",
        },
        f"onestop-steps-{suffix}": {
            **onestop_auth,
            "operations": {"steps": {"method": "GET", "path": "/steps"}},
            "receive_operation": "steps",
            "item_key": "id",
            "message_kind": "onestop.step",
            "cursor_param": "cursor",
            "cursor_path": "response.next_cursor",
            "pagination": "cursor",
            "next_path": "response.next_cursor",
            "more_path": "response.has_more",
            "page_size_param": "limit",
        },
        f"portal-{suffix}": {
            "adapter": "rest_json",
            "concurrency": concurrency,
            "base_url": f"{urls['portal']}/api",
            "auth": "login",
            "login_path": "/auth",
            "username": "lienthong",
            "password": {"env": "BENCH_PORTAL_PASSWORD"},
            "token_path": "session",
            "expires_path": "",
            "token_field": "session",
            "operations": {
                "dong-bo-ho-so": {
                    "path": "/integration",
                    "kind": "portal.dossier",
                    "resend_with": {"-3": {"isUpdating": "True"}, "-4": {"isUpdating": "False"}},
                },
                "cap-nhat-tien-do": {"path": "/integration", "kind": "portal.progress"},
            },
            "body_fields": {"madonvi": MADONVI},
            "error_path": "error_code",
            "error_transient": "-4",
            "error_auth": "-1",
        },
    }


def bus_settings(
    urls: dict[str, str], store: str, broker: str, suffix: str, concurrency: int
) -> dict[str, Any]:
    """The bus's config: the one-stop sources, the portal, the two routes."""
    settings: dict[str, Any] = {
        "bus": {
            "store": store,
            "broker": broker,
            "mappings": str(MAPPINGS),
            "var_dir": "var",
            "batch_size": 500,
            "poll_interval": 0.05,
            "retry": {"initial_delay": 0.2, "max_delay": 2},
        },
        "endpoints": endpoints(urls, suffix, concurrency),
        "routes": [
            {
                "name": "dossiers",
                "from": f"onestop-dossiers-{suffix}",
                "to": [
                    {
                        "endpoint": f"portal-{suffix}",
                        "mapping": "onestop/dossier-to-portal.xsl",
                        "kind": "portal.dossier",
                    }
                ],
            },
            {
                "name": "steps",
                "from": f"onestop-steps-{suffix}",
                "to": [
                    {
                        "endpoint": f"portal-{suffix}",
                        "mapping": "onestop/step-to-portal-progress.xsl",
                        "kind": "portal.progress",
                    }
                ],
            },
        ],
    }
    return settings


def make_bus(
    urls: dict[str, str], root: Path, store: str, broker: str, suffix: str, concurrency: int
) -> Bus:
    os.environ["BENCH_ONESTOP_SECRET"] = "sandbox-secret"
    os.environ["BENCH_PORTAL_PASSWORD"] = "sandbox-password"
    cfg = config.from_dict(bus_settings(urls, store, broker, suffix, concurrency), base_dir=root)
    Store(make_engine(cfg.bus.store.reveal())).upgrade()
    bus = Bus(cfg, worker="bench")
    bus.start()
    return bus


class Workers:
    """``count`` bus workers, each a ``lienthong run`` process as systemd starts them.

    Each polls the sources (one at a time: the poll lease), and each delivers: on
    RabbitMQ from the shared queue, on the embedded default what it polled itself.
    """

    def __init__(self, settings: dict[str, Any], root: Path, count: int) -> None:
        os.environ["BENCH_ONESTOP_SECRET"] = "sandbox-secret"
        os.environ["BENCH_PORTAL_PASSWORD"] = "sandbox-password"
        path = root / "lienthong.yaml"
        path.write_text(json.dumps(settings))  # YAML reads JSON
        cfg = config.load(path)
        Store(make_engine(cfg.bus.store.reveal())).upgrade()
        open_store(cfg.bus).engine.dispose()  # the audit key, made once for all of them
        # WARNING, not INFO: the in-process bus above logs nothing either, and two
        # lines a message to journald is a choice the figures should not hide.
        command = [sys.executable, "-c", "from lienthong.cli import main; main()"]
        command += ["--config", str(path)]
        command += ["--log-level", "WARNING", "run"]
        self.logs = [open(root / f"worker-{n}.log", "wb") for n in range(count)]  # noqa: SIM115
        self.processes = [
            subprocess.Popen(command, cwd=root, stdout=log, stderr=subprocess.STDOUT)
            for log in self.logs
        ]

    def pause(self) -> None:
        """Stop the workers while the raw loop has its turn: their idle polls would slow it."""
        for process in self.processes:
            process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGCONT)

    def check(self) -> None:
        for n, process in enumerate(self.processes):
            if process.poll() is not None:
                raise RuntimeError(
                    f"bus worker {n} exited with {process.returncode}: "
                    + Path(self.logs[n].name).read_text()[-2000:]
                )

    def close(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
        for log in self.logs:
            log.close()


def workers_until(workers: Workers, http: Http, urls: dict[str, str], dossiers: int) -> float:
    """Wait until the portal has ``dossiers`` dossiers and their steps: seconds taken."""
    start = time.perf_counter()
    while portal_counts(http, urls["portal"]) != (dossiers, dossiers * STEPS):
        workers.check()
        time.sleep(0.05)
    return time.perf_counter() - start


def bus_until(bus: Bus, http: Http, urls: dict[str, str], dossiers: int) -> float:
    """Run the bus until the portal has ``dossiers`` dossiers and their steps: seconds taken.

    The bus runs in a thread of its own (the only one that touches it meanwhile), so
    Ctrl-C and SIGTERM reach this script, which then stops the bus and cleans up.
    """
    failed: list[BaseException] = []

    def work() -> None:
        try:
            while not bus_stopped.is_set():
                if portal_counts(http, urls["portal"]) == (dossiers, dossiers * STEPS):
                    return
                bus.run(once=True)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            failed.append(exc)

    start = time.perf_counter()
    worker = threading.Thread(target=work, name="bench-bus")
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.5)
    except KeyboardInterrupt:
        bus_stopped.set()
        bus.stop()
        worker.join()
        raise
    if failed:
        raise failed[0]
    return time.perf_counter() - start


bus_stopped = threading.Event()


def measure(
    dossiers: int,
    rounds: int,
    store: str,
    broker: str,
    concurrency: int,
    latency_ms: float,
    workers: int = 1,
) -> tuple[float, float]:
    """Raw loop and bus in alternating slices of the year, so a busy moment on a shared
    machine hurts both alike: total seconds of each."""
    http = Http()
    raw_s = bus_s = 0.0
    suffix = uuid.uuid4().hex[:8]  # endpoint, hence queue, names on a RabbitMQ others share
    with (
        sandboxes(dossiers, latency_ms) as raw_urls,
        sandboxes(dossiers, latency_ms) as bus_urls,
        tempfile.TemporaryDirectory() as tmp,
    ):
        # The raw loop makes the calls the bus's workers make at once: lanes x workers.
        raw = RawLoop(raw_urls, concurrency * workers)
        settings = bus_settings(bus_urls, store, broker, suffix, concurrency)
        if workers > 1:
            pool = Workers(settings, Path(tmp), workers)

            def bus_round(upto: int) -> float:
                pool.resume()
                try:
                    return workers_until(pool, http, bus_urls, upto)
                finally:
                    pool.pause()

            def close() -> None:
                pool.resume()
                pool.close()

            pool.pause()
        else:
            bus = make_bus(bus_urls, Path(tmp), store, broker, suffix, concurrency)

            def bus_round(upto: int) -> float:
                return bus_until(bus, http, bus_urls, upto)

            close = bus.close
        try:
            for n in range(1, rounds + 1):
                upto = dossiers * n // rounds
                release(http, raw_urls["onestop"], upto)
                raw_s += raw.run()
                release(http, bus_urls["onestop"], upto)
                bus_s += bus_round(upto)
                print(f"  round {n}/{rounds}: raw {raw_s:.0f} s, bus {bus_s:.0f} s", flush=True)
            assert portal_counts(http, raw_urls["portal"]) == (dossiers, dossiers * STEPS)
        finally:
            close()
            if broker != "embedded":
                delete_queue(broker, f"lienthong.deliver.portal-{suffix}")
    return raw_s, bus_s


def delete_queue(broker: str, name: str) -> None:
    from kombu import Connection

    with Connection(broker) as connection:
        connection.channel().queue_delete(name)


def reachable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def rates(label: str, dossiers: int, seconds: float) -> str:
    calls = dossiers * (1 + STEPS)
    return (
        f"{label:<32}: {dossiers / seconds:6,.0f} dossiers/s {dossiers * STEPS / seconds:7,.0f} "
        f"steps/s {calls / seconds:7,.0f} calls/s in {seconds:7.1f} s"
    )


def report(
    mode: str,
    label: str,
    dossiers: int,
    bus_s: float,
    raw_s: float,
    concurrency: int,
    variant: str = "",
) -> None:
    ratio = raw_s / bus_s  # same calls: the ratio of rates is the inverse ratio of times
    year = bus_s * 156_815 / dossiers / 60
    print(
        f"{rates(label, dossiers, bus_s)}; ratio to raw {ratio:.2f} (target >= 0.50); "
        f"the year: {year:.1f} min (target < {YEAR_MINUTES_TARGET})"
    )
    calls = dossiers * (1 + STEPS)
    print(
        shlex.join(
            [
                "RESULT",
                f"name=onestop.{mode}{variant}",
                f"label={label}: {dossiers:,} dossiers + {dossiers * STEPS:,} steps to the "
                f"portal, {dossiers / bus_s:,.0f} dossiers/s, {dossiers * STEPS / bus_s:,.0f} "
                f"steps/s, {year:.1f} min for the year",
                f"figure={calls / bus_s:.1f}",
                "unit=calls/s",
                f"baseline={calls / raw_s:.1f}",
                f"baseline_of=raw loop, same calls and HTTP client, {threads(concurrency)}",
                f"ratio={ratio:.3f}",
                "ratio_of=bus / raw loop, higher is better, target >= 0.50",
            ]
        )
    )


def threads(concurrency: int) -> str:
    return "one thread" if concurrency == 1 else f"{concurrency} threads"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dossiers", type=int, default=156_815)
    parser.add_argument("--rounds", type=int, default=10, help="slices of the year, alternating")
    parser.add_argument("--quick", action="store_true", help="1,000 dossiers, embedded only")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=1,
        help="portal calls in flight at once: the bus's send lanes, the raw loop's threads",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="bus worker processes (docs/deploy.md: one per core); 1: the bus in this process",
    )
    parser.add_argument(
        "--portal-latency-ms",
        type=float,
        default=0.0,
        help="the portal sandbox waits this long per call, as a portal across the country does",
    )
    parser.add_argument("--skip-production", action="store_true")
    parser.add_argument("--skip-embedded", action="store_true")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # clean up as on Ctrl-C
    dossiers, rounds = (1000, 2) if args.quick else (args.dossiers, args.rounds)
    print(
        f"{dossiers:,} dossiers x {STEPS} steps = {dossiers * (1 + STEPS):,} portal calls, "
        f"{rounds} alternating rounds, {args.workers} worker(s) x concurrency "
        f"{args.concurrency}, "
        f"portal latency {args.portal_latency_ms:g} ms, "
        f"python {sys.version.split()[0]}, {os.cpu_count()} cores"
    )
    in_flight = args.concurrency * args.workers
    raw_label = f"raw loop, {threads(in_flight)}"
    variant = f".workers-{args.workers}" if args.workers > 1 else ""
    variant += f".concurrency-{args.concurrency}" if args.concurrency > 1 else ""
    variant += f".latency-{args.portal_latency_ms:g}ms" if args.portal_latency_ms else ""
    if not args.skip_embedded:
        raw_s, bus_s = measure(
            dossiers,
            rounds,
            "sqlite:///var/bench.db",
            "embedded",
            args.concurrency,
            args.portal_latency_ms,
            args.workers,
        )
        print(rates(raw_label, dossiers, raw_s))
        report(
            "embedded",
            "bus, embedded default (SQLite)",
            dossiers,
            bus_s,
            raw_s,
            in_flight,
            variant,
        )

    if args.quick or args.skip_production:
        print("production mode skipped (--quick or --skip-production)")
        return
    if not (reachable(5432) and reachable(5672)):
        print("production mode skipped: needs PostgreSQL on :5432 and RabbitMQ on :5672")
        return
    import sqlalchemy as sa

    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
        if conn.execute(sa.text("SHOW autovacuum")).scalar_one() != "on":
            print(
                "note: this PostgreSQL runs with autovacuum off (a CI setting); every delivery "
                "leaves old row versions that nothing then removes, and the bus slows as they "
                "pile up. Production servers keep it on (docs/deploy.md, 'PostgreSQL')."
            )
    try:
        store = f"{PG_URL}?options=-csearch_path%3D{schema}"
        raw_s, bus_s = measure(
            dossiers,
            rounds,
            store,
            AMQP_URL,
            args.concurrency,
            args.portal_latency_ms,
            args.workers,
        )
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    print(rates(raw_label, dossiers, raw_s))
    report(
        "production",
        "bus, RabbitMQ + PostgreSQL",
        dossiers,
        bus_s,
        raw_s,
        in_flight,
        variant,
    )


if __name__ == "__main__":
    main()
