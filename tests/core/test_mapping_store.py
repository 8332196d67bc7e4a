"""Mapping versions in the store (issue 17): what made each delivery, diff on kept inputs, replay preview.

Each test runs a real bus (SQLite, and PostgreSQL where the store's queries
differ by dialect) and the real ``lienthong`` command over it.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import click
import pytest
import sqlalchemy as sa
import yaml
from click.testing import CliRunner

from lienthong import cli as cli_module
from lienthong.bus import Bus
from lienthong.config import load
from lienthong.exits import Exit
from lienthong.message import Message
from lienthong.store import Outcome, Store, make_engine, metadata, utcnow

HEAD = '<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">\n'
TAIL = "\n</xsl:stylesheet>\n"
SUMMARY = (
    '<xsl:template match="/batch"><summary agency="{@agency}" total="{sum(v)}">'
    '<xsl:for-each select="v"><line n="{position()}"><xsl:value-of select="."/></line>'
    "</xsl:for-each></summary></xsl:template>"
)
# Rounds values of 49 up to 50: changes exactly the batches holding one.
ROUNDED = SUMMARY.replace(
    '<xsl:value-of select="."/>', '<xsl:value-of select="number(.) + (number(.) = 49)"/>'
)


def batch(n: int) -> bytes:
    """Five values under 49, except that 37 batches in 1,000 have a 49 third."""
    values = [(n * 7 + i) % 49 for i in range(5)]
    if n % 27 == 5:
        values[2] = 49
    body = "".join(f"<v>{v}</v>" for v in values)
    return f'<batch agency="000.00.{n % 84:02d}.H41">{body}</batch>'.encode()


class Project:
    """A config folder: one inbound and two outbound folder endpoints, one mapped route."""

    def __init__(self, root: Path, store: str, **bus: Any) -> None:
        self.root = root
        (root / "mappings").mkdir()
        (root / "in").mkdir()
        self.write_mapping(SUMMARY)
        self.config = root / "lienthong.yaml"
        raw = {
            "bus": {"store": store, "var_dir": "var", "mappings": "mappings", **bus},
            "endpoints": {
                "inbox": {"adapter": "folder", "path": "in"},
                "north": {"adapter": "folder", "path": "north", "direction": "out"},
                "south": {"adapter": "folder", "path": "south", "direction": "out"},
            },
            "routes": [
                {
                    "name": "summaries",
                    "from": "inbox",
                    "to": [
                        {"endpoint": "north", "mapping": "summary.xsl", "params": {"k": "v"}},
                        {"endpoint": "south", "mapping": "summary.xsl"},
                    ],
                }
            ],
        }
        self.config.write_text(yaml.safe_dump(raw), encoding="utf-8")
        if not store.startswith("sqlite"):
            Store(make_engine(store)).upgrade()

    def write_mapping(self, body: str) -> None:
        (self.root / "mappings/summary.xsl").write_text(HEAD + body + TAIL, encoding="utf-8")

    def bus(self) -> Bus:
        return Bus(load(str(self.config)))

    def accept(self, numbers: range) -> list[str]:
        """Accept one batch per number through a fresh bus (so the mapping is read now)."""
        bus = self.bus()
        try:
            messages = [Message(batch(n), source="inbox", id=f"m{n:04d}") for n in numbers]
            for start in range(0, len(messages), 200):
                bus.accept(messages[start : start + 200])
        finally:
            bus.close()
        return [m.id for m in messages]

    def run(self, *args: str) -> click.testing.Result:
        return CliRunner().invoke(cli_module.cli, ["--config", str(self.config), *args])


@pytest.fixture(params=["sqlite", "postgresql"])
def project(request: pytest.FixtureRequest, tmp_path: Path) -> Project:
    if request.param == "sqlite":
        return Project(tmp_path, "sqlite:///var/bus.db")
    return Project(tmp_path, request.getfixturevalue("pg_url"))


def test_an_edited_mapping_still_shows_the_version_that_made_old_deliveries(
    project: Project,
) -> None:
    project.accept(range(3))
    old = json.loads(project.run("mapping", "versions", "summary.xsl", "--json").output)
    [first] = old["versions"]
    assert first["deliveries"] == 6 and first["current"]

    project.write_mapping(ROUNDED)
    project.accept(range(3, 5))
    listed = project.run("mapping", "versions", "summary.xsl")
    assert listed.exit_code == 0, listed.output
    now = json.loads(project.run("mapping", "versions", "summary.xsl", "--json").output)
    assert [(v["hash"], v["deliveries"], v["current"]) for v in now["versions"]] == [
        (first["hash"], 6, False),
        (now["current"], 4, True),
    ]
    assert now["current"] != first["hash"]
    assert f"{first['hash'][:12]}" in listed.output and "(the file now)" in listed.output

    traced = project.run("trace", "m0000")
    assert traced.exit_code == 0, traced.output
    assert traced.output.count(f"mapping summary.xsl@{first['hash'][:12]}") == 2
    newer = json.loads(project.run("trace", "m0004", "--json").output)
    assert {d["mapping_hash"] for d in newer["deliveries"]} == {now["current"]}
    assert {json.dumps(d["mapping_params"]) for d in newer["deliveries"]} == {
        '{"k": "v"}',
        "{}",
    }


def test_mapping_diff_over_1000_stored_messages_finds_exactly_the_37_changed(
    project: Project,
) -> None:
    project.accept(range(1000))
    project.write_mapping(ROUNDED)

    result = project.run("mapping", "diff", "summary.xsl", "--endpoint", "north", "--json")
    assert result.exit_code == 1, result.output
    found = json.loads(result.output)
    [report] = found["reports"]
    assert report["counts"] == {"identical": 963, "differs": 37, "fails": 0}
    # Newest first: m0977 is the last batch holding a 49.
    assert report["examples"][0]["key"].startswith("m0977-")
    assert report["examples"][0]["differences"] == [
        {
            "path": "/summary[1]/line[3]/text()",
            "change": "changed",
            "old": "'49'",
            "new": "'50'",
        }
    ]

    both = project.run("mapping", "diff", "summary.xsl", "--limit", "100")
    assert both.exit_code == 1
    assert "4 differ" in both.output  # m0977 and m0950, to both endpoints, in the newest 50

    old_hash = report["old"]
    pinned = project.run("mapping", "diff", "summary.xsl", "--from", old_hash[:10], "--json")
    assert json.loads(pinned.output)["reports"][0]["counts"]["differs"] == 74

    project.write_mapping(SUMMARY)  # back as it was: nothing differs any more
    same = project.run("mapping", "diff", "summary.xsl")
    assert same.exit_code == 0, same.output
    assert "2000 kept input(s) were mapped by the current version" in same.output


def test_mapping_diff_names_an_unknown_version(project: Project) -> None:
    project.accept(range(2))
    result = project.run("mapping", "diff", "summary.xsl", "--from", "beef")
    assert result.exit_code == 1
    assert "no version in the store with a hash starting 'beef'" in result.output
    assert "lienthong mapping versions summary.xsl" in result.output


def _everything(engine: sa.engine.Engine) -> dict[str, list[tuple[Any, ...]]]:
    with engine.connect() as conn:
        return {
            t.name: sorted(map(tuple, conn.execute(sa.select(t))), key=repr)
            for t in metadata.sorted_tables
        }


def test_replay_dry_run_shows_the_diff_and_changes_nothing(project: Project) -> None:
    project.accept(range(5, 6))  # batch 5 holds a 49
    bus = project.bus()
    try:
        claimed = bus.store.claim_due("test", limit=10, lease=timedelta(seconds=60))
        north = [d for d in claimed if d.endpoint == "north"]
        bus.store.finish([Outcome(north[0], "rejected", error="refused by north")], "test")
        parked = bus.accept([Message(b"<other/>", source="nowhere", id="lost")])
        assert parked[0].parked
        [dead, dead_parked] = sorted(bus.store.dead_letters(), key=lambda d: d["id"])
    finally:
        bus.close()
    project.write_mapping(ROUNDED)
    engine = make_engine(load(str(project.config)).bus.store.reveal())
    before = _everything(engine)

    result = project.run("dlq", "replay", str(dead["id"]), str(dead_parked["id"]), "--dry-run")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == (
        f"#{dead['id']}: would queue the delivery to 'north' again "
        "(the attempted body, key unchanged)"
    )
    assert "to north by route summaries, mapping summary.xsl@" in lines[1]
    assert "1 difference(s) from what was attempted (attempted: summary.xsl@" in lines[1]
    assert lines[2] == "    /summary[1]/line[3]/text(): '49' -> '50'"
    assert lines[3] == f"#{dead_parked['id']}: would route the message again"
    assert "it fails: no route matches this message" in lines[4]

    assert _everything(engine) == before
    engine.dispose()


def test_inputs_past_the_retention_are_purged_by_the_bus(tmp_path: Path) -> None:
    project = Project(tmp_path, "sqlite:///var/bus.db", mapping_inputs_days=2)
    project.accept(range(4))
    bus = project.bus()
    try:
        with bus.store.engine.begin() as conn:
            conn.execute(
                sa.text("UPDATE mapping_inputs SET kept_at = :at WHERE message_id < 'm0002'"),
                {"at": (utcnow() - timedelta(days=3)).isoformat(" ")},
            )
        bus.run(once=True)  # its first cycle does the housekeeping
        with bus.store.engine.connect() as conn:
            kept = conn.execute(sa.text("SELECT message_id FROM mapping_inputs")).scalars()
            assert sorted(kept) == ["m0002", "m0003"]
    finally:
        bus.close()
    found = json.loads(project.run("mapping", "diff", "summary.xsl", "--json").output)
    assert found["same_as_current"] == 4  # two messages, two deliveries each


def test_no_inputs_are_kept_when_the_retention_is_zero(tmp_path: Path) -> None:
    project = Project(tmp_path, "sqlite:///var/bus.db", mapping_inputs_days=0)
    project.accept(range(3))
    versions = json.loads(project.run("mapping", "versions", "summary.xsl", "--json").output)
    assert versions["versions"][0]["deliveries"] == 6  # versions are recorded all the same
    result = project.run("mapping", "diff", "summary.xsl")
    assert result.exit_code == 0 and "no kept inputs match" in result.output


def test_a_negative_retention_is_refused_with_a_hint(tmp_path: Path) -> None:
    project = Project(tmp_path, "sqlite:///var/bus.db", mapping_inputs_days=-1)
    result = project.run("mapping", "versions", "summary.xsl")
    assert result.exit_code == Exit.CONFIG
    assert "mapping_inputs_days" in result.output and "0 keeps none" in result.output


def test_trace_lineage_uses_the_version_that_made_the_delivery(tmp_path: Path) -> None:
    project = Project(tmp_path, "sqlite:///var/bus.db")
    project.accept(range(5, 6))
    project.write_mapping(ROUNDED)  # the file changes; the trace still shows the old copy
    result = project.run("trace", "m0005", "--lineage")
    assert result.exit_code == 0, result.output
    assert "/summary[1]/line[3]/text() = '49' <- /batch[1]/v[3]/text() (copy)" in result.output
    assert "/summary[1]/@total" in result.output and "computed" in result.output


def test_a_replayed_message_is_kept_as_an_input_and_mapping_diff_finds_it(
    tmp_path: Path,
) -> None:
    project = Project(tmp_path, "sqlite:///var/bus.db")
    bus = project.bus()
    try:
        bus.accept([Message(batch(5), source="late", id="m0005")])  # no route yet: parked
        [dead] = bus.store.dead_letters()
    finally:
        bus.close()
    raw = yaml.safe_load(project.config.read_text(encoding="utf-8"))
    raw["endpoints"]["late"] = {"adapter": "folder", "path": "late"}
    raw["routes"][0]["from"] = "late"
    project.config.write_text(yaml.safe_dump(raw), encoding="utf-8")
    bus = project.bus()
    try:
        assert bus.replay(dead["id"]) == "routed again to north, south"
    finally:
        bus.close()
    project.write_mapping(ROUNDED)
    result = project.run("mapping", "diff", "summary.xsl", "--json")
    assert json.loads(result.output)["reports"][0]["counts"]["differs"] == 2


# --- the migration ------------------------------------------------------------


def _columns(engine: sa.engine.Engine, table: str) -> dict[str, bool]:
    return {c["name"]: c["nullable"] for c in sa.inspect(engine).get_columns(table)}


def test_migration_0011_keeps_inputs_as_marks_that_mapping_diff_still_finds(
    project: Project,
) -> None:
    from alembic.command import downgrade

    from lienthong.migrations import alembic_config, upgrade

    project.accept(range(40))
    engine = make_engine(load(str(project.config)).bus.store.reveal())
    # Back to the store as 0010 kept it: each input a copy of its message's body.
    downgrade(alembic_config(engine), "0010")
    assert _columns(engine, "mapping_inputs") == {
        "message_id": False,
        "kept_at": False,
        "body": False,
    }
    copied = sa.text(
        "SELECT count(*) FROM mapping_inputs JOIN messages ON messages.id = message_id"
        " WHERE mapping_inputs.body = messages.body"
    )
    with engine.connect() as conn:
        assert conn.execute(copied).scalar() == 40
        kept = conn.execute(sa.text("SELECT message_id, kept_at FROM mapping_inputs")).all()

    upgrade(engine)
    declared = metadata.tables["mapping_inputs"]
    assert _columns(engine, "mapping_inputs") == {c.name: c.nullable for c in declared.columns}
    assert "body" not in _columns(engine, "mapping_inputs")  # the body is stored once
    indexed = {tuple(i["column_names"]) for i in sa.inspect(engine).get_indexes("mapping_inputs")}
    assert ("kept_at",) in indexed
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT message_id, kept_at FROM mapping_inputs")).all() == kept
    engine.dispose()

    project.write_mapping(ROUNDED)
    result = project.run("mapping", "diff", "summary.xsl", "--json")
    assert result.exit_code == 1, result.output
    [report] = json.loads(result.output)["reports"]
    assert report["counts"] == {"identical": 76, "differs": 4, "fails": 0}  # 5 and 32, twice
