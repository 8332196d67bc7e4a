"""Throughput of the bus: a 5 KB document through an XSLT mapping between in-memory endpoints.

Prints messages per second on the embedded default (SQLite, no broker) and, when
the servers answer, on RabbitMQ + PostgreSQL, each beside raw baselines measured
in the same run on the same data:

- lxml alone: hardened parse + the same XSLT + serialize, in a loop;
- kombu alone: publish + consume of the same number of messages on RabbitMQ.

In production mode it also scales out: the same messages through 1, 2 and 4
worker processes (each fed its share, all competing for one set of queues and
one store), timed from the store's first acceptance to its last delivery; and
the accept-to-delivery latency (p50, p99, from the store's timestamps) with 2
workers fed 200 messages a second between them, beside raw kombu's
publish-to-consume latency at the same rate.

Usage: python benchmarks/bench_bus.py [--messages N] [--rounds R] [--skip-production]
       [--workers 1,2,4] [--latency-seconds S] [--rate R]
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from lxml import etree

from lienthong import config, xml
from lienthong.bus import Bus
from lienthong.message import Message
from lienthong.plugins import memory

HERE = Path(__file__).resolve().parent
MAPPING = HERE / "mappings/voucher-summary.xsl"
PG_URL = os.environ.get("LIENTHONG_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
AMQP_URL = os.environ.get("LIENTHONG_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672//")


def document(n: int) -> bytes:
    """A voucher batch of about 5 KB, different per message."""
    vouchers = "".join(
        f"<voucher><number>PT-{n:06d}-{i:02d}</number><date>2026/11/{1 + i % 28:02d}</date>"
        f"<debit>{1111 + i % 5}</debit><credit>3311</credit><amount>{1000 * (i + n % 97)}"
        f"</amount><description>Chi tạm ứng công tác phí đợt {i}</description></voucher>"
        for i in range(24)
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><batch agency="000.00.{n % 84:02d}.H41">'
        f"{vouchers}</batch>".encode()
    )


def raw_lxml(bodies: list[bytes]) -> float:
    transform = etree.XSLT(etree.parse(str(MAPPING)))
    start = time.perf_counter()
    for body in bodies:
        etree.tostring(transform(xml.parse(body)), encoding="UTF-8", xml_declaration=True)
    return len(bodies) / (time.perf_counter() - start)


def raw_kombu(count: int) -> float:
    from kombu import Connection, Consumer, Exchange, Producer, Queue

    queue = Queue(
        f"bench.raw.{uuid.uuid4().hex[:8]}",
        Exchange("bench.raw", type="direct"),
        routing_key="raw",
        durable=True,
        auto_delete=False,
    )
    received = 0
    with Connection(AMQP_URL, transport_options={"confirm_publish": True}) as conn:
        channel = conn.channel()
        queue(channel).declare()
        start = time.perf_counter()
        producer = Producer(channel, exchange=queue.exchange)
        for n in range(count):
            producer.publish(f"{n:032d}", routing_key="raw", serializer="json", delivery_mode=2)

        def on_message(body, message):  # noqa: ANN001
            nonlocal received
            received += 1
            message.ack()

        with Consumer(
            conn.channel(),
            queues=[queue],
            callbacks=[on_message],
            accept=["json"],
            prefetch_count=200,
        ):
            while received < count:
                conn.drain_events(timeout=10)
        rate = count / (time.perf_counter() - start)
        queue(channel).delete()
    return rate


def bench_config(store: str, broker: str, out: str) -> dict[str, Any]:
    return {
        "bus": {
            "store": store,
            "broker": broker,
            "mappings": str(HERE / "mappings"),
            "var_dir": "var",
            "batch_size": 500,
            "poll_interval": 0.05,
        },
        "endpoints": {"in": {"adapter": "memory", "batch": 500}, out: {"adapter": "memory"}},
        "routes": [
            {"name": "summaries", "to": [{"endpoint": out, "mapping": "voucher-summary.xsl"}]}
        ],
    }


def through_bus(bodies: list[bytes], root: Path, store: str, broker: str) -> float:
    memory.reset()
    out = f"out-{uuid.uuid4().hex[:8]}"
    cfg = config.from_dict(bench_config(store, broker, out), base_dir=root)
    from lienthong.store import Store, make_engine

    Store(make_engine(cfg.bus.store.reveal())).upgrade()
    bus = Bus(cfg, worker="bench")
    bus.start()
    memory.feed("in", [Message(body=b) for b in bodies])
    start = time.perf_counter()
    while len(memory.delivered(out)) < len(bodies):
        bus.run(once=True)  # the worker loop, as 'lienthong run --once' drives it
    rate = len(bodies) / (time.perf_counter() - start)
    bus.close()
    return rate


# --- scale-out: worker processes on one store and one set of queues ---


def worker(args: argparse.Namespace) -> None:
    """One worker process: feeds its share to its memory source, then runs the bus until SIGTERM.

    With ``--feed-rate`` it feeds that many messages a second (a paced producer) instead
    of its whole share at once. Waits for ``--go`` (a file) before feeding, so all
    workers start together.
    """
    import yaml

    root = Path(args.root)
    cfg = config.from_dict(yaml.safe_load(Path(args.worker).read_text()), base_dir=root)
    bus = Bus(cfg)
    bus.start()
    print("ready", flush=True)
    while not Path(args.go).exists():
        time.sleep(0.01)
    bodies = [document(n) for n in range(args.first, args.first + args.count)]
    if args.feed_rate:

        def paced() -> None:
            started = time.monotonic()
            for n, body in enumerate(bodies):
                time.sleep(max(0.0, started + n / args.feed_rate - time.monotonic()))
                memory.feed("in", [Message(body=body)])

        threading.Thread(target=paced, daemon=True).start()
    else:
        memory.feed("in", [Message(body=b) for b in bodies])
    try:
        bus.run()
    finally:
        bus.close()


def run_workers(
    count: int, workers: int, root: Path, store: str, *, rate: float = 0.0
) -> tuple[float, float, float]:
    """Deliver ``count`` messages through ``workers`` processes; (msg/s, p50 ms, p99 ms).

    Throughput and latency come from the store: first acceptance to last delivery,
    and each message's delivered_at - accepted_at.
    """
    import sqlalchemy as sa
    import yaml

    from lienthong.store import Store, make_engine

    out = f"out-{uuid.uuid4().hex[:8]}"
    settings = bench_config(store, AMQP_URL, out)
    path = root / f"workers-{workers}.yaml"
    path.write_text(yaml.safe_dump(settings))
    engine = make_engine(store)
    Store(engine).upgrade()
    go = root / f"go-{workers}"
    procs = []
    share = count // workers
    try:
        for n in range(workers):
            first = n * share
            mine = share if n < workers - 1 else count - first
            command = [sys.executable, __file__, "--worker", str(path), "--root", str(root)]
            command += ["--go", str(go), "--first", str(first), "--count", str(mine)]
            command += ["--feed-rate", str(rate / workers)] if rate else []
            proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
            procs.append(proc)
        for proc in procs:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError("a bench worker did not start")
        go.touch()
        deadline = time.monotonic() + max(120.0, 3 * count / max(rate, 1.0))
        while True:
            with engine.connect() as conn:
                done = conn.execute(
                    sa.text("SELECT count(*) FROM deliveries WHERE state = 'delivered'")
                ).scalar_one()
            if done >= count:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{done} of {count} delivered by {workers} workers in time")
            time.sleep(0.2)
        with engine.connect() as conn:
            first, last = conn.execute(
                sa.text(
                    "SELECT min(m.accepted_at), max(d.delivered_at) FROM deliveries d "
                    "JOIN messages m ON m.id = d.message_id"
                )
            ).one()
            lags = [
                (d - a).total_seconds() * 1000
                for a, d in conn.execute(
                    sa.text(
                        "SELECT m.accepted_at, d.delivered_at FROM deliveries d "
                        "JOIN messages m ON m.id = d.message_id"
                    )
                )
            ]
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        engine.dispose()
        _delete_queue(out)
    cuts = statistics.quantiles(lags, n=100)
    return count / (last - first).total_seconds(), cuts[49], cuts[98]


def raw_kombu_latency(rate: float, seconds: float) -> tuple[float, float]:
    """Raw kombu publish-to-consume latency at ``rate`` messages a second; (p50 ms, p99 ms)."""
    from kombu import Connection, Consumer, Exchange, Producer, Queue

    queue = Queue(
        f"bench.lag.{uuid.uuid4().hex[:8]}",
        Exchange("bench.lag", type="direct"),
        routing_key="lag",
        durable=True,
    )
    total = int(rate * seconds)
    lags: list[float] = []

    def publish() -> None:
        with Connection(AMQP_URL, transport_options={"confirm_publish": True}) as conn:
            producer = Producer(conn.channel(), exchange=queue.exchange)
            started = time.monotonic()
            for n in range(total):
                time.sleep(max(0.0, started + n / rate - time.monotonic()))
                producer.publish(
                    {"at": time.monotonic()},
                    routing_key="lag",
                    serializer="json",
                    delivery_mode=2,
                )

    def on_message(body: Any, message: Any) -> None:
        lags.append((time.monotonic() - body["at"]) * 1000)
        message.ack()

    with Connection(AMQP_URL) as conn:
        queue(conn.channel()).declare()
        with Consumer(
            conn.channel(),
            queues=[queue],
            callbacks=[on_message],
            accept=["json"],
            prefetch_count=200,
        ):
            publisher = threading.Thread(target=publish)
            publisher.start()
            while len(lags) < total:
                conn.drain_events(timeout=10)
            publisher.join()
        queue(conn.channel()).delete()
    cuts = statistics.quantiles(lags, n=100)
    return cuts[49], cuts[98]


def _delete_queue(endpoint: str) -> None:
    from kombu import Connection

    from lienthong.relay import queue_for

    with Connection(AMQP_URL, connect_timeout=5) as conn:
        queue_for(endpoint)(conn.channel()).delete()


def result_line(**fields: str) -> str:
    return shlex.join(["RESULT", *(f"{k}={v}" for k, v in fields.items())])


def scale_out(args: argparse.Namespace, kombu_rate: float) -> None:
    """Production throughput with 1, 2, 4 worker processes, and latency at a moderate rate."""
    import sqlalchemy as sa

    counts = [int(w) for w in args.workers.split(",")]
    print(
        f"scale-out: {args.messages} messages through N worker processes "
        f"(RabbitMQ + PostgreSQL, {os.cpu_count()} cores shared with both servers)"
    )
    rates: dict[int, float] = {}
    admin = sa.create_engine(PG_URL)
    for workers in counts:
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        with admin.begin() as conn:
            conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
        try:
            with tempfile.TemporaryDirectory() as tmp:
                store = f"{PG_URL}?options=-csearch_path%3D{schema}"
                rates[workers], _, _ = run_workers(args.messages, workers, Path(tmp), store)
        finally:
            with admin.begin() as conn:
                conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        one = rates[counts[0]]
        print(
            f"  {workers} worker(s): {rates[workers]:9,.0f} msg/s   ratio to raw kombu "
            f"{rates[workers] / kombu_rate:.2f}, to {counts[0]} worker(s) "
            f"{rates[workers] / one:.2f}"
        )
        print(
            result_line(
                name=f"bus.production.workers-{workers}",
                label=f"bus, RabbitMQ + PostgreSQL, {workers} worker process(es)",
                figure=f"{rates[workers]:.1f}",
                unit="msg/s",
                baseline=f"{kombu_rate:.1f}",
                baseline_of="raw kombu publish+consume on RabbitMQ (one process)",
                ratio=f"{rates[workers] / kombu_rate:.3f}",
                ratio_of="bus / raw kombu, higher is better",
            )
        )
    if args.latency_seconds <= 0:
        return
    count = int(args.rate * args.latency_seconds)
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            store = f"{PG_URL}?options=-csearch_path%3D{schema}"
            _, p50, p99 = run_workers(count, 2, Path(tmp), store, rate=args.rate)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()
    raw50, raw99 = raw_kombu_latency(args.rate, args.latency_seconds)
    print(
        f"latency accept->deliver, 2 workers, {args.rate:g} msg/s for {args.latency_seconds:g} s: "
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms (target p99 < 100 ms); raw kombu "
        f"publish->consume at the same rate: p50 {raw50:.1f} ms, p99 {raw99:.1f} ms"
    )
    print(
        result_line(
            name="bus.production.latency-p99",
            label=f"bus accept->deliver p99, 2 workers, {args.rate:g} msg/s (p50 {p50:.1f} ms)",
            figure=f"{p99:.1f}",
            unit="ms",
            baseline=f"{raw99:.1f}",
            baseline_of=f"raw kombu publish->consume p99 at {args.rate:g} msg/s",
            ratio=f"{p99 / raw99:.3f}",
            ratio_of="bus / raw kombu, lower is better, target p99 < 100 ms",
        )
    )


def reachable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3, help="best of this many runs")
    parser.add_argument("--skip-production", action="store_true")
    parser.add_argument("--workers", default="1,2,4", help="worker processes to scale out to")
    parser.add_argument("--latency-seconds", type=float, default=20.0, help="0: no latency run")
    parser.add_argument("--rate", type=float, default=200.0, help="msg/s for the latency run")
    # A worker process of the scale-out (internal).
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--go", help=argparse.SUPPRESS)
    parser.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--feed-rate", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    bodies = [document(n) for n in range(args.messages)]
    size = sum(map(len, bodies)) / len(bodies)
    print(
        f"{args.messages} messages of {size / 1024:.1f} KB, mapping {MAPPING.name}, "
        f"python {sys.version.split()[0]}, {os.cpu_count()} cores"
    )

    # Best of three, alternating, so a noisy neighbour hurts both sides alike.
    lxml_rate = embedded = 0.0
    for _ in range(args.rounds):
        lxml_rate = max(lxml_rate, raw_lxml(bodies))
        with tempfile.TemporaryDirectory() as tmp:
            embedded = max(
                embedded, through_bus(bodies, Path(tmp), "sqlite:///var/bench.db", "embedded")
            )
    print(f"raw lxml parse+transform+serialize : {lxml_rate:9,.0f} msg/s")
    print(
        f"bus, embedded default (SQLite)     : {embedded:9,.0f} msg/s   "
        f"ratio to raw lxml {embedded / lxml_rate:.2f} (target >= 0.50)"
    )
    print(
        shlex.join(
            [
                "RESULT",
                "name=bus.embedded",
                "label=bus, embedded default (SQLite, no broker)",
                f"figure={embedded:.1f}",
                "unit=msg/s",
                f"baseline={lxml_rate:.1f}",
                "baseline_of=raw lxml parse+transform+serialize",
                f"ratio={embedded / lxml_rate:.3f}",
                "ratio_of=bus / raw lxml, higher is better, target >= 0.50",
            ]
        )
    )

    if args.skip_production or not (reachable(5432) and reachable(5672)):
        print("production mode skipped: needs PostgreSQL on :5432 and RabbitMQ on :5672")
        return
    import sqlalchemy as sa

    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    try:
        kombu_rate = raw_kombu(args.messages)
        with tempfile.TemporaryDirectory() as tmp:
            production = through_bus(
                bodies, Path(tmp), f"{PG_URL}?options=-csearch_path%3D{schema}", AMQP_URL
            )
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    print(f"raw kombu publish+consume (RabbitMQ): {kombu_rate:9,.0f} msg/s")
    print(
        f"bus, RabbitMQ + PostgreSQL           : {production:9,.0f} msg/s   "
        f"ratio to raw kombu {production / kombu_rate:.2f}, to raw lxml "
        f"{production / lxml_rate:.2f}"
    )
    print(
        shlex.join(
            [
                "RESULT",
                "name=bus.production",
                "label=bus, RabbitMQ + PostgreSQL",
                f"figure={production:.1f}",
                "unit=msg/s",
                f"baseline={kombu_rate:.1f}",
                "baseline_of=raw kombu publish+consume on RabbitMQ",
                f"ratio={production / kombu_rate:.3f}",
                "ratio_of=bus / raw kombu, higher is better",
            ]
        )
    )
    scale_out(args, kombu_rate)


if __name__ == "__main__":
    main()
