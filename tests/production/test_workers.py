"""Production mode: RabbitMQ + PostgreSQL, two worker processes as competing consumers."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.busproject import BusProject, assert_each_delivered_once


@pytest.mark.server
def test_two_workers_carry_folder_to_folder_through_a_mapping(
    bus_project: BusProject, pg_url: str, amqp_url: str, unique: str
) -> None:
    bus_project.write_config(store=pg_url, broker=amqp_url, out=f"out-{unique}")
    refused = bus_project.command("run", "--once")
    assert refused.returncode == 4 and "lienthong db upgrade" in refused.stderr
    assert bus_project.command("db", "upgrade").returncode == 0
    bus_project.start_worker()
    bus_project.start_worker()
    bus_project.wait_for_consumers(amqp_url, f"out-{unique}", 2, timeout=60)
    written = bus_project.drop(300)
    outputs = bus_project.wait_for(300, timeout=120)
    bus_project.kill_all()
    assert_each_delivered_once(bus_project, written, outputs)
    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        workers = conn.execute(sa.text("select count(distinct worker) from attempts")).scalar()
    engine.dispose()
    assert workers == 2, "both workers consumed from the queue"
