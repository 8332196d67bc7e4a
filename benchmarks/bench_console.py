"""Benchmark: the web console's pages over a store of 100,000 messages and 10,000 dead letters.

Fills an SQLite store through the bus's own write path (``Store.accept`` and
``Store.finish``): 100,000 messages, one in ten an edXML document's (so the
documents page has 10,000 to list), each with a delivery, 90,000 delivered and
10,000 dead-lettered, and a sync dry run with a plan of 5,000 changes. Then it
serves the console with waitress on loopback and times each page over HTTP as
a logged-in operator (median of N requests), beside a raw baseline: the page's
main query or queries through SQLAlchemy alone, on the same store, in the same run.

Run: .venv/bin/python benchmarks/bench_console.py [--messages 100000] [--dead 10000] [--repeat 15]
Target: every page under 200 ms.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import re
import shlex
import statistics
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import and_, func, insert, select
from sqlalchemy.engine import Engine

from lienthong import config as config_module
from lienthong.console.auth import add_local_account
from lienthong.console.server import ConsoleServer
from lienthong.message import Message
from lienthong.store import (
    Delivery,
    Intake,
    Outcome,
    Outgoing,
    Store,
    audit,
    dead_letters,
    deliveries,
    make_engine,
    messages,
)
from lienthong.sync import sync_items, sync_runs

ROOT = Path(__file__).resolve().parent.parent
BODY = (ROOT / "mappings/onestop/application-to-receipt.cases/basic/input.xml").read_bytes()
BATCH = 2000
TARGET_MS = 200.0


def fill(store: Store, total: int, dead_every: int) -> None:
    """Messages through accept and finish, as the bus writes them."""
    for start in range(0, total, BATCH):
        intakes = []
        for n in range(start, min(start + BATCH, total)):
            headers = {"filename": f"app{n}.xml"}
            correlation = None
            if n % 10 == 0:
                correlation = f"edxml-{n:032x}"
                headers["edxml_document_id"] = f"000.00.15.H41,2026/12/01,{n}/SYT"
                headers["edxml_kind"] = "document"
            message = Message(
                body=BODY, kind="onestop.application", source="inbox", headers=headers
            )
            if correlation:
                message.correlation_id = correlation
            out = Outgoing(f"{message.id}-d", "receipts", "outbox", BODY, {})
            intakes.append(Intake(message, outgoing=[out]))
        claimed = store.accept(intakes, claim=("bench", timedelta(minutes=5)))
        outcomes = []
        for index, (intake, _new) in enumerate(claimed):
            m, out = intake.message, intake.outgoing[0]
            delivery = Delivery(
                out.key,
                m.id,
                m.correlation_id,
                m.kind,
                m.source,
                out.route,
                out.endpoint,
                {},
                out.body,
                0,
            )
            n = start + index
            if n % dead_every == dead_every - 1:
                reason = f"endpoint 'outbox': receipt-app{n}.xml already exists with other content"
                outcomes.append(Outcome(delivery, "rejected", reason))
            else:
                outcomes.append(Outcome(delivery, "ok"))
        store.finish(outcomes, "bench")


def plan_run(engine: Engine, changes: int) -> int:
    """A stored dry run whose plan has ``changes`` items, as lienthong.sync records one."""
    with engine.begin() as conn:
        run_id = conn.execute(
            insert(sync_runs).values(
                job="staff-sync",
                source="staff",
                target="directory",
                entity="account",
                dry_run=True,
                forced=False,
                outcome="ok",
                started_at=func.now(),
                finished_at=func.now(),
                counts=json.dumps({"create": changes // 2, "update": changes // 2}),
                message="dry run: nothing was changed in 'directory'",
            )
        ).inserted_primary_key[0]
        conn.execute(
            insert(sync_items),
            [
                {
                    "run_id": run_id,
                    "seq": i + 1,
                    "key": f"u{i:05}",
                    "action": "create" if i % 2 else "update",
                    "status": "planned",
                    "detail": json.dumps(
                        {
                            "fields": {"title": "Chuyên viên"},
                            "before": None if i % 2 else {"title": "Văn thư"},
                            "reason": None,
                        }
                    ),
                }
                for i in range(changes)
            ],
        )
    return int(run_id)


def median_ms(call: Callable[[], Any], repeat: int) -> float:
    call()  # warm: compiled templates, caches, connections
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--dead", type=int, default=10_000)
    parser.add_argument("--plan", type=int, default=5_000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    dead_every = max(1, args.messages // args.dead)

    with tempfile.TemporaryDirectory(prefix="bench-console-") as folder:
        root = Path(folder)
        (root / "in").mkdir()
        (root / "out").mkdir()
        add_local_account(root / "users", "bench", "operator", "bench-password")
        (root / "lienthong.yaml").write_text(
            yaml.safe_dump(
                {
                    "bus": {
                        "store": "sqlite:///bus.db",
                        "var_dir": "var",
                        "mappings": str(ROOT / "mappings"),
                    },
                    "endpoints": {
                        "inbox": {"adapter": "folder", "path": "in"},
                        "outbox": {"adapter": "folder", "path": "out", "direction": "out"},
                    },
                    "routes": [
                        {
                            "name": "receipts",
                            "from": "inbox",
                            "to": [
                                {
                                    "endpoint": "outbox",
                                    "mapping": "onestop/application-to-receipt.xsl",
                                }
                            ],
                        }
                    ],
                    "console": {"users_file": "users"},
                }
            )
        )
        cfg = config_module.load(root / "lienthong.yaml")
        store = Store(make_engine(cfg.bus.store.reveal()))
        store.upgrade()
        start = time.perf_counter()
        fill(store, args.messages, dead_every)
        run_id = plan_run(store.engine, args.plan)
        counts = store.counts()
        print(
            f"store: {counts['messages']:,} messages, {counts['dead_letters_waiting']:,} dead "
            f"letters waiting, a plan of {args.plan:,} changes "
            f"(filled in {time.perf_counter() - start:.0f} s)"
        )
        engine = store.engine
        with engine.connect() as conn:
            dead_id = conn.execute(select(func.max(dead_letters.c.id))).scalar_one()
            message_id = conn.execute(
                select(dead_letters.c.message_id).where(dead_letters.c.id == dead_id)
            ).scalar_one()
        document = "edxml-" + f"{10:032x}"

        server = ConsoleServer(cfg, listen="127.0.0.1", port=0).start()
        try:
            opener = urllib.request.build_opener(
                urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
            )
            login = opener.open(server.url + "login").read().decode()
            token = re.search(r'name="csrf" value="([^"]+)"', login).group(1)
            opener.open(
                server.url + "login",
                data=urllib.parse.urlencode(
                    {"username": "bench", "password": "bench-password", "csrf": token}
                ).encode(),
            )

            def page(path: str) -> Callable[[], Any]:
                def get() -> None:
                    with opener.open(server.url + path.lstrip("/")) as answer:
                        assert answer.status == 200, path
                        answer.read()

                return get

            def query(*statements: Any) -> Callable[[], Any]:
                def run() -> None:
                    with engine.connect() as conn:
                        for statement in statements:
                            conn.execute(statement).all()

                return run

            waiting = dead_letters.c.replayed_at.is_(None)
            dead_page = (
                select(dead_letters, messages.c.kind, messages.c.source)
                .join(messages, messages.c.id == dead_letters.c.message_id)
                .where(waiting)
                .order_by(dead_letters.c.id.desc())
                .limit(51)
            )
            pages = [
                (
                    "overview",
                    "/",
                    query(
                        select(func.count()).select_from(messages),
                        select(deliveries.c.state, func.count()).group_by(deliveries.c.state),
                        select(deliveries.c.endpoint, func.count())
                        .where(deliveries.c.state == "pending")
                        .group_by(deliveries.c.endpoint),
                        select(dead_letters.c.endpoint, func.count())
                        .where(waiting)
                        .group_by(dead_letters.c.endpoint),
                    ),
                ),
                (
                    "dead_letters",
                    "/dead-letters",
                    query(dead_page, select(func.count()).where(waiting)),
                ),
                (
                    "dead_letters_filtered",
                    "/dead-letters?reason=app99&stage=deliver",
                    query(
                        dead_page.where(dead_letters.c.reason.contains("app99")),
                        select(func.count()).where(
                            waiting, dead_letters.c.reason.contains("app99")
                        ),
                    ),
                ),
                (
                    "dead_letter",
                    f"/dead-letters/{dead_id}",
                    query(
                        select(dead_letters, messages.c.body)
                        .join(messages, messages.c.id == dead_letters.c.message_id)
                        .where(dead_letters.c.id == dead_id)
                    ),
                ),
                (
                    "trace",
                    f"/trace/{message_id}",
                    query(
                        select(messages).where(messages.c.id == message_id),
                        select(audit).where(audit.c.message_id == message_id),
                        select(deliveries).where(deliveries.c.message_id == message_id),
                    ),
                ),
                (
                    "documents",
                    "/documents",
                    query(
                        select(messages.c.correlation_id, func.max(messages.c.accepted_at))
                        .where(
                            and_(
                                messages.c.correlation_id >= "edxml-",
                                messages.c.correlation_id < "edxml.",
                            )
                        )
                        .group_by(messages.c.correlation_id)
                        .order_by(func.max(messages.c.accepted_at).desc())
                        .limit(30)
                    ),
                ),
                (
                    "document",
                    f"/documents?id={document}",
                    query(select(messages).where(messages.c.correlation_id == document)),
                ),
                (
                    "syncs",
                    "/syncs",
                    query(select(sync_runs).order_by(sync_runs.c.id.desc()).limit(30)),
                ),
                (
                    "sync_plan",
                    f"/syncs/runs/{run_id}",
                    query(
                        select(sync_items)
                        .where(sync_items.c.run_id == run_id)
                        .order_by(sync_items.c.seq)
                        .limit(200)
                    ),
                ),
            ]
            print(
                f"median of {args.repeat} requests over HTTP (waitress, loopback), "
                "and of the same queries through SQLAlchemy alone:"
            )
            results = []
            for name, path, baseline in pages:
                figure = median_ms(page(path), args.repeat)
                raw = median_ms(baseline, args.repeat)
                results.append((name, path, figure, raw))
                mark = "" if figure < TARGET_MS else f"  OVER {TARGET_MS:.0f} ms"
                print(
                    f"  {path:<42} {figure:7.1f} ms   raw query {raw:6.2f} ms   "
                    f"x{figure / raw:5.1f}{mark}"
                )
        finally:
            server.stop()
            engine.dispose()
    size = f"{args.messages:,} messages, {args.dead:,} dead letters"
    for name, path, figure, raw in results:
        print(
            shlex.join(
                [
                    "RESULT",
                    f"name=console.{name}",
                    f"label=console page {path}, {size}",
                    f"figure={figure:.1f}",
                    "unit=ms",
                    f"baseline={raw:.2f}",
                    "baseline_of=the page's queries through SQLAlchemy alone, same store",
                    f"ratio={figure / raw:.2f}",
                    f"ratio_of=page / raw queries, lower is better; target {TARGET_MS:.0f} ms",
                ]
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
