"""Workers killed, RabbitMQ restarted, PostgreSQL restarted mid-run: nothing lost or doubled.

Each run uses a PRIVATE server for what it restarts (tests/faults/servers.py),
so the machine's shared servers, used by other tests meanwhile, stay up.
"""

from __future__ import annotations

import random
import signal
import time

import pytest

from tests.faults.harness import (
    FaultProject,
    account,
    folder_in,
    folder_out,
    receipt_route,
    wait_settled,
)
from tests.faults.servers import PrivatePostgres, PrivateRabbit

pytestmark = [pytest.mark.slow, pytest.mark.server]

KILLS = 10
WAVE = 500  # messages dropped before each kill, so each kill finds work in flight


def production(project: FaultProject, store: str, broker: str, out: str = "out") -> None:
    project.write(
        store=store,
        broker=broker,
        endpoints={"in": folder_in(), out: folder_out()},
        routes=[receipt_route(out)],
        # A store outage opens the input folder's circuit (see the xfail test below):
        # a short reset keeps the run short until that is fixed.
        bus={"breaker_reset_seconds": 5},
    )
    upgrade = project.command("db", "upgrade")
    assert upgrade.returncode == 0, upgrade.stderr


def drop_wave(project: FaultProject, written: dict[str, bytes], count: int) -> None:
    project.drop_more(written, count)


def test_two_workers_killed_ten_times_at_random_moments(
    fault_project: FaultProject,
    private_postgres: PrivatePostgres,
    private_rabbit: PrivateRabbit,
    unique: str,
) -> None:
    out = f"out-{unique}"  # the queue on the module's private broker is named after it
    production(fault_project, private_postgres.url, private_rabbit.url, out=out)
    rng = random.Random()
    written: dict[str, bytes] = {}
    workers = [fault_project.start_worker(), fault_project.start_worker()]
    kills = in_flight = 0
    while kills < KILLS:
        drop_wave(fault_project, written, WAVE)
        time.sleep(rng.uniform(0.2, 1.5))
        in_flight += len(fault_project.outputs()) < len(written)
        victim = rng.randrange(len(workers))
        assert workers[victim].poll() is None, fault_project.logs()
        workers[victim].send_signal(signal.SIGKILL)
        workers[victim].wait(timeout=30)
        kills += 1
        workers[victim] = fault_project.start_worker()
    wait_settled(fault_project, private_postgres.url, len(written), timeout=180)
    fault_project.kill_all(signal.SIGTERM)
    result = account(private_postgres.url, written, folder=(out, fault_project.outbox))
    assert result.delivered == len(written) == KILLS * WAVE, result.dead
    assert in_flight >= KILLS // 2, f"only {in_flight} kills found messages in flight"


def test_rabbitmq_restarted_mid_run(
    fault_project: FaultProject, pg_url: str, private_rabbit: PrivateRabbit, unique: str
) -> None:
    out = f"out-{unique}"  # the queue on the module's private broker is named after it
    production(fault_project, pg_url, private_rabbit.url, out=out)
    written: dict[str, bytes] = {}
    drop_wave(fault_project, written, 1500)
    fault_project.start_worker()
    fault_project.start_worker()
    assert len(fault_project.wait_for(100, timeout=60)) < len(written), "restart mid-run"
    private_rabbit.restart(down_seconds=3)
    drop_wave(fault_project, written, 500)
    wait_settled(fault_project, pg_url, len(written), timeout=180)
    fault_project.kill_all(signal.SIGTERM)
    result = account(pg_url, written, folder=(out, fault_project.outbox))
    assert result.delivered == len(written), result.dead
    assert "RabbitMQ" in fault_project.all_logs(), "the workers said the broker went away"


def test_postgresql_restarted_mid_run(
    fault_project: FaultProject, private_postgres: PrivatePostgres, amqp_url: str, unique: str
) -> None:
    out = f"out-{unique}"  # the queue on the shared broker is named after it
    production(fault_project, private_postgres.url, amqp_url, out=out)
    written: dict[str, bytes] = {}
    drop_wave(fault_project, written, 1500)
    fault_project.start_worker()
    fault_project.start_worker()
    assert len(fault_project.wait_for(100, timeout=60)) < len(written), "restart mid-run"
    private_postgres.restart(down_seconds=3, mode="immediate")
    drop_wave(fault_project, written, 500)
    wait_settled(fault_project, private_postgres.url, len(written), timeout=180)
    fault_project.kill_all(signal.SIGTERM)
    result = account(private_postgres.url, written, folder=(out, fault_project.outbox))
    assert result.delivered == len(written), result.dead
    assert "store" in fault_project.all_logs(), "the workers said the store went away"


def test_a_store_outage_does_not_open_the_source_circuit(
    fault_project: FaultProject, private_postgres: PrivatePostgres
) -> None:
    fault_project.write(
        store=private_postgres.url,
        endpoints={"in": folder_in(), "out": folder_out()},
        routes=[receipt_route()],
    )
    assert fault_project.command("db", "upgrade").returncode == 0
    written: dict[str, bytes] = {}
    fault_project.start_worker()
    private_postgres.stop("immediate")
    drop_wave(fault_project, written, 20)
    time.sleep(3)  # the worker polls the folder and fails to store, many times
    private_postgres.start()
    wait_settled(fault_project, private_postgres.url, len(written), timeout=15)
    fault_project.kill_all(signal.SIGTERM)
    account(private_postgres.url, written, folder=("out", fault_project.outbox))
    assert "endpoint in: circuit open" not in fault_project.all_logs()
