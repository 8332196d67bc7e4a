"""Kill the bus with SIGKILL while 2,000 messages are in flight: each still arrives exactly once.

What a dead worker had claimed does not wait for ``claim_seconds``: it is released
as soon as a live worker notices the death (at once on the same host). Each test
waits for the store to be settled (every message delivered, nothing pending),
not for a number of files, with a deadline.
"""

from __future__ import annotations

import signal
import socket
import time

import pytest
import sqlalchemy as sa

from tests.busproject import BusProject, assert_each_delivered_once
from tests.faults.harness import wait_settled

COUNT = 2000


def crash(project: BusProject, workers: int) -> dict[str, bytes]:
    """Drop COUNT files, start ``workers``, kill them all with SIGKILL mid-run."""
    written = project.drop(COUNT)
    for _ in range(workers):
        project.start_worker()
    in_flight = project.wait_for(100, timeout=120)
    assert 100 <= len(in_flight) < COUNT, "kill while messages are in flight"
    project.kill_all(signal.SIGKILL)
    assert len(project.outputs()) < COUNT
    return written


def assert_settled(project: BusProject, written: dict[str, bytes]) -> None:
    assert_each_delivered_once(project, written, project.outputs())
    status = project.command("status", "--json")
    assert '"delivered": 2000' in status.stdout, status.stdout + status.stderr
    assert '"messages": 2000' in status.stdout, "a re-read file must not make a second message"
    assert '"pending": 0' in status.stdout
    audit = project.command("audit", "verify")
    assert audit.returncode == 0, audit.stdout + audit.stderr  # one chain, even with two workers


@pytest.mark.slow
def test_sigkill_on_the_embedded_default(bus_project: BusProject) -> None:
    # Claims that ran out only after five minutes would make the restart wait for them.
    bus_project.write_config(claim_seconds=300)
    written = crash(bus_project, workers=1)
    started = time.monotonic()
    restart = bus_project.command("run", "--once")
    took = time.monotonic() - started
    assert restart.returncode == 0, restart.stderr
    assert "holder" in restart.stderr and "is dead" in restart.stderr, restart.stderr
    assert took < 60, f"'run --once' took {took:.0f} s: it waited for the dead worker's claims"
    assert_settled(bus_project, written)


@pytest.mark.slow
@pytest.mark.server
def test_sigkill_on_rabbitmq_and_postgresql_with_two_workers(
    bus_project: BusProject, pg_url: str, amqp_url: str, unique: str
) -> None:
    bus_project.write_config(store=pg_url, broker=amqp_url, out=f"out-{unique}")
    upgrade = bus_project.command("db", "upgrade")
    assert upgrade.returncode == 0, upgrade.stderr
    written = crash(bus_project, workers=2)
    for _ in range(2):
        bus_project.start_worker()
    wait_settled(bus_project, pg_url, COUNT, timeout=240)
    bus_project.kill_all(signal.SIGTERM)
    assert_settled(bus_project, written)


@pytest.mark.slow
@pytest.mark.server
def test_a_killed_workers_claims_go_to_the_other_within_seconds(
    bus_project: BusProject, pg_url: str, amqp_url: str, unique: str
) -> None:
    # Five minutes of claim: only noticing the death can release them in time.
    bus_project.write_config(
        store=pg_url, broker=amqp_url, out=f"out-{unique}", claim_seconds=300, requeue_seconds=5
    )
    assert bus_project.command("db", "upgrade").returncode == 0
    written = bus_project.drop(COUNT)
    victim, survivor = bus_project.start_worker(), bus_project.start_worker()
    victim_name = f"{socket.gethostname()}:{victim.pid}"
    engine = sa.create_engine(pg_url)
    try:
        held: list[str] = []
        deadline = time.monotonic() + 120
        while not held:
            assert time.monotonic() < deadline, "the victim never held a claim"
            victim.send_signal(signal.SIGSTOP)  # hold still while we look
            with engine.connect() as conn:
                held = list(
                    conn.execute(
                        sa.text(
                            "SELECT id FROM deliveries WHERE state = 'pending' "
                            "AND claimed_by = :w AND claimed_until > now() AT TIME ZONE 'utc'"
                        ),
                        {"w": victim_name},
                    ).scalars()
                )
            if not held:
                victim.send_signal(signal.SIGCONT)
                time.sleep(0.05)
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        killed = time.monotonic()
        deadline = killed + 30
        while True:
            with engine.connect() as conn:
                waiting = conn.execute(
                    sa.text(
                        "SELECT count(*) FROM deliveries WHERE id = ANY(:ids) "
                        "AND state <> 'delivered'"
                    ),
                    {"ids": held},
                ).scalar_one()
            if not waiting:
                break
            assert time.monotonic() < deadline, f"{waiting} of the dead worker's claims still wait"
            time.sleep(0.2)
        took = time.monotonic() - killed
        with engine.connect() as conn:
            workers = set(
                conn.execute(
                    sa.text("SELECT worker FROM attempts WHERE delivery_id = ANY(:ids)"),
                    {"ids": held},
                ).scalars()
            )
        assert workers == {f"{socket.gethostname()}:{survivor.pid}"}
        assert took < 20, f"the dead worker's {len(held)} claims took {took:.0f} s"
        wait_settled(bus_project, pg_url, COUNT, timeout=240)
    finally:
        engine.dispose()
        bus_project.kill_all(signal.SIGTERM)
    assert "is dead" in bus_project.logs()
    assert_settled(bus_project, written)
