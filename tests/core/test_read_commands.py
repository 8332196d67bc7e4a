"""Read-only commands answer from the store's read models: no bus, no adapter built or started."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import click
import pytest
from click.testing import CliRunner

from lienthong import cli as cli_module
from lienthong import migrations
from lienthong.adapter import Adapter, Capability
from lienthong.exits import PREFIX, Exit
from lienthong.hookspecs import hookimpl
from lienthong.host import PluginHost
from lienthong.message import Message
from lienthong.store import Intake, Outgoing, Store, make_engine
from lienthong.sync import sync_runs

#: Every call into an Unreachable adapter, across the commands of one test.
CALLS: list[str] = []


class Unreachable(Adapter):
    """An endpoint whose system is down: building or starting it is recorded, and fails."""

    name = "unreachable-test"
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.RECEIVE})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        CALLS.append("built")
        super().__init__(*args, **kwargs)

    def start(self) -> None:
        CALLS.append("started")
        raise ConnectionRefusedError("the system at 127.0.0.1:1 does not answer")


class UnreachablePlugin:
    @hookimpl
    def lienthong_register_adapters(self, register: Any) -> None:
        register(Unreachable)


@pytest.fixture
def with_unreachable(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    original = PluginHost.__init__

    def with_plugin(self: PluginHost, **kwargs: Any) -> None:
        original(self, **kwargs)
        self.add(UnreachablePlugin(), "unreachable-test")
        self.refresh()

    monkeypatch.setattr(PluginHost, "__init__", with_plugin)
    CALLS.clear()
    yield CALLS
    CALLS.clear()


def write_config(tmp_path: Path, store: str, jobs: str = "") -> Path:
    config = tmp_path / "lienthong.yaml"
    config.write_text(
        f"bus: {{store: '{store}', broker: embedded, mappings: mappings}}\n"
        "endpoints:\n  down: {adapter: unreachable-test}\nroutes: []\n" + jobs
    )
    (tmp_path / "mappings").mkdir()
    return config


def invoke(config: Path, *args: str) -> click.testing.Result:
    return CliRunner().invoke(cli_module.build(), ["--config", str(config), *args])


def test_status_dlq_and_trace_answer_without_building_an_adapter(
    tmp_path: Path, with_unreachable: list[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'bus.db'}"
    config = write_config(tmp_path, url)
    store = Store(make_engine(url))
    store.upgrade()
    parked = Message(body=b"<broken", source="down", kind="application")
    routed = Message(body=b"<a/>", source="down", kind="application")
    store.accept(
        [
            Intake(parked, parked="not well-formed XML", stage="accept"),
            Intake(routed, outgoing=[Outgoing("k-1", "r", "elsewhere", b"<b/>", {})]),
        ]
    )
    store.engine.dispose()

    status = invoke(config, "status", "--json")
    assert status.exit_code == 0, status.output
    data = json.loads(status.output)
    assert data["counts"]["messages"] == 2 and data["counts"]["dead_letters_waiting"] == 1
    assert data["pending_by_endpoint"] == {"elsewhere": 1}
    assert data["endpoints"] == {"down": "unreachable-test"}
    assert "down" in invoke(config, "status").output

    listing = invoke(config, "dlq", "list", "--json")
    assert listing.exit_code == 0, listing.output
    [dead] = json.loads(listing.output)
    assert dead["message_id"] == parked.id and dead["reason"] == "not well-formed XML"
    shown = invoke(config, "dlq", "show", str(dead["id"]))
    assert shown.exit_code == 0 and "<broken" in shown.output

    traced = invoke(config, "trace", routed.id[-12:], "--json")
    assert traced.exit_code == 0, traced.output
    assert json.loads(traced.output)["deliveries"][0]["endpoint"] == "elsewhere"
    versions = invoke(config, "mapping", "versions", "none.xsl")
    assert versions.exit_code == 0 and "no version has made a delivery yet" in versions.output

    assert with_unreachable == [], "a read-only command built or started an adapter"
    # The same config does build and start it when the bus runs: the check above can fail.
    ran = invoke(config, "run", "--once")
    assert with_unreachable[:2] == ["built", "started"], ran.output


def test_jobs_and_sync_runs_answer_without_building_an_adapter(
    tmp_path: Path, with_unreachable: list[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'bus.db'}"
    config = write_config(tmp_path, url, "jobs:\n  poll-down: {cron: '0 2 * * *', poll: down}\n")
    store = Store(make_engine(url))
    store.upgrade()
    started = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    with store.engine.begin() as conn:
        conn.execute(
            sync_runs.insert().values(
                job="staff-sync", source="down", target="elsewhere", entity="person",
                dry_run=True, forced=False, outcome="ok", started_at=started,
                finished_at=started, counts='{"create": 2}',
            )
        )  # fmt: skip
    store.engine.dispose()

    jobs = invoke(config, "jobs", "--json")
    assert jobs.exit_code == 0, jobs.output
    [job] = json.loads(jobs.output)
    assert job["name"] == "poll-down" and job["schedule"] == "cron '0 2 * * *' (Asia/Ho_Chi_Minh)"
    assert job["last_outcome"] is None and job["next_run"].endswith("+07:00")
    assert "never run" in invoke(config, "jobs").output

    runs = invoke(config, "sync", "runs")
    assert runs.exit_code == 0, runs.output
    assert "2026-01-02 03:04:05 UTC  staff-sync  dry run  ok  create 2" in runs.output
    report = invoke(config, "sync", "report", "1", "--json")
    assert report.exit_code == 0 and json.loads(report.output)["counts"] == {"create": 2}

    assert with_unreachable == [], "a read-only command built or started an adapter"


@pytest.mark.server
def test_a_store_not_upgraded_is_refused_with_the_fix_and_nothing_migrated(
    tmp_path: Path, pg_url: str, with_unreachable: list[str]
) -> None:
    config = write_config(tmp_path, pg_url)
    for args in (
        ("status",),
        ("dlq", "list"),
        ("dlq", "show", "1"),
        ("trace", "abc"),
        ("mapping", "versions", "x.xsl"),
        ("jobs",),
        ("sync", "runs"),
    ):
        refused = invoke(config, *args)
        assert refused.exit_code == Exit.CONFIG == 4, (args, refused.output)
        assert refused.output.startswith(PREFIX), refused.output
        assert "run 'lienthong db upgrade' first" in refused.output, refused.output
    engine = make_engine(pg_url)
    with engine.connect() as conn:
        tables = conn.exec_driver_sql(
            "select count(*) from information_schema.tables where table_schema = current_schema()"
        ).scalar_one()
    engine.dispose()
    assert tables == 0, "a read-only command migrated the store"
    assert with_unreachable == []


def test_a_read_command_on_no_store_says_nothing_is_stored_yet(
    tmp_path: Path, with_unreachable: list[str]
) -> None:
    db = tmp_path / "var" / "bus.db"
    config = write_config(tmp_path, f"sqlite:///{db}")
    for command in (["status"], ["dlq", "list"], ["trace", "m-1"]):
        result = invoke(config, *command)
        assert result.exit_code == Exit.CONFIG, result.output
        assert "nothing is stored yet" in result.output and "'lienthong run'" in result.output
    assert not db.exists()


def test_a_read_command_on_a_store_behind_says_to_upgrade_it(
    tmp_path: Path, with_unreachable: list[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'bus.db'}"
    config = write_config(tmp_path, url)
    engine = make_engine(url)
    migrations.upgrade(engine, "0007")
    result = invoke(config, "status")
    assert result.exit_code == Exit.CONFIG, result.output
    assert "schema is at 0007" in result.output and "'lienthong db upgrade'" in result.output
    assert migrations.current(engine) == "0007"
    engine.dispose()
