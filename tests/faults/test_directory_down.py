"""The directory (slapd) down during a directory sync job and during mail lookups.

Mail: a mapping looks an agency's mailbox up at accept time, and the mail
endpoint looks the recipient agency up at send time. While slapd is down the
lookups fail as transient: the source keeps its files and the sends are
retried (files in a second folder, whose route needs no lookup at accept,
exercise the send-time lookup). The sync job's runs fail while it is down and the next tick after it
is back applies the new staff list. Afterwards every mail went once, to the
right mailboxes, and the directory holds exactly the staff list.
"""

from __future__ import annotations

import email
import signal
import time
from collections.abc import Iterator
from email import policy
from pathlib import Path
from typing import Any

import ldap
import pytest
import sqlalchemy as sa

from lienthong.plugins.email_directory.slapd import SlapdMissing, TemporarySlapd
from tests.busproject import APPLICATION
from tests.email_directory.directory_fixtures import ACCOUNTS, Tree
from tests.faults.harness import FaultProject, account, folder_in, inbox_files, wait_settled
from tests.faults.servers import free_port

COUNT = 20
DOWN_SECONDS = 5
HEADER = "uid,full_name,given_name,family_name,mail,title,agency\n"


def staff_csv(extra: list[str], title_of_nva: str) -> str:
    rows = []
    for uid, cn, given, sn, mail, title, agency in ACCOUNTS:
        rows.append(
            ",".join([uid, cn, given, sn, mail, title_of_nva if uid == "nva" else title, agency])
        )
    return HEADER + "\n".join(rows + extra) + "\n"


