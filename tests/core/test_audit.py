"""The audit trail: chained by hash, keyed by an HMAC key, anchored in a file outside the store.

Each attack is the one a person with write access to the database would make:
edit a record, delete the end of the trail, or edit and recompute every hash
after it (with no key, as they do not have it).
"""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from click.testing import CliRunner

from lienthong import audit
from lienthong import cli as cli_module
from lienthong.errors import ConfigError
from lienthong.message import Message
from lienthong.plugins import memory
from lienthong.store import Store, make_engine
from lienthong.store import audit as audit_table

LIENTHONG = str(Path(sys.executable).parent / "lienthong")
KEY = "b1e5d0c2a9f8e7d6c5b4a3928170615f4e3d2c1b0a9f8e7d6c5b4a3928170615"
ENDPOINTS = {"in": {"adapter": "memory"}, "out": {"adapter": "memory"}}
ROUTES = [{"name": "r", "kind": "x", "to": "out"}]


def busy_bus(lienthong_bus, **bus: Any):  # type: ignore[no-untyped-def]
    """A bus that accepted 5 messages it delivered and 1 it parked: 13 audit records, the
    first one the key's (on the embedded default, var/audit.key)."""
    memory.reset()
    bus_ = lienthong_bus(endpoints=ENDPOINTS, routes=ROUTES, bus=bus)
    memory.feed(
        "in",
        [Message(body=b"<a/>", kind="x") for _ in range(5)] + [Message(body=b"<a/>", kind="y")],
    )
    bus_.run(once=True)
    return bus_


def rows(bus) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    with bus.store.engine.connect() as conn:
        found = conn.execute(sa.select(audit_table).order_by(audit_table.c.id)).mappings()
        return [dict(r) for r in found]


def verify(bus, anchor: audit.Anchor | None = None) -> audit.Verdict:  # type: ignore[no-untyped-def]
    return audit.verify(bus.store.engine, audit_table, [bus.store.audit_key], anchor)


def rewrite_from(bus, first: int = 0) -> None:  # type: ignore[no-untyped-def]
    """Recompute every hash from record #``first`` on (plain SHA-256: no key), as someone
    who can write the database but does not hold the key would."""
    trail = rows(bus)
    before = [r for r in trail if r["id"] < first]
    previous = before[-1]["hash"] if before else audit.GENESIS
    with bus.store.engine.begin() as conn:
        for row in [r for r in trail if r["id"] >= first]:
            digest = audit.record_hash(previous, row)
            conn.execute(
                sa.update(audit_table)
                .where(audit_table.c.id == row["id"])
                .values(prev_hash=previous, hash=digest)
            )
            previous = digest


# --- the chain ---------------------------------------------------------------------


def test_an_untouched_trail_verifies_and_starts_with_the_key_record(lienthong_bus) -> None:
    bus = busy_bus(lienthong_bus)
    verdict = verify(bus)
    assert verdict.ok and verdict.records == 1 + 5 * 2 + 2
    assert verdict.keyed_from == 1
    first = rows(bus)[0]
    assert first["event"] == audit.KEY_EVENT
    assert first["detail"] == f"key {audit.key_id(bus.store.audit_key)}"
    assert bus.store.audit_key.decode() not in json.dumps(rows(bus), default=str)


def test_an_altered_record_is_named(lienthong_bus) -> None:
    bus = busy_bus(lienthong_bus)
    with bus.store.engine.begin() as conn:
        conn.execute(
            sa.update(audit_table).where(audit_table.c.id == 5).values(detail="attempt 1 (edited)")
        )
    verdict = verify(bus)
    assert verdict.broken_at == 5 and "was altered" in (verdict.problem or "")


def test_a_removed_record_is_found_at_the_next_one(lienthong_bus) -> None:
    bus = busy_bus(lienthong_bus)
    with bus.store.engine.begin() as conn:
        conn.execute(sa.delete(audit_table).where(audit_table.c.id == 8))
    verdict = verify(bus)
    assert verdict.broken_at == 9 and "removed or inserted" in (verdict.problem or "")


