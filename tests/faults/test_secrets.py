"""Known secrets never show: not in DEBUG logs, errors, trace, status, config check, dlq, /health.

The flows run for real against the sandboxes: the accounting SOAP service
(WS-Security password), the axis (HMAC secret), slapd (bind password, used by
a mapping's lookup and by mail sending) and an SMTP server with AUTH (password).
Each secret comes from ``{env: ...}``; the SOAP and SMTP endpoints have twins
with wrong secrets, and the bus is started once with a wrong axis secret and
once with a wrong LDAP password (it refuses to start), so the error paths,
likeliest to echo a value, run too. The store and broker URLs carry passwords of their own.
"""

from __future__ import annotations

import json
import logging
import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from lienthong.plugins.accounting_soap.sandbox import AccountingSandbox
from lienthong.plugins.document_axis.sandbox import SandboxAxis
from lienthong.plugins.email_directory.slapd import SlapdMissing, TemporarySlapd
from tests.email_directory.directory_fixtures import Tree
from tests.faults.harness import VOUCHER_MAPPING, FaultProject, folder_in, inbox_files
from tests.faults.servers import free_port

SECRETS = {
    "SOAP_PASSWORD": "soap-S3cr3t-7f1c",
    "SOAP_WRONG": "soap-Wr0ng-91aa",
    "AXIS_SECRET": "axis-S3cr3t-4b2e",
    "AXIS_WRONG": "axis-Wr0ng-0d3f",
    "LDAP_PASSWORD": "ldap-S3cr3t-c8d0",
    "LDAP_WRONG": "ldap-Wr0ng-5e6a",
    "SMTP_PASSWORD": "smtp-S3cr3t-a1b9",
    "SMTP_WRONG": "smtp-Wr0ng-77c2",
    "STORE_PASSWORD": "store-S3cr3t-3e3e",
    "BROKER_PASSWORD": "broker-S3cr3t-6d6d",
}
MESSAGES = 5
#: A PostVoucher request as the voucher mapping makes it.
REPO_VOUCHER = Path(__file__).parent / "data/post-voucher.xml"
SYSTEM = "lienthong-h53"


def leaks(text: str) -> list[str]:
    """The secret names whose values appear in ``text``."""
    return [name for name, value in SECRETS.items() if value in text]


def without_zeep_transport(log: str) -> str:
    """The log without zeep.transports' DEBUG records (a known leak, see the xfail test)."""
    kept, skipping = [], False
    for line in log.splitlines():
        if line[:4].isdigit() and "Z " in line[:30]:
            skipping = " DEBUG zeep.transports: " in line
        if not skipping:
            kept.append(line)
    return "\n".join(kept)


class SmtpInbox:
    """aiosmtpd handler that keeps what it accepted."""

    def __init__(self) -> None:
        self.mails: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.mails.append(envelope.content)
        return "250 Message accepted"


@pytest.fixture
def smtp() -> Iterator[tuple[SmtpInbox, int]]:
    controller_module = pytest.importorskip(
        "aiosmtpd.controller", reason="aiosmtpd not installed: pip install aiosmtpd"
    )
    smtp_module = pytest.importorskip("aiosmtpd.smtp")

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        ok = data.login == b"lienthong" and data.password == SECRETS["SMTP_PASSWORD"].encode()
        return smtp_module.AuthResult(success=ok, handled=False)

    box = SmtpInbox()
    controller = controller_module.Controller(
        box,
        hostname="127.0.0.1",
        port=free_port(),
        authenticator=authenticate,
        auth_require_tls=False,
    )
    controller.start()
    yield box, controller.port
    controller.stop()


@pytest.fixture
def directory() -> Iterator[Tree]:
    try:
        server = TemporarySlapd(password=SECRETS["LDAP_PASSWORD"]).start()
    except SlapdMissing as exc:
        pytest.skip(str(exc))
    tree = Tree(server).seed()
    yield tree
    tree.close()
    server.stop()


