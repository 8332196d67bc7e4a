"""Throughput of the bus: a 5 KB document through an XSLT mapping between in-memory endpoints.

Prints messages per second on the embedded default (SQLite, no broker) and, when
the servers answer, on RabbitMQ + PostgreSQL, each beside raw baselines measured
in the same run on the same data:

- lxml alone: hardened parse + the same XSLT + serialize, in a loop;
- kombu alone: publish + consume of the same number of messages on RabbitMQ.

Usage: python benchmarks/bench_bus.py [--messages N] [--rounds R] [--skip-production]
"""

from __future__ import annotations

import argparse
import os
import shlex
import socket
import sys
import tempfile
import time
import uuid
from pathlib import Path

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


def through_bus(bodies: list[bytes], root: Path, store: str, broker: str) -> float:
    memory.reset()
    out = f"out-{uuid.uuid4().hex[:8]}"
    cfg = config.from_dict(
        {
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
        },
        base_dir=root,
    )
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
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
