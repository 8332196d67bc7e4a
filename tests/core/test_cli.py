"""The admin command, end to end on a real embedded bus."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from lienthong import cli as cli_module
from lienthong.hookspecs import hookimpl
from lienthong.host import PluginHost

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the shipped embedded config and mappings, with the samples dropped in."""
    shutil.copytree(REPO / "config", tmp_path / "config")
    shutil.copytree(REPO / "mappings", tmp_path / "mappings")
    inbox = tmp_path / "var/onestop/outbox"
    inbox.mkdir(parents=True)
    for sample in (REPO / "config/samples").glob("*.xml"):
        shutil.copy(sample, inbox)
    return tmp_path


def run(project: Path, *args: str) -> click.testing.Result:
    config = str(project / "config/lienthong.yaml")
    return CliRunner().invoke(cli_module.cli, ["--config", config, *args])


def test_run_once_then_status_dlq_trace_and_replay(project: Path) -> None:
    result = run(project, "run", "--once")
    assert result.exit_code == 0, result.output
    assert "received 4, delivered 3, retried 0, dead-lettered 1" in result.output
    assert len(list((project / "var/docs/inbox").glob("receipt-*.xml"))) == 3

    status = json.loads(run(project, "status", "--json").output)
    assert status["counts"]["delivered"] == 3 and status["counts"]["dead_letters_waiting"] == 1

    listing = json.loads(run(project, "dlq", "list", "--json").output)
    [dead] = listing
    assert dead["stage"] == "accept" and "not well-formed" in dead["reason"]
    shown = run(project, "dlq", "show", str(dead["id"]))
    assert "HS-BROKEN" in shown.output and "not well-formed" in shown.output

    traced = run(project, "trace", dead["message_id"][-10:])
    assert traced.exit_code == 0 and "dead-lettered" in traced.output

    replay = run(project, "dlq", "replay", str(dead["id"]))
    assert replay.exit_code == 1 and "still fails" in replay.output

    purge = run(project, "dlq", "purge", "--all", "--yes")
    assert "purged 1" in purge.output
    assert json.loads(run(project, "dlq", "list", "--json").output) == []


def test_run_once_and_status_count_repeats_apart_from_new_messages(project: Path) -> None:
    assert "received 4," in run(project, "run", "--once").output
    inbox = project / "var/onestop/outbox"
    for sample in (REPO / "config/samples").glob("*.xml"):
        shutil.copy(sample, inbox)  # the same four files dropped again
    (inbox / "application-4.xml").write_bytes(
        (REPO / "config/samples/application-1.xml").read_bytes().replace(b"HS-", b"HS-NEW-")
    )
    again = run(project, "run", "--once")
    assert again.exit_code == 0, again.output
    assert "received 1, delivered 1, retried 0, dead-lettered 0; 4 repeat(s)" in again.output
    status = json.loads(run(project, "status", "--json").output)
    assert status["received_by_endpoint"] == {"onestop-in": 5}
    assert status["repeats_by_endpoint"] == {"onestop-in": 4}
    assert status["counts"]["messages"] == 5
    table = run(project, "status").output
    assert "received" in table and "repeats" in table


def test_trace_of_a_delivered_message_shows_every_hop(project: Path) -> None:
    run(project, "run", "--once")
    data = json.loads(run(project, "status", "--json").output)
    assert data["counts"]["delivered"] == 3
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{project / 'var/lienthong.db'}")
    with engine.connect() as conn:
        message_id = conn.execute(
            sa.text("select message_id from deliveries where state='delivered' limit 1")
        ).scalar_one()
    trace = json.loads(run(project, "trace", message_id, "--json").output)
    assert [h["event"] for h in trace["hops"]] == ["accepted", "delivered"]
    assert "to docs-receipts by route onestop-receipts" in trace["hops"][0]["detail"]
    assert trace["deliveries"][0]["attempt_log"][0]["outcome"] == "ok"


def test_mapping_test_and_apply(project: Path) -> None:
    result = run(project, "mapping", "test")
    assert result.exit_code == 0 and "0 failed" in result.output
    case = project / "mappings/onestop/application-to-receipt.cases/basic"
    applied = run(
        project,
        "mapping",
        "apply",
        "onestop/application-to-receipt.xsl",
        str(case / "input.xml"),
        "--param",
        "issuer=000.00.00.H41",
    )
    assert "<issuer>000.00.00.H41</issuer>" in applied.output
    (case / "expected.xml").write_text(
        (case / "expected.xml").read_text().replace("Bản vẽ thiết kế", "Bản vẽ")
    )
    failed = run(project, "mapping", "test")
    assert failed.exit_code == 1
    assert "/receipt/documents/document[2]" in failed.output


def test_config_check_adapters_and_db_upgrade(project: Path) -> None:
    check = run(project, "config", "check")
    assert check.exit_code == 0 and "ok (2 endpoints, 1 routes" in check.output
    adapters = json.loads(run(project, "adapters", "--json").output)
    assert {"folder", "memory"} <= {a["name"] for a in adapters}
    assert run(project, "db", "upgrade").output.startswith("store schema at")


def test_a_broken_config_exits_4_with_every_problem(project: Path) -> None:
    path = project / "config/lienthong.yaml"
    path.write_text(path.read_text().replace("adapter: folder", "adapter: foldr", 1))
    result = run(project, "run", "--once")
    assert result.exit_code == 4
    assert "Did you mean 'folder'" in result.output


def test_plugins_add_subcommands_through_the_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    class Hello:
        @hookimpl
        def lienthong_register_commands(self, cli):
            @cli.command("hello-test")
            def hello() -> None:
                click.echo("xin chào")

    original = PluginHost.__init__

    def with_hello(self, **kwargs):
        original(self, **kwargs)
        self.add(Hello(), "hello")
        self.refresh()

    monkeypatch.setattr(PluginHost, "__init__", with_hello)
    command = cli_module.build()
    try:
        assert CliRunner().invoke(command, ["hello-test"]).output == "xin chào\n"
    finally:
        cli_module.cli.commands.pop("hello-test", None)


def test_audit_verify_names_a_tampered_record(project: Path) -> None:
    run(project, "run", "--once")
    assert run(project, "audit", "verify").output.startswith("audit trail intact:")
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{project / 'var/lienthong.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("update audit set detail = 'nothing to see' where id = 2"))
    broken = run(project, "audit", "verify")
    assert broken.exit_code == 1 and "record #2" in broken.output and "altered" in broken.output
