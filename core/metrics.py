"""Metrics and health: what the bus did and how it is, for Prometheus and for a load balancer.

The bus tells its :class:`Metrics` what happened as it happens (messages
accepted and parked, deliveries delivered, retried or dead-lettered, the lag
from acceptance to delivery); those are counters in this process, cheap on
the hot path. What the store knows (queue depth, the oldest pending delivery,
dead letters waiting, sync and job runs) is read when Prometheus scrapes, so
every worker reports the same numbers for them.

With ``bus.metrics_port`` set, :class:`MetricsServer` serves, on
``bus.metrics_host`` (127.0.0.1 by default):

- ``/metrics``: the Prometheus text format;
- ``/health``: JSON ``{"status": "ok" | "degraded" | "failing", ...}``; failing
  (HTTP 503) when the store or the broker cannot be reached, degraded when an
  endpoint's circuit is open (or its start failed).

The server cannot be turned against the bus: it serves at most
:data:`MAX_CONNECTIONS` connections at once (more are closed at once, so idle
clients cannot eat the bus's file descriptors), each request has
:data:`REQUEST_TIMEOUT` seconds, and the broker check behind ``/health`` is
made at most every :data:`BROKER_CHECK_SECONDS`, on a connection of its own.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter as Tally
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client import generate_latest as _generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError

from .adapter import Secret
from .breaker import BreakerState, CircuitBreaker
from .errors import ConfigError, LienthongError
from .model import Intake, Outcome, Result
from .store import utcnow
from .store.reads import Reads

log = logging.getLogger(__name__)

#: Accept-to-delivered lag, from a few milliseconds to an hour.
LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)

_OUTCOMES = {Result.OK: "delivered", Result.TRANSIENT: "retried", Result.REJECTED: "dead"}

#: Connections served at once; a scraper and a health check need one or two.
MAX_CONNECTIONS = 8
#: Seconds a client has to send its request (and to read the answer).
REQUEST_TIMEOUT = 5.0
#: Seconds a broker check behind /health is reused, so requests never open a connection each.
BROKER_CHECK_SECONDS = 5.0


class Metrics:
    """This bus's metrics, in a registry of its own (several buses in one process do not clash)."""

    def __init__(
        self,
        store: Reads,  # what it reads at scrape time: the read models, as any worker sees them
        breakers: Mapping[str, CircuitBreaker],
        *,
        broker: Secret | None = None,
    ) -> None:
        self.store = store
        self.breakers = breakers
        self.broker = broker
        self._broker_lock = threading.Lock()
        self._broker_checked: tuple[float, str | None] | None = None  # (monotonic, error)
        self.registry = CollectorRegistry(auto_describe=True)
        self._accepted = Counter(
            "lienthong_messages_accepted",
            "Messages accepted from a source endpoint (stored, routed or parked).",
            ["source"],
            registry=self.registry,
        )
        self._parked = Counter(
            "lienthong_messages_parked",
            "Messages dead-lettered before delivery (invalid, unroutable), by stage.",
            ["source", "stage"],
            registry=self.registry,
        )
        self._deliveries = Counter(
            "lienthong_deliveries",
            "Delivery attempts by outcome: delivered, retried (transient error) or dead.",
            ["endpoint", "route", "outcome"],
            registry=self.registry,
        )
        self._lag = Histogram(
            "lienthong_delivery_seconds",
            "Seconds from acceptance to delivery (from the claim when this process "
            "did not accept the message).",
            ["endpoint"],
            buckets=LAG_BUCKETS,
            registry=self.registry,
        )
        # Labelled children cached: .labels() takes a lock and builds a key each call.
        self._delivery_children: dict[tuple[str, str, str], Any] = {}
        self._lag_children: dict[str, Any] = {}
        self.registry.register(_StoreCollector(self))

    # --- what the bus reports as it works ---

    def accepted(self, stored: Sequence[tuple[Intake, bool]]) -> None:
        """Count a batch the store just accepted (duplicates from the source are not counted)."""
        sources: Tally[str] = Tally()
        parked: Tally[tuple[str, str]] = Tally()
        for intake, new in stored:
            if new:
                source = intake.message.source
                sources[source] += 1
                if intake.parked:
                    parked[(source, intake.stage)] += 1
        for source, n in sources.items():
            self._accepted.labels(source).inc(n)
        for (source, stage), n in parked.items():
            self._parked.labels(source, stage).inc(n)

    def finished(
        self, outcomes: Sequence[Outcome], claimed_at: float, accepted_at: dict[str, float]
    ) -> None:
        """Count a batch of outcomes; ``accepted_at`` (key → monotonic time) loses the done ones."""
        now = time.monotonic()
        for o in outcomes:
            outcome = _OUTCOMES.get(o.result)
            if outcome is None:  # deferred: not an attempt
                continue
            d = o.delivery
            key = (d.endpoint, d.route, outcome)
            child = self._delivery_children.get(key)
            if child is None:
                child = self._delivery_children[key] = self._deliveries.labels(*key)
            child.inc()
            if outcome == "retried":
                continue
            since = accepted_at.pop(d.key, claimed_at)
            if outcome == "delivered":
                lag = self._lag_children.get(d.endpoint)
                if lag is None:
                    lag = self._lag_children[d.endpoint] = self._lag.labels(d.endpoint)
                lag.observe(now - since)

    # --- what is read on request ---

    def open_circuits(self) -> list[str]:
        return sorted(n for n, b in self.breakers.items() if b.state is not BreakerState.CLOSED)

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric."""
        return _generate_latest(self.registry)

    def health(self) -> dict[str, Any]:
        """Whether this bus can work: store, broker, circuits, backlog."""
        report: dict[str, Any] = {"status": "ok", "store": True}
        try:
            with self.store.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            overview = self.store.pending_overview()
            report["dead_letters_waiting"] = self.store.dead_letters_waiting()
        except (SQLAlchemyError, LienthongError) as exc:
            report.update(status="failing", store=False, store_error=str(exc).splitlines()[0])
            overview = {}
        oldest = [v["oldest"] for v in overview.values() if v["oldest"] is not None]
        report["pending"] = sum(v["pending"] for v in overview.values())
        report["oldest_pending_seconds"] = _age(min(oldest)) if oldest else None
        if self.broker is not None:
            error = self._broker_error()
            report["broker"] = error is None
            if error:
                report.update(status="failing", broker_error=error)
        report["open_circuits"] = self.open_circuits()
        report["circuits"] = {n: self.breakers[n].describe() for n in report["open_circuits"]}
        if report["open_circuits"] and report["status"] == "ok":
            report["status"] = "degraded"
        return report

    def _broker_error(self) -> str | None:
        """The broker check, made at most every BROKER_CHECK_SECONDS whoever asks."""
        assert self.broker is not None
        with self._broker_lock:
            checked = self._broker_checked
            if checked is None or time.monotonic() - checked[0] >= BROKER_CHECK_SECONDS:
                checked = self._broker_checked = (time.monotonic(), broker_error(self.broker))
            return checked[1]


def _age(moment: datetime) -> float:
    return round(max(0.0, (utcnow() - moment).total_seconds()), 3)


def broker_error(broker: Secret, timeout: float = 2.0) -> str | None:
    """Why RabbitMQ cannot be reached now, or None; a connection of its own (thread-safe)."""
    from kombu import Connection

    conn = Connection(broker.reveal(), connect_timeout=timeout)
    try:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0)
    except Exception as exc:  # any failure to connect means: not reachable
        # as_uri() leaves the password out.
        return f"RabbitMQ at {conn.as_uri()} is not reachable: {exc}"
    finally:
        conn.release()
    return None


class _StoreCollector(Collector):
    """Metrics read from the store at scrape time, the same from every worker."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def describe(self) -> list[Metric]:
        return []  # the families depend on the store; described when collected

    def collect(self) -> Iterator[Metric]:
        circuit = GaugeMetricFamily(
            "lienthong_circuit_open",
            "1 while this process's circuit breaker for the endpoint is open or half-open.",
            labels=["endpoint"],
        )
        open_now = set(self.metrics.open_circuits())
        for endpoint in sorted(self.metrics.breakers):
            circuit.add_metric([endpoint], 1.0 if endpoint in open_now else 0.0)
        yield circuit
        up = GaugeMetricFamily("lienthong_store_up", "1 when the store answered this scrape.")
        try:
            families = list(self._from_store())
        except (SQLAlchemyError, LienthongError) as exc:
            log.warning("metrics: the store did not answer: %s", str(exc).splitlines()[0])
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        yield up
        yield from families

    def _from_store(self) -> Iterator[Metric]:
        from .scheduler import job_runs
        from .sync import sync_runs

        store = self.metrics.store
        overview = store.pending_overview()
        depth = GaugeMetricFamily(
            "lienthong_queue_depth",
            "Deliveries pending (due or waiting to retry).",
            labels=["endpoint"],
        )
        retrying = GaugeMetricFamily(
            "lienthong_deliveries_retrying",
            "Pending deliveries that have failed at least once.",
            labels=["endpoint"],
        )
        oldest = GaugeMetricFamily(
            "lienthong_oldest_pending_seconds",
            "Age of the oldest pending delivery: how far the endpoint lags.",
            labels=["endpoint"],
        )
        for endpoint in sorted(set(overview) | set(self.metrics.breakers)):
            row = overview.get(endpoint, {"pending": 0, "retrying": 0, "oldest": None})
            depth.add_metric([endpoint], row["pending"])
            retrying.add_metric([endpoint], row["retrying"])
            oldest.add_metric([endpoint], _age(row["oldest"]) if row["oldest"] else 0.0)
        yield from (depth, retrying, oldest)
        waiting = GaugeMetricFamily(
            "lienthong_dead_letters_waiting", "Dead letters neither replayed nor purged."
        )
        waiting.add_metric([], store.dead_letters_waiting())
        yield waiting
        syncs = CounterMetricFamily(
            "lienthong_sync_runs",
            "Finished sync runs by job and outcome (ok, failed, refused, interrupted, error), "
            "as stored; 'db cleanup' lowers it.",
            labels=["job", "outcome"],
        )
        jobs = CounterMetricFamily(
            "lienthong_job_runs",
            "Finished scheduled job runs (polls and syncs) by job and outcome, as stored.",
            labels=["job", "outcome"],
        )
        with store.engine.connect() as conn:
            for family, table in ((syncs, sync_runs), (jobs, job_runs)):
                rows = conn.execute(
                    select(table.c.job, table.c.outcome, func.count())
                    .where(table.c.outcome != "running")
                    .group_by(table.c.job, table.c.outcome)
                    .order_by(table.c.job, table.c.outcome)
                )
                for job, outcome, count in rows:
                    family.add_metric([job, outcome], count)
        yield from (syncs, jobs)