def config(
    project: FaultProject, soap: AccountingSandbox, axis: SandboxAxis, tree: Tree, smtp_port: int
) -> None:
    acct = {
        "adapter": "accounting_soap",
        "wsdl": soap.wsdl_url,
        "username": "ketoan",
        "send_operation": "PostVoucher",
        "reference_field": "voucher.externalReference",
        "timeout": 5,
    }
    ldap_settings = {
        "adapter": "email_directory",
        "url": tree.server.url,
        "bind_dn": tree.server.rootdn,
        "base_dn": tree.base,
        "agencies_dn": tree.agencies_dn,
        "accounts_dn": tree.accounts_dn,
        "timeout": 5,
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp_port,
        "smtp_user": "lienthong",
        "mail_from": "lienthong@tinh.gov.vn",
    }
    axis_settings = {
        "adapter": "axis",
        "url": axis.url,
        "system_id": SYSTEM,
        "organ_id": "000.00.01.H53",
        "sandbox": True,
        "timeout": 5,
    }

    def env(name: str) -> dict[str, str]:
        return {"env": name}

    def mail_target(endpoint: str) -> dict[str, Any]:
        return {
            "endpoint": endpoint,
            "mapping": "onestop/application-to-mail.xsl",
            "params": {"directory": "directory"},
        }

    project.write(
        store=f"sqlite:///{project.root / 'var/bus.db'}",
        endpoints={
            "in": folder_in(),
            "acct": {**acct, "password": env("SOAP_PASSWORD")},
            "acct-wrong": {**acct, "password": env("SOAP_WRONG")},
            "directory": {
                **ldap_settings,
                "password": env("LDAP_PASSWORD"),
                "smtp_password": env("SMTP_PASSWORD"),
            },
            "directory-wrong-smtp": {
                **ldap_settings,
                "password": env("LDAP_PASSWORD"),
                "smtp_password": env("SMTP_WRONG"),
            },
            "axis": {**axis_settings, "secret": env("AXIS_SECRET")},
        },
        routes=[
            {
                "name": "fees",
                "from": "in",
                "to": [
                    {"endpoint": "acct", "mapping": VOUCHER_MAPPING},
                    {"endpoint": "acct-wrong", "mapping": VOUCHER_MAPPING},
                    mail_target("directory"),
                    mail_target("directory-wrong-smtp"),
                ],
            }
        ],
        bus={
            "retry": {"initial_delay": 0.1, "max_delay": 0.3, "max_attempts": 3},
            "breaker_failures": 100,
        },
    )