def test_rewriting_a_record_with_a_fresh_hash_still_breaks_the_next_link(lienthong_bus) -> None:
    bus = busy_bus(lienthong_bus)
    with bus.store.engine.begin() as conn:
        row = dict(
            conn.execute(sa.select(audit_table).where(audit_table.c.id == 4)).mappings().one()
        )
        row["detail"] = "forged"
        forged = audit.record_hash(row["prev_hash"], row)
        conn.execute(
            sa.update(audit_table).where(audit_table.c.id == 4).values(detail="forged", hash=forged)
        )
    assert verify(bus).broken_at == 4


# --- the key: recomputing every hash is caught ----------------------------------------


def test_recomputing_every_hash_after_an_edit_is_caught_by_the_key(lienthong_bus) -> None:
    bus = busy_bus(lienthong_bus)
    with bus.store.engine.begin() as conn:
        conn.execute(sa.update(audit_table).where(audit_table.c.id == 6).values(detail="attempt 9"))
    rewrite_from(bus, 6)  # plain SHA-256: the attacker has no key
    verdict = verify(bus)
    assert verdict.broken_at == 6
    assert "altered after it was written (or written without the audit key)" in verdict.problem


def test_a_trail_rewritten_whole_without_its_key_record_is_caught(lienthong_bus) -> None:
    bus = busy_bus(lienthong_bus)
    with bus.store.engine.begin() as conn:
        conn.execute(sa.delete(audit_table).where(audit_table.c.event == audit.KEY_EVENT))
    rewrite_from(bus)  # from the genesis: the first record is now #2
    assert audit.verify(bus.store.engine, audit_table).ok, "a plain chain, consistent in itself"
    verdict = verify(bus)
    assert not verdict.ok and verdict.records == 12
    assert "no record of the trail was written with the audit key" in verdict.problem


def test_a_key_record_of_an_unknown_key_is_refused(lienthong_bus) -> None:
    bus = busy_bus(lienthong_bus)
    forged_key = b"f" * 64
    with bus.store.engine.begin() as conn:
        conn.execute(sa.delete(audit_table).where(audit_table.c.id >= 10))
        # As if someone started "their own" keyed part, to write what they like after it.
        conn.execute(
            sa.insert(audit_table),
            audit.chain(conn, audit_table, [dict(rows(bus)[1], message_id="m")], forged_key),
        )
    verdict = verify(bus)
    assert verdict.broken_at == 10
    assert f"kept with a key this check does not have (key id {audit.key_id(forged_key)}" in (
        verdict.problem or ""
    )


# --- the anchor: cutting the end is caught -----------------------------------------------


def test_deleting_the_tail_is_caught_by_the_anchor(lienthong_bus) -> None:
    bus = busy_bus(lienthong_bus)
    anchor = bus.anchor.export()
    assert anchor is not None and (anchor.records, anchor.last_id) == (13, 13)
    with bus.store.engine.begin() as conn:
        conn.execute(sa.delete(audit_table).where(audit_table.c.id >= 5))
    assert verify(bus).ok, "the chain alone cannot see a cut end"
    verdict = verify(bus, audit.read_anchor(bus.config.bus.anchor_path))
    assert not verdict.ok and verdict.records == 4
    assert "names record #13 with 13: records were removed from the end" in verdict.problem