class SmtpInbox:
    def __init__(self) -> None:
        self.mails: list[tuple[list[str], Any]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        parsed = email.message_from_bytes(envelope.content, policy=policy.default)
        self.mails.append((sorted(envelope.rcpt_tos), parsed))
        return "250 Message accepted"


@pytest.fixture
def smtp() -> Iterator[tuple[SmtpInbox, int]]:
    controller_module = pytest.importorskip(
        "aiosmtpd.controller", reason="aiosmtpd not installed: pip install aiosmtpd"
    )
    box = SmtpInbox()
    controller = controller_module.Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield box, controller.port
    controller.stop()


@pytest.fixture
def tree() -> Iterator[Tree]:
    try:
        server = TemporarySlapd().start()
    except SlapdMissing as exc:
        pytest.skip(str(exc))
    t = Tree(server).seed()
    yield t
    server.stop()


def directory_accounts(tree: Tree) -> dict[str, str]:
    conn = ldap.initialize(tree.server.url)
    conn.simple_bind_s(tree.server.rootdn, tree.server.password)
    try:
        found = conn.search_s(tree.accounts_dn, ldap.SCOPE_ONELEVEL, "(uid=*)", ["uid", "title"])
    finally:
        conn.unbind_s()
    return {attrs["uid"][0].decode(): attrs.get("title", [b""])[0].decode() for _, attrs in found}


def job_outcomes(url: str) -> list[tuple[str, str]]:
    """Outcome and detail of every finished run of the sync job, oldest first."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [
                (r.outcome, r.detail or "")
                for r in conn.execute(
                    sa.text(
                        "SELECT outcome, detail FROM job_runs WHERE outcome <> 'running' "
                        "ORDER BY id"
                    )
                )
            ]
    finally:
        engine.dispose()


def wait_for_runs(url: str, count: int, timeout: float) -> list[tuple[str, str]]:
    """Wait until ``count`` runs have finished (a run in flight says nothing yet)."""
    deadline = time.monotonic() + timeout
    while len(outcomes := job_outcomes(url)) < count:
        assert time.monotonic() < deadline, f"{len(outcomes)} of {count} runs finished: {outcomes}"
        time.sleep(0.2)
    return outcomes


@pytest.mark.slow
def test_directory_down_during_sync_and_mail_lookups(
    fault_project: FaultProject, tree: Tree, smtp: tuple[SmtpInbox, int], tmp_path: Path
) -> None:
    box, smtp_port = smtp
    staff = tmp_path / "hr"
    staff.mkdir()
    (staff / "staff-1.csv").write_text(staff_csv([], "Chuyên viên"), encoding="utf-8")
    store = f"sqlite:///{tmp_path / 'var/bus.db'}"
    fault_project.log_level = "INFO"
    fault_project.write(
        store=store,
        endpoints={
            "in": folder_in(batch=5),
            "in-plain": {**folder_in(batch=5), "path": "in-plain"},
            "directory": {
                "adapter": "email_directory",
                "url": tree.server.url,
                "bind_dn": tree.server.rootdn,
                "password": tree.server.password,
                "base_dn": tree.base,
                "agencies_dn": tree.agencies_dn,
                "accounts_dn": tree.accounts_dn,
                "timeout": 2,
                "smtp_host": "127.0.0.1",
                "smtp_port": smtp_port,
                "mail_from": "lienthong@tinh.gov.vn",
            },
            "staff": {
                "adapter": "folder",
                "path": str(staff),
                "direction": "sync",
                "sync_pattern": "staff-*.csv",
                "sync_key": "uid",
            },
        },
        routes=[
            {
                "name": "notify",
                "from": "in",
                "to": [
                    {
                        "endpoint": "directory",
                        "mapping": "onestop/application-to-mail.xsl",
                        "params": {"directory": "directory"},
                    }
                ],
            },
            {
                "name": "notify-plain",  # no lookup at accept: only the send looks up
                "from": "in-plain",
                "to": [
                    {
                        "endpoint": "directory",
                        "mapping": "onestop/application-to-mail.xsl",
                        "params": {"directory": "directory", "cc": ""},
                    }
                ],
            },
        ],
        jobs={
            "staff-sync": {
                "interval": 1,
                "sync": {"source": "staff", "target": "directory", "entity": "account"},
            }
        },
        bus={
            "breaker_failures": 3,
            "breaker_reset_seconds": 1,
            "retry": {"initial_delay": 0.2, "max_delay": 1, "max_attempts": 100},
        },
    )
    written = fault_project.drop_more({}, 5)
    fault_project.start_worker()
    wait_settled(fault_project, store, 5, timeout=60)
    assert wait_for_runs(store, 1, timeout=30)[0][0] == "ok", job_outcomes(store)

    before = len(job_outcomes(store))
    tree.server._kill()  # the directory goes down (same port and data when it returns)
    down_at = time.monotonic()
    (staff / "staff-2.csv").write_text(
        staff_csv(["ntm,Ngô Thị Mai,Mai,Ngô,ntm@tinh.gov.vn,Kế toán,sotc"], "Phó phòng"),
        encoding="utf-8",
    )
    fault_project.drop_more(written, COUNT)
    plain = tmp_path / "in-plain"
    plain.mkdir(exist_ok=True)
    written_plain = {}
    for n in range(COUNT):
        body = APPLICATION.replace(b"HS-2026-000123", f"HS-P{n:04d}".encode())
        (plain / f"plain-{n:04d}.xml").write_bytes(body)
        written_plain[f"plain-{n:04d}.xml"] = body
    time.sleep(DOWN_SECONDS)
    assert not inbox_files(plain), "accepted: no lookup needed at accept"
    assert inbox_files(fault_project.inbox), "the source keeps what could not be routed"
    assert len(box.mails) == 5, "nothing mailed while the directory is down"
    # Runs finished since the kill failed (but one already past its reads at the kill).
    during = [outcome for outcome, _ in wait_for_runs(store, before + 2, timeout=30)[before:]]
    assert set(during[1:]) == {"interrupted"}, job_outcomes(store)
    tree.server.start()
    wait_settled(fault_project, store, 5 + 2 * COUNT, timeout=90)
    deadline = time.monotonic() + 30
    while "ntm" not in directory_accounts(tree) and time.monotonic() < deadline:
        time.sleep(0.3)
    fault_project.kill_all(signal.SIGTERM)

    result = account(store, written)
    assert result.delivered == 5 + COUNT, result.dead
    plain_result = account(store, written_plain, source="in-plain")
    assert plain_result.delivered == COUNT, plain_result.dead
    assert plain_result.attempts > COUNT, "sends failed while the directory was down"
    assert len(box.mails) == 5 + 2 * COUNT, "each mail once"
    by_subject = {mail["Subject"]: recipients for recipients, mail in box.mails}
    assert len(by_subject) == 5 + 2 * COUNT
    for subject, recipients in by_subject.items():
        cc = [] if "HS-P" in subject else ["soyt@tinh.gov.vn"]
        assert recipients == ["sotc@tinh.gov.vn", *cc], (subject, recipients)
    accounts = directory_accounts(tree)
    assert accounts["ntm"] == "Kế toán" and accounts["nva"] == "Phó phòng", accounts
    logs = fault_project.all_logs()
    assert "directory" in logs and time.monotonic() - down_at > DOWN_SECONDS
    # The first run after the outage applied the new staff list (later ticks find it done).
    runs = job_outcomes(store)
    last_failed = max(i for i, (outcome, _) in enumerate(runs) if outcome == "interrupted")
    outcome, detail = runs[last_failed + 1]
    assert outcome == "ok" and "create 1" in detail and "update 1" in detail, runs