def fetch(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 (loopback)
            return str(answer.read().decode())
    except urllib.error.HTTPError as exc:  # /health answers 503 when failing: still text
        return str(exc.read().decode())


def wait_done(url: str, expected: int, timeout: float) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    counts: dict[str, int] = {}
    engine = sa.create_engine(url)
    try:
        while time.monotonic() < deadline:
            try:
                with engine.connect() as conn:
                    counts = dict(
                        conn.execute(
                            sa.text("SELECT state, count(*) FROM deliveries GROUP BY state")
                        ).all()
                    )
            except sa.exc.OperationalError:  # the worker has not made the store yet
                counts = {}
            if counts.get("delivered", 0) + counts.get("dead", 0) >= expected:
                return counts
            time.sleep(0.3)
    finally:
        engine.dispose()
    raise AssertionError(f"deliveries not done within {timeout} s: {counts}")


def test_no_secret_appears_in_any_output(
    fault_project: FaultProject, directory: Tree, smtp: tuple[SmtpInbox, int]
) -> None:
    box, smtp_port = smtp
    soap = AccountingSandbox(username="ketoan", password=SECRETS["SOAP_PASSWORD"]).start()
    axis = SandboxAxis(
        {SYSTEM: (SECRETS["AXIS_SECRET"], "000.00.01.H53")}, agencies=["000.00.01.H53"]
    ).start()
    try:
        fault_project.env.update(SECRETS)
        fault_project.log_level = "DEBUG"
        config(fault_project, soap, axis, directory, smtp_port)
        assert not leaks(fault_project.config.read_text())
        fault_project.drop(MESSAGES)
        metrics_port = free_port()
        worker = fault_project.start_worker("--metrics-port", str(metrics_port))
        store = f"sqlite:///{fault_project.root / 'var/bus.db'}"
        counts = wait_done(store, expected=4 * MESSAGES, timeout=90)
        time.sleep(1)  # a few more polls of the axis endpoints
        outputs = {
            "/health": fetch(f"http://127.0.0.1:{metrics_port}/health"),
            "/metrics": fetch(f"http://127.0.0.1:{metrics_port}/metrics"),
        }
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
        outputs["worker log (DEBUG)"] = without_zeep_transport(fault_project.all_logs())

        # The flows ran, both ways: good endpoints delivered, wrong secrets refused.
        assert counts.get("delivered") == 2 * MESSAGES, (counts, outputs["worker log (DEBUG)"])
        assert counts.get("dead") == 2 * MESSAGES, counts
        assert len(soap.vouchers()) == MESSAGES
        assert len(box.mails) == MESSAGES
        assert axis.request_count() > 0, "the axis endpoints were polled"
        assert not inbox_files(fault_project.inbox)

        for args in (
            ("status",),
            ("status", "--json"),
            ("config", "check"),
            ("dlq", "list", "--json"),
            ("jobs", "--json"),
            ("adapters", "--json"),
            ("--log-level", "DEBUG", "run", "--once"),
        ):
            done = fault_project.command(*args)
            outputs[" ".join(args)] = done.stdout + done.stderr
        # A wrong axis secret or LDAP password stops the bus at start (a ConfigError):
        # that refusal must not echo the value either.
        for name, refusal in (("AXIS_SECRET", "refused system id"), ("LDAP_PASSWORD", "refused")):
            right = fault_project.env[name]
            fault_project.env[name] = SECRETS[name.split("_")[0] + "_WRONG"]
            said = ""
            for args in (("config", "check"), ("--log-level", "DEBUG", "run", "--once")):
                done = fault_project.command(*args)
                outputs[f"wrong {name}: " + " ".join(args)] = done.stdout + done.stderr
                said += done.stdout + done.stderr
            assert refusal in said, said
            fault_project.env[name] = right
        dead = json.loads(fault_project.command("dlq", "list", "--json").stdout)
        assert len(dead) == 2 * MESSAGES
        one_per_endpoint = {item["endpoint"]: item for item in dead}
        for item in one_per_endpoint.values():
            for extra in ((), ("--json",)):
                done = fault_project.command("dlq", "show", str(item["id"]), *extra)
                outputs[f"dlq show {item['id']} {extra}"] = done.stdout + done.stderr
            done = fault_project.command("trace", item["message_id"], "--json")
            outputs[f"trace {item['message_id']}"] = done.stdout + done.stderr
        reasons = " ".join(item["reason"] for item in dead)
        assert "acct-wrong" in outputs["worker log (DEBUG)"] and reasons, "errors were shown"
        found = {where: leaks(text) for where, text in outputs.items() if leaks(text)}
        assert not found, f"secrets shown: {found}"
    finally:
        soap.stop()
        axis.stop()


def test_store_and_broker_passwords_stay_hidden_when_unreachable(
    fault_project: FaultProject,
) -> None:
    """An unreachable store or broker is reported by host, never with its URL's password."""
    fault_project.env.update(SECRETS)
    fault_project.env["LIENTHONG_STORE"] = (
        f"postgresql+psycopg://lienthong:{SECRETS['STORE_PASSWORD']}@127.0.0.1:{free_port()}/bus"
    )
    fault_project.env["LIENTHONG_BROKER"] = (
        f"amqp://lienthong:{SECRETS['BROKER_PASSWORD']}@127.0.0.1:{free_port()}//"
    )
    fault_project.write(
        store={"env": "LIENTHONG_STORE"},
        broker={"env": "LIENTHONG_BROKER"},
        endpoints={"in": folder_in()},
        routes=[],
    )
    outputs = {}
    for args in (
        ("config", "check"),
        ("status",),
        ("status", "--json"),
        ("--log-level", "DEBUG", "run", "--once"),
        ("db", "upgrade"),
        ("dlq", "list"),
    ):
        done = fault_project.command(*args)
        outputs[" ".join(args)] = done.stdout + done.stderr
    assert any("127.0.0.1" in text for text in outputs.values()), outputs
    found = {where: leaks(text) for where, text in outputs.items() if leaks(text)}
    assert not found, f"secrets shown: {found}\n{outputs}"


def test_the_soap_password_stays_out_of_debug_logs(tmp_path) -> None:
    from io import StringIO

    from lienthong import logs
    from lienthong.adapter import Services, resolve_options
    from lienthong.message import Message
    from lienthong.plugins.accounting_soap.adapter import AccountingSoapAdapter

    body = (REPO_VOUCHER).read_bytes()
    with AccountingSandbox(username="ketoan", password=SECRETS["SOAP_PASSWORD"]) as soap:
        raw = {
            "wsdl": soap.wsdl_url,
            "username": "ketoan",
            "password": SECRETS["SOAP_PASSWORD"],
            "send_operation": "PostVoucher",
            "reference_field": "voucher.externalReference",
        }
        settings, problems = resolve_options(AccountingSoapAdapter, raw, "endpoints.acct")
        assert not problems
        stream = StringIO()
        handler = logs.configure("DEBUG", stream=stream, force=True)
        try:
            adapter = AccountingSoapAdapter(
                "acct", settings, Services(base_dir=tmp_path, var_dir=tmp_path / "var")
            )
            adapter.start()
            adapter.send(Message(body=body, kind="voucher"), key="k-1")
            adapter.stop()
        finally:
            if handler is not None:
                logging.getLogger().removeHandler(handler)
        assert len(soap.vouchers()) == 1
    assert SECRETS["SOAP_PASSWORD"] not in stream.getvalue()