def test_without_a_key_a_rewritten_trail_is_caught_by_the_anchor(
    lienthong_bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As a production worker without bus.audit_key would write it: plain SHA-256.
    monkeypatch.setattr(audit, "load_key", lambda *args, **kwargs: None)
    bus = busy_bus(lienthong_bus)
    anchor = bus.anchor.export()
    with bus.store.engine.begin() as conn:
        conn.execute(sa.update(audit_table).where(audit_table.c.id == 3).values(detail="x"))
    rewrite_from(bus, 3)
    assert audit.verify(bus.store.engine, audit_table).ok, "the chain alone is fooled"
    verdict = audit.verify(bus.store.engine, audit_table, (), anchor)
    assert verdict.broken_at == 12
    assert "is not the head the anchor" in verdict.problem and "rewritten" in verdict.problem


def test_the_anchor_follows_the_head_and_is_never_moved_back(lienthong_bus, caplog) -> None:
    bus = busy_bus(lienthong_bus, audit_anchor_seconds=0.05)
    path = bus.config.bus.anchor_path
    memory.feed("in", [Message(body=b"<a/>", kind="x")])
    bus.run(once=True)

    def anchored() -> int:
        found = audit.read_anchor(path)
        return found.last_id if found else 0

    _wait_for(lambda: anchored() == 15, "the keeper thread writes the new head")
    with bus.store.engine.begin() as conn:
        conn.execute(sa.delete(audit_table).where(audit_table.c.id >= 10))
    with caplog.at_level(logging.ERROR, logger="lienthong.audit"):
        _wait_for(
            lambda: any("does not match its anchor" in r.getMessage() for r in caplog.records),
            "the keeper notices the cut",
        )
    memory.feed("in", [Message(body=b"<a/>", kind="x")])
    bus.run(once=True)  # the trail grows past #15 again, from a cut chain
    bus.anchor.stop()
    assert audit.read_anchor(path).last_id == 15, "the anchor is evidence: left as it was"


def test_the_anchor_is_written_at_stop_and_logged(lienthong_bus, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="lienthong.audit"):
        bus = busy_bus(lienthong_bus)
        bus.close()
    anchor = audit.read_anchor(bus.config.bus.anchor_path)
    assert anchor is not None and anchor.records == 13
    assert any(
        f"audit anchor: 13 records, head #13 {anchor.hash}" in r.getMessage()
        for r in caplog.records
    )


def _wait_for(condition, what: str, seconds: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    import time

    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out: {what}"
        time.sleep(0.02)


# --- where the key comes from --------------------------------------------------------------


def test_the_embedded_default_makes_its_key_once_readable_by_the_owner_only(
    lienthong_bus, tmp_path: Path
) -> None:
    bus = busy_bus(lienthong_bus)
    key_file = tmp_path / "var/audit.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_text().strip().encode() == bus.store.audit_key
    assert len(bus.store.audit_key) == 64
    again = lienthong_bus(endpoints=ENDPOINTS, routes=ROUTES)
    assert again.store.audit_key == bus.store.audit_key, "made once, then read"


def test_a_configured_key_is_used_and_no_key_file_is_made(
    lienthong_bus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LT_AUDIT_KEY", KEY)
    bus = busy_bus(lienthong_bus, audit_key={"env": "LT_AUDIT_KEY"})
    assert bus.store.audit_key == KEY.encode()
    assert not (tmp_path / "var/audit.key").exists()
    assert verify(bus).ok


def test_a_short_key_is_refused(lienthong_bus, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LT_AUDIT_KEY", "hunter2")
    with pytest.raises(ConfigError, match="is 7 characters; an audit key needs at least 32"):
        lienthong_bus(endpoints=ENDPOINTS, bus={"audit_key": {"env": "LT_AUDIT_KEY"}})


def test_a_worker_without_the_key_refuses_to_write_plain_records_after_keyed_ones(
    lienthong_bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    busy_bus(lienthong_bus)
    monkeypatch.setattr(audit, "load_key", lambda *args, **kwargs: None)
    with pytest.raises(ConfigError, match="bus.audit_key is not set, but the audit trail is keyed"):
        lienthong_bus(endpoints=ENDPOINTS, routes=ROUTES)


def test_a_new_key_starts_a_new_part_and_verify_needs_both(
    lienthong_bus, tmp_path: Path, caplog
) -> None:
    old = busy_bus(lienthong_bus)
    old.close()
    old_key = tmp_path / "old.key"
    (tmp_path / "var/audit.key").rename(old_key)
    with caplog.at_level(logging.WARNING, logger="lienthong.audit"):
        new = busy_bus(lienthong_bus)
    assert any("written with another key" in r.getMessage() for r in caplog.records)
    assert new.store.audit_key != old.store.audit_key
    verdict = verify(new)
    assert verdict.broken_at == 1 and "key this check does not have" in verdict.problem
    both = audit.verify(
        new.store.engine,
        audit_table,
        [new.store.audit_key, old_key.read_text().strip().encode()],
    )
    assert both.ok and both.records == 13 + 1 + 12


# --- concurrently: one chain, one key record ------------------------------------------------


@pytest.mark.server
def test_workers_writing_at_once_on_postgresql_keep_one_keyed_chain(
    pg_url: str, lienthong_bus, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pg_url first: its schema is dropped only after the buses are closed.
    monkeypatch.setenv("LT_AUDIT_KEY", KEY)
    memory.reset()
    Store(make_engine(pg_url)).upgrade()
    settings = {"store": pg_url, "audit_key": {"env": "LT_AUDIT_KEY"}}
    endpoints = {f"in-{unique}": {"adapter": "memory"}, f"out-{unique}": {"adapter": "memory"}}
    routes = [{"name": "r", "to": f"out-{unique}"}]
    first = lienthong_bus(endpoints=endpoints, routes=routes, bus=settings)
    second = lienthong_bus(endpoints=endpoints, routes=routes, bus=settings)
    start = threading.Barrier(2)

    def accept(bus) -> None:  # type: ignore[no-untyped-def]
        start.wait()
        for _ in range(20):
            bus.accept([Message(body=b"<a/>") for _ in range(5)])

    threads = [threading.Thread(target=accept, args=(b,)) for b in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    verdict = verify(first)
    assert verdict.ok and verdict.records == 1 + 2 * 20 * 5
    assert [r["event"] for r in rows(first)].count(audit.KEY_EVENT) == 1


# --- the command ------------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "in").mkdir()
    for i in range(3):
        (tmp_path / f"in/a{i}.xml").write_bytes(b"<a/>")
    config = {
        "bus": {"store": "sqlite:///var/bus.db", "var_dir": "var"},
        "endpoints": {
            "in": {"adapter": "folder", "path": "in"},
            "out": {"adapter": "folder", "path": "out", "direction": "out"},
        },
        "routes": [{"name": "copy", "from": "in", "to": ["out"]}],
    }
    (tmp_path / "lienthong.yaml").write_text(yaml.safe_dump(config))
    return tmp_path


def command(project: Path, *args: str):  # type: ignore[no-untyped-def]
    config = str(project / "lienthong.yaml")
    return CliRunner().invoke(cli_module.cli, ["--config", config, *args])


def test_audit_verify_reports_the_key_and_the_anchor_then_a_cut_end(project: Path) -> None:
    assert command(project, "run", "--once").exit_code == 0
    intact = command(project, "audit", "verify")
    assert intact.exit_code == 0, intact.output
    assert intact.output.startswith("audit trail intact: 7 records\n")
    assert "keyed (key id " in intact.output and "from record #1" in intact.output
    assert "its end matches the anchor of " in intact.output

    engine = sa.create_engine(f"sqlite:///{project / 'var/bus.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("delete from audit where id >= 5"))
    engine.dispose()
    cut = command(project, "audit", "verify")
    assert cut.exit_code == 1
    assert "names record #7 with 7: records were removed from the end" in cut.output

    elsewhere = project / "copy-of-the-anchor.json"
    os.replace(project / "var/audit.anchor", elsewhere)
    without = command(project, "audit", "verify")
    assert without.exit_code == 0 and "no anchor at" in without.output
    assert command(project, "audit", "verify", "--anchor", str(elsewhere)).exit_code == 1


def test_audit_verify_takes_an_earlier_key(project: Path) -> None:
    assert command(project, "run", "--once").exit_code == 0
    old = project / "old.key"
    os.replace(project / "var/audit.key", old)
    os.remove(project / "var/audit.anchor")
    (project / "in/b.xml").write_bytes(b"<b/>")
    assert command(project, "run", "--once").exit_code == 0  # a new key, a new part
    alone = command(project, "audit", "verify")
    assert alone.exit_code == 1 and "key this check does not have" in alone.output
    both = command(project, "audit", "verify", "--key-file", str(old))
    assert both.exit_code == 0, both.output


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_audit_verify_checks_against_the_anchor_line_of_a_log_kept_elsewhere(
    project: Path, log_format: str
) -> None:
    flags = ["--log-json"] if log_format == "json" else []
    ran = subprocess.run(
        [LIENTHONG, "--config", str(project / "lienthong.yaml"), *flags, "run", "--once"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    kept = project / "journal.log"  # as shipped to a log collector
    kept.write_text(ran.stderr)
    assert "audit anchor: 7 records, head #7 " in ran.stderr
    os.remove(project / "var/audit.anchor")  # whoever cut the trail removed this too

    engine = sa.create_engine(f"sqlite:///{project / 'var/bus.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("delete from audit where id >= 6"))
    engine.dispose()
    cut = command(project, "audit", "verify", "--anchor", str(kept))
    assert cut.exit_code == 1, cut.output
    assert "names record #7 with 7: records were removed from the end" in cut.output
    assert "the anchor of 20" in cut.output, "dated from the log line"
