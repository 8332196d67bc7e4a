"""Benchmark: a year of the province's one-stop traffic, through the bus to the national portal.

The SANDBOX one-stop-shop system serves a synthetic year (156,815 dossiers, 5
processing steps each, as the province's figures give) and the SANDBOX portal
takes them, both in a process of their own (the other core). In the same run:

- raw baseline: a bare loop with the same HTTP client (the adapter's, on urllib3)
  and the same concurrency (one thread) makes the same calls: a token and a session, the
  dossier and step pages, and one portal call per dossier (DongBoHoSoMC) and
  per step (CapNhatTienDoHoSoMC), the JSON built in Python;
- the bus: the two one-stop endpoints polled by cursor and page, every item
  through the shipped mappings to the portal endpoint, stored, delivered once,
  on the embedded default (SQLite, no broker) and, when the servers answer, on
  RabbitMQ + PostgreSQL.

Each run gets fresh sandboxes and ends when the portal's own counters say every
dossier and step arrived. Printed: dossiers/s, steps/s, calls/s, the bus's
ratio to the raw loop (target >= 0.5) and the time for the whole year (target
< 15 minutes).

Run: .venv/bin/python benchmarks/bench_onestop.py [--dossiers 156815] [--quick] [--skip-production]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lienthong import config
from lienthong.bus import Bus
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
def sandboxes(dossiers: int) -> Iterator[dict[str, str]]:
    """Fresh SANDBOX one-stop system and portal in a process of their own."""
    process = subprocess.Popen(
        [sys.executable, "-m", "lienthong.plugins.rest_json.sandbox"]
        + ["--year", str(dossiers), "--steps", str(STEPS), "--lean"],
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


def portal_counts(http: Http, portal: str) -> tuple[int, int]:
    stats = json.loads(http.request("GET", f"{portal}/_sandbox/stats").body)
    return stats["dossiers"], stats["steps"]


# --- the raw loop ------------------------------------------------------------------


def compact(iso: str | None) -> str:
    """2026-03-02T08:15:00+07:00 -> 20260302081500 (the sandbox writes Vietnam's time)."""
    return "" if not iso else iso[:19].replace("-", "").replace("T", "").replace(":", "")


def raw_loop(urls: dict[str, str]) -> float:
    """The same calls as the bus, from one thread with no bus: seconds taken."""
    http = Http()
    json_headers = {"Content-Type": "application/json; charset=utf-8", "Accept": "application/json"}
    start = time.perf_counter()
    basic = base64.b64encode(b"lienthong-motcua:sandbox-secret").decode()
    token = json.loads(
        http.request(
            "POST",
            f"{urls['onestop']}/oauth2/token",
            body=b"grant_type=client_credentials",
            headers={
                "Authorization": f"Basic {basic}",
                "Content-Type": "application/x-www-form-urlencoded",
            },
        ).body
    )["access_token"]
    bearer = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    session = json.loads(
        http.request(
            "POST",
            f"{urls['portal']}/api/auth",
            body=json.dumps({"username": "lienthong", "password": "sandbox-password"}).encode(),
            headers=json_headers,
        ).body
    )["session"]

    def call(body: dict[str, Any]) -> None:
        body = {"session": session, "madonvi": MADONVI, **body}
        answer = http.request(
            "POST",
            f"{urls['portal']}/api/integration",
            body=json.dumps(body, ensure_ascii=False).encode(),
            headers=json_headers,
        )
        code = json.loads(answer.body)["error_code"]
        if code != "00":
            raise RuntimeError(f"the portal answered {code}")

    page = 1
    while True:
        url = f"{urls['onestop']}/api/v1/dossiers?page={page}&per_page={PAGE}"
        items = json.loads(http.request("GET", url, headers=bearer).body)["response"]["items"]
        if not items:
            break
        for d in items:
            call(
                {
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
            )
        page += 1
    cursor = ""
    while True:
        url = f"{urls['onestop']}/api/v1/steps?cursor={cursor}&limit={PAGE}"
        found = json.loads(http.request("GET", url, headers=bearer).body)["response"]
        for s in found["items"]:
            call(
                {
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
            )
        if not found["has_more"]:
            break
        cursor = found["next_cursor"]
    return time.perf_counter() - start


# --- the bus -------------------------------------------------------------------------


def endpoints(urls: dict[str, str], suffix: str) -> dict[str, Any]:
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


def through_bus(urls: dict[str, str], dossiers: int, root: Path, store: str, broker: str) -> float:
    """The bus from its first poll until the portal has the whole year: seconds taken."""
    os.environ["BENCH_ONESTOP_SECRET"] = "sandbox-secret"
    os.environ["BENCH_PORTAL_PASSWORD"] = "sandbox-password"
    suffix = uuid.uuid4().hex[:8]
    cfg = config.from_dict(
        {
            "bus": {
                "store": store,
                "broker": broker,
                "mappings": str(MAPPINGS),
                "var_dir": "var",
                "batch_size": 500,
                "poll_interval": 0.05,
                "retry": {"initial_delay": 0.2, "max_delay": 2},
            },
            "endpoints": endpoints(urls, suffix),
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
        },
        base_dir=root,
    )
    Store(make_engine(cfg.bus.store.reveal())).upgrade()
    bus = Bus(cfg, worker="bench")
    http = Http()
    bus.start()
    try:
        start = time.perf_counter()
        while portal_counts(http, urls["portal"]) != (dossiers, dossiers * STEPS):
            bus.run(once=True)
        return time.perf_counter() - start
    finally:
        bus.close()


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


def report(mode: str, label: str, dossiers: int, bus_s: float, raw_s: float) -> None:
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
                f"name=onestop.{mode}",
                f"label={label}: {dossiers:,} dossiers + {dossiers * STEPS:,} steps to the "
                f"portal, {dossiers / bus_s:,.0f} dossiers/s, {dossiers * STEPS / bus_s:,.0f} "
                f"steps/s, {year:.1f} min for the year",
                f"figure={calls / bus_s:.1f}",
                "unit=calls/s",
                f"baseline={calls / raw_s:.1f}",
                "baseline_of=raw loop, same calls and HTTP client, one thread",
                f"ratio={ratio:.3f}",
                "ratio_of=bus / raw loop, higher is better, target >= 0.50",
            ]
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dossiers", type=int, default=156_815)
    parser.add_argument("--quick", action="store_true", help="1,000 dossiers, embedded only")
    parser.add_argument("--skip-production", action="store_true")
    args = parser.parse_args()
    dossiers = 1000 if args.quick else args.dossiers
    print(
        f"{dossiers:,} dossiers x {STEPS} steps = {dossiers * (1 + STEPS):,} portal calls, "
        f"python {sys.version.split()[0]}, {os.cpu_count()} cores"
    )
    with sandboxes(dossiers) as urls:
        raw_s = raw_loop(urls)
        assert portal_counts(Http(), urls["portal"]) == (dossiers, dossiers * STEPS)
    print(rates("raw loop, one thread", dossiers, raw_s))
    with sandboxes(dossiers) as urls, tempfile.TemporaryDirectory() as tmp:
        embedded = through_bus(urls, dossiers, Path(tmp), "sqlite:///var/bench.db", "embedded")
    report("embedded", "bus, embedded default (SQLite)", dossiers, embedded, raw_s)

    if args.quick or args.skip_production or not (reachable(5432) and reachable(5672)):
        print("production mode skipped: needs PostgreSQL on :5432 and RabbitMQ on :5672")
        return
    import sqlalchemy as sa

    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    try:
        with sandboxes(dossiers) as urls, tempfile.TemporaryDirectory() as tmp:
            production = through_bus(
                urls, dossiers, Path(tmp), f"{PG_URL}?options=-csearch_path%3D{schema}", AMQP_URL
            )
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    report("production", "bus, RabbitMQ + PostgreSQL", dossiers, production, raw_s)


if __name__ == "__main__":
    main()
