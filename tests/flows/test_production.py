"""The reference flows in production mode: RabbitMQ, PostgreSQL, two workers, their schedulers.

The sandboxes and the other agencies run in the test process (a Demo without
its own bus); two ``lienthong run`` worker processes are the bus. The nightly
jobs run every second here, so the workers' schedulers (one run per tick
across both, by lease) reconcile the directory while the test watches.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import ldap
import pytest
import sqlalchemy as sa

from lienthong.plugins.demo.flows import SGD, STC, SYT, UBND, Demo
from lienthong.plugins.email_directory.slapd import find_binary
from lienthong.store import Store, make_engine
from tests.flows.flowconfig import write_config

LIENTHONG = str(Path(sys.executable).parent / "lienthong")

pytestmark = [
    pytest.mark.server,
    pytest.mark.skipif(
        not find_binary("slapd"),
        reason="slapd not found: apt-get install slapd ldap-utils (.ci/run installs it)",
    ),
]


def wait_for(what: str, check: Callable[[], bool], logs: Callable[[], str], timeout: float = 45):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}\n{logs()}")


def test_the_flows_with_two_workers_on_rabbitmq_and_postgresql(
    tmp_path: Path, pg_url: str, amqp_url: str, unique: str
) -> None:
    config = write_config(tmp_path, store=pg_url, broker=amqp_url, suffix=unique, interval=1)
    upgrade = subprocess.run(
        [LIENTHONG, "--config", str(config), "db", "upgrade"], capture_output=True, text=True
    )
    assert upgrade.returncode == 0, upgrade.stderr
    workers: list[subprocess.Popen[bytes]] = []

    def logs() -> str:
        return "\n".join(
            p.read_text(errors="replace")[-4000:] for p in sorted(tmp_path.glob("worker-*.log"))
        )

    with Demo(config, echo=lambda _: None, start_bus=False) as world:
        for n in range(2):
            log = open(tmp_path / f"worker-{n}.log", "wb")  # noqa: SIM115
            workers.append(
                subprocess.Popen(
                    [LIENTHONG, "--config", str(config), "--log-level", "WARNING", "run"],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        try:
            server = world.sandboxes.slapd

            def entries(base: str) -> dict[str, dict[str, list[bytes]]]:
                conn = ldap.initialize(server.url)
                conn.simple_bind_s(server.rootdn, server.password)
                try:
                    return dict(conn.search_s(base, ldap.SCOPE_ONELEVEL, "(objectClass=*)"))
                finally:
                    conn.unbind_s()

            agencies = "ou=agencies,dc=daklak,dc=gov,dc=vn"
            # The workers' schedulers reconcile the axis agency list into the directory.
            wait_for("the agency sync", lambda: len(entries(agencies)) == 6, logs)
            world.seed()  # documents, vouchers and a staff list arrive
            mail = world.sandboxes.mail
            assert mail is not None
            accounting = world.sandboxes.accounting
            axis = world.sandboxes.axis

            def finance_inbox() -> list[dict[str, str]]:
                return axis.snapshot()["inbox"].get(STC, [])

            # 5 to the agencies, 1 to the citizen whose dossier was done the same day.
            wait_for("6 mails", lambda: len(mail.mails) >= 6, logs)
            wait_for(
                "2 estimates",
                lambda: sum(len(s.estimates()) for s in set(accounting.values())) >= 2,
                logs,
            )
            wait_for("2 reports at the finance department", lambda: len(finance_inbox()) >= 2, logs)
            assert world.finance_answers() == 2
            # The fourth flow: every dossier and step at the portal, one letter to UBND
            # tỉnh; its answer (06) becomes the dossier's next step, at the portal too.
            portal, onestop = world.sandboxes.portal, world.sandboxes.onestop
            wait_for("9 steps at the portal", lambda: portal.stats()["steps"] == 9, logs)
            wait_for(
                "the letter asking UBND tỉnh's opinion",
                lambda: len(axis.snapshot()["inbox"].get(UBND, [])) >= 1,
                logs,
            )
            assert world.opinions_answer() == 1
            wait_for(
                "the opinion's step at the portal", lambda: portal.stats()["steps"] == 10, logs
            )
            dms = [tmp_path / "var/dms/syt", tmp_path / "var/dms/sgd"]
            # Finance's 01 and 03 for each report, UBND tỉnh's 01 and 06 to the letter.
            wait_for(
                "6 statuses in the document systems",
                lambda: sum(len(list(d.glob("status-*.xml"))) for d in dms if d.exists()) == 6,
                logs,
            )
            people = "ou=syt,ou=people,dc=daklak,dc=gov,dc=vn"
            wait_for("the staff sync", lambda: b"lthoa" in str(entries(people)).encode(), logs)
            time.sleep(1.5)  # let any duplicate a race would make show up
            snapshot = axis.snapshot()
            mails = list(mail.mails)
        finally:
            for worker in workers:
                worker.send_signal(signal.SIGTERM)
            for worker in workers:
                worker.wait(timeout=30)
        summary = world.summary(Store(make_engine(pg_url)))

    # Effects once, whichever worker did the work.
    assert len(mails) == 6, [m["Subject"] for m in mails]
    assert len({m["Message-ID"] for m in mails}) == 6
    assert len(onestop.steps) == portal.stats()["steps"] == 10
    assert portal.stats()["step_repeats"] == 0
    assert {n: d["TrangThaiHoSo"] for n, d in portal.dossiers.items()} == {
        n: {"received": "2", "processing": "4", "done": "10"}[d["dossierStatus"]]
        for n, d in onestop.dossiers.items()
    }
    letters = [e for e in snapshot["inbox"][UBND] if e["messageType"] == "edoc"]
    assert [(e["from"], e["status"]) for e in letters] == [(SGD, "done")]  # asked once
    estimates = [e for s in set(accounting.values()) for e in s.estimates()]
    assert sorted((e["agencyCode"], e["amount"]) for e in estimates) == [
        (SYT, "1250000000"),
        (SGD, "2500000000"),
    ]
    statuses = [s for s, kind in snapshot["sent"].values() if kind == "status"]
    # A status 01 for each of the 5 documents taken in, and one 02 for the unsigned one.
    assert sorted(statuses).count(SYT) + sorted(statuses).count(SGD) == 6
    assert len(snapshot["inbox"][STC]) == 2

    # The summary, read from PostgreSQL, says the same.
    assert summary.statuses_sent == 5
    assert summary.statuses_out == {"01": 5, "02": 1}
    assert len(summary.mails) == 6
    assert [(s, c, st) for _, s, c, st in summary.opinions] == [(UBND, "06", "delivered")]
    assert sum(d.steps_delivered for d in summary.dossiers.values()) == 10
    assert sorted(s for _, s in summary.estimates) == ["delivered", "delivered"]
    assert sorted(r.vouchers for r in summary.reports) == [1, 2]
    assert all(sorted(r.statuses) == [f"01 from {STC}", f"03 from {STC}"] for r in summary.reports)
    [dead] = summary.dead_letters
    assert "signature missing" in dead["reason"]

    # Both workers worked, and each scheduled tick ran once across them.
    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        worker_count = conn.execute(sa.text("select count(distinct worker) from attempts")).scalar()
        ticks = conn.execute(
            sa.text(
                "select job, scheduled_for, count(*) from job_runs where scheduled_for is not null "
                "group by job, scheduled_for having count(*) > 1"
            )
        ).all()
        runs = conn.execute(sa.text("select count(*) from job_runs")).scalar()
    engine.dispose()
    assert worker_count == 2, logs()
    assert ticks == [] and runs > 0
