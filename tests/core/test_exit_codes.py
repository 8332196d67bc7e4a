"""One exit-code table and one error prefix for every command (lienthong.exits, docs/cli.md)."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from lienthong import cli as cli_module
from lienthong.exits import PREFIX, Exit

#: Each command that reads the config, with arguments that get it that far.
READS_CONFIG: dict[str, list[str]] = {
    "audit verify": [],
    "console": ["--port", "0"],
    "console adduser": ["someone", "--role", "viewer", "--password", "pw"],
    "db cleanup": ["--older-than", "400"],
    "db upgrade": [],
    "demo": ["--once"],
    "dlq list": [],
    "dlq purge": ["1", "--yes"],
    "dlq replay": ["1"],
    "dlq show": ["1"],
    "edxml certs": [],
    "edxml history": ["000.00.00.H41,2026/01/02,1/QĐ-UBND"],
    "edxml overdue": ["--days", "1"],
    "jobs": [],
    "mapping apply": ["x.xsl", "{file}"],
    "mapping lineage": ["x.xsl", "{file}"],
    "mapping versions": ["x.xsl"],
    "mapping diff": ["x.xsl"],
    "mapping test": [],
    "run": ["--once"],
    "status": [],
    "sync approve": ["1"],
    "sync report": ["1"],
    "sync run": ["nightly"],
    "sync runs": [],
    "trace": ["some-message"],
}
#: Commands that read no config, or whose finding a bad config is.
OTHERS = {
    "adapters": "lists the plugins that loaded; reads no config",
    "config check": "reports the config's problems as its finding: exit 1 (PROBLEMS)",
    "edxml show": "reads a file, not the config",
    "edxml sign": "reads a file, not the config",
    "edxml validate": "reads a file, not the config",
    "edxml verify": "reads a file, not the config",
}


def commands(group: click.Group, path: tuple[str, ...] = ()) -> set[str]:
    """Every command a user can run: the leaves, and groups that run on their own."""
    found = {" ".join(path)} if path and group.invoke_without_command else set()
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found |= commands(command, (*path, name))
        else:
            found.add(" ".join((*path, name)))
    return found


@pytest.fixture
def bad_config(tmp_path: Path) -> Path:
    path = tmp_path / "lienthong.yaml"
    path.write_text(
        "bus: {store: 'sqlite:///bus.db', broker: embedded}\n"
        "endpoints:\n  in: {adapter: foldr, path: in}\nroutes: []\n"
    )
    (tmp_path / "a.xml").write_text("<a/>")
    return path


def invoke(config: Path, command: str, args: list[str]) -> Result:
    file = str(config.parent / "a.xml")
    argv = ["--config", str(config), *command.split(), *(a.format(file=file) for a in args)]
    return CliRunner().invoke(cli_module.build(), argv)


def test_every_command_is_in_the_table_test() -> None:
    assert commands(cli_module.build()) == set(READS_CONFIG) | set(OTHERS)


@pytest.mark.parametrize("command", sorted(READS_CONFIG))
def test_a_bad_config_exits_4_with_one_error_line(bad_config: Path, command: str) -> None:
    result = invoke(bad_config, command, READS_CONFIG[command])
    assert result.exit_code == Exit.CONFIG == 4, result.output
    assert result.output.startswith(f"{PREFIX}1 configuration problem")
    assert "Did you mean 'folder'" in result.output


def test_status_and_jobs_exit_alike_when_the_store_is_unreachable(tmp_path: Path) -> None:
    config = tmp_path / "lienthong.yaml"
    config.write_text(
        "bus: {store: 'postgresql+psycopg://lienthong@127.0.0.1:1/none', broker: embedded}\n"
        "endpoints: {}\nroutes: []\n"
    )
    status = invoke(config, "status", [])
    jobs = invoke(config, "jobs", [])
    assert status.exit_code == jobs.exit_code == Exit.UNAVAILABLE == 3, status.output + jobs.output
    assert status.output.startswith(PREFIX) and jobs.output.startswith(PREFIX)


def test_wrong_usage_exits_2_with_the_same_prefix(bad_config: Path) -> None:
    result = invoke(bad_config, "db cleanup", [])
    assert result.exit_code == Exit.USAGE == 2
    assert f"\n{PREFIX}Missing option '--older-than'" in result.output
    assert "Error:" not in result.output
    top = CliRunner().invoke(cli_module.build(), ["--no-such-option"])
    assert top.exit_code == 2 and f"{PREFIX}No such option" in top.output


def test_a_click_error_of_a_plugin_command_has_the_prefix(bad_config: Path) -> None:
    result = invoke(bad_config, "edxml show", ["{file}"])
    assert result.exit_code == Exit.PROBLEMS
    assert result.output.startswith(f"{PREFIX}") and "not an edXML message" in result.output