class _BoundedServer(ThreadingHTTPServer):
    """A threading HTTP server that serves at most ``MAX_CONNECTIONS`` at once."""

    daemon_threads = True
    # A queue long enough that a burst of connections is accepted (and the ones over
    # the limit closed) at once, rather than left to the clients' slow SYN retries.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            # Busy with others: close at once rather than hold a descriptor and a thread.
            log.debug("metrics: %d connections open; refused %s", MAX_CONNECTIONS, client_address)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


class MetricsServer:
    """``/metrics`` and ``/health`` over HTTP, in a few threads beside the bus."""

    def __init__(self, metrics: Metrics, host: str = "127.0.0.1", port: int = 0) -> None:
        self.metrics = metrics
        handler = type("Handler", (_Handler,), {"metrics": metrics})
        try:
            self.server = _BoundedServer((host, port), handler)
        except OSError as exc:
            raise ConfigError(
                [
                    f"bus.metrics_port: cannot listen on {host}:{port} ({exc.strerror}). "
                    "Hint: choose a free port, or give each worker on a host its own "
                    "('lienthong run --metrics-port N')"
                ]
            ) from exc
        self._thread = threading.Thread(
            target=self.server.serve_forever, args=(0.1,), name="lienthong-metrics", daemon=True
        )

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        self._thread.start()
        log.info("metrics and health on http://%s:%d/metrics and /health", *self.address)

    def stop(self) -> None:
        if self._thread.is_alive():
            self.server.shutdown()
        self.server.server_close()


class _Handler(BaseHTTPRequestHandler):
    metrics: Metrics
    timeout = REQUEST_TIMEOUT  # on the socket: an idle or slow client is dropped

    def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._reply(200, CONTENT_TYPE_LATEST, self.metrics.exposition())
        elif path == "/health":
            report = self.metrics.health()
            body = json.dumps(report, ensure_ascii=False).encode()
            self._reply(503 if report["status"] == "failing" else 200, "application/json", body)
        else:
            self._reply(404, "text/plain; charset=utf-8", b"not found: try /metrics or /health\n")

    def _reply(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's name)
        log.debug("metrics request: " + format, *args)
