"""A bounded run: 'run --once --max-seconds N' ends at its bound and says what it left.

A source that never runs dry (a folder some system keeps writing to) would
keep 'run --once' busy forever; with a bound the run ends after the cycle that
reaches it, reports that it stopped there, and the next run goes on: nothing
is lost between them.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from click.testing import CliRunner

from lienthong import cli as cli_module
from lienthong.message import Message
from lienthong.plugins import memory
from tests.busproject import REPO


def test_a_bounded_run_ends_at_its_bound_and_the_next_run_goes_on(lienthong_bus) -> None:  # type: ignore[no-untyped-def]
    memory.reset()
    bus = lienthong_bus(
        endpoints={"in": {"adapter": "memory", "batch": 10}, "out": {"adapter": "memory"}},
        routes=[{"name": "r", "from": "in", "to": ["out"]}],
        time_limit=60,
    )
    memory.feed("in", [Message(body=f"<m n='{n}'/>".encode()) for n in range(5000)])
    started = time.monotonic()
    first = bus.run(once=True, max_seconds=0.3)
    took = time.monotonic() - started
    assert first.bounded == 0.3, "the run says it ended at its bound"
    assert took < 5, "it ended soon after the bound, not when the source ran dry"
    assert 0 < first.delivered < 5000
    rest = bus.run(once=True)  # the next run takes up what was left
    assert rest.bounded is None
    assert first.received + rest.received == 5000
    assert len(memory.delivered("out")) == 5000, "every message delivered once"


def test_the_command_reports_the_bound_and_what_is_pending(tmp_path: Path) -> None:
    shutil.copytree(REPO / "config", tmp_path / "config")
    shutil.copytree(REPO / "mappings", tmp_path / "mappings")
    inbox = tmp_path / "var/onestop/outbox"
    inbox.mkdir(parents=True)
    sample = next(
        p for p in (REPO / "config/samples").glob("*.xml") if "BROKEN" not in p.read_text()
    )

    for n in range(3000):  # more than one run drains in the bound
        (inbox / f"application-{n:06d}.xml").write_bytes(sample.read_bytes())
    result = CliRunner().invoke(
        cli_module.cli,
        [
            "--config",
            str(tmp_path / "config/lienthong.yaml"),
            "run",
            "--once",
            "--max-seconds",
            "0.5",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "stopped at the bound of 0.5 s with" in result.output
    assert "the next run goes on from there" in result.output


def test_the_bound_must_be_positive(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli_module.cli, ["run", "--once", "--max-seconds", "0"])
    assert result.exit_code == 2 and "--max-seconds" in result.output
