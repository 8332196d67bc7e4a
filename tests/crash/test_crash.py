"""Kill the bus with SIGKILL while 2,000 messages are in flight: each still arrives exactly once."""

from __future__ import annotations

import signal

import pytest

from tests.busproject import BusProject, assert_each_delivered_once

COUNT = 2000


def crash_and_recover(project: BusProject, workers: int) -> None:
    written = project.drop(COUNT)
    for _ in range(workers):
        project.start_worker()
    in_flight = project.wait_for(100, timeout=120)
    assert 100 <= len(in_flight) < COUNT, "kill while messages are in flight"
    project.kill_all(signal.SIGKILL)
    survivors = len(project.outputs())
    for _ in range(workers):
        project.start_worker()
    outputs = project.wait_for(COUNT, timeout=240)
    project.kill_all(signal.SIGTERM)
    assert survivors < COUNT
    assert_each_delivered_once(project, written, outputs)
    status = project.command("status", "--json")
    assert '"delivered": 2000' in status.stdout, status.stdout + status.stderr
    assert '"messages": 2000' in status.stdout, "a re-read file must not make a second message"
    assert '"pending": 0' in status.stdout
    audit = project.command("audit", "verify")
    assert audit.returncode == 0, audit.stdout + audit.stderr  # one chain, even with two workers


@pytest.mark.slow
def test_sigkill_on_the_embedded_default(bus_project: BusProject) -> None:
    bus_project.write_config()
    crash_and_recover(bus_project, workers=1)


@pytest.mark.slow
@pytest.mark.server
def test_sigkill_on_rabbitmq_and_postgresql_with_two_workers(
    bus_project: BusProject, pg_url: str, amqp_url: str, unique: str
) -> None:
    bus_project.write_config(store=pg_url, broker=amqp_url, out=f"out-{unique}")
    upgrade = bus_project.command("db", "upgrade")
    assert upgrade.returncode == 0, upgrade.stderr
    crash_and_recover(bus_project, workers=2)
