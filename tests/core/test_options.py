"""Options that config check can judge: types, choices, ranges, patterns and validators.

Every problem is reported by ``config check`` with its file and line, before any
adapter starts, and ``lienthong adapters --options NAME`` shows the same rules.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner

from lienthong import cli as cli_module
from lienthong import config
from lienthong.adapter import Adapter, Capability, Option, resolve_options
from lienthong.errors import ConfigError
from lienthong.hookspecs import hookimpl
from lienthong.host import PluginHost


def even(value: int) -> None:
    """An even number."""
    if value % 2:
        raise ValueError(f"must be even, got {value}")


class Gate(Adapter):
    """An adapter that only declares options, for these tests."""

    name = "gate"
    summary = "Options under test."
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.SEND})
    options = (
        Option("direction", "in, out or both", default="in", choices=("in", "out", "both")),
        Option("port", "a TCP port", default=80, type=int, minimum=1, maximum=65535),
        Option("ratio", "a share", default=0.5, type=float, minimum=0, maximum=1),
        Option("code", "an agency code", default="000.00.00.H41", pattern=r"[0-9A-Z.]+"),
        Option("pairs", "how many pairs", default=2, type=int, validator=even),
        Option("strict", "refuse more", default=False, type=bool),
    )


class GatePlugin:
    @hookimpl
    def lienthong_register_adapters(self, register: Any) -> None:
        register(Gate)


def problems(**raw: Any) -> list[str]:
    return [str(p) for p in resolve_options(Gate, raw, "endpoints.gate")[1]]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            {"direction": "bothh"},
            "endpoints.gate.direction: expected one of 'in', 'out', 'both', got 'bothh'. "
            "Did you mean 'both'?",
        ),
        ({"direction": "sideways"}, "expected one of 'in', 'out', 'both', got 'sideways'."),
        ({"port": 0}, "endpoints.gate.port: must be at least 1, got 0"),
        ({"port": 70000}, "must be at most 65535, got 70000"),
        ({"port": "http"}, "endpoints.gate.port: expected a whole number, got 'http'"),
        ({"port": 80.5}, "expected a whole number, got 80.5"),
        ({"ratio": 2}, "endpoints.gate.ratio: must be at most 1, got 2.0"),
        ({"code": "h41 ; drop"}, "'h41 ; drop' does not match the pattern [0-9A-Z.]+"),
        ({"pairs": 3}, "endpoints.gate.pairs: must be even, got 3"),
        ({"strict": "maybe"}, "expected true or false, got 'maybe'"),
        ({"strict": 1}, "expected true or false, got int 1"),
    ],
)
def test_a_value_outside_its_rules_is_a_problem_that_says_what_fits(
    raw: dict[str, Any], expected: str
) -> None:
    [problem] = problems(**raw)
    assert expected in problem


def test_values_within_the_rules_pass_and_are_typed() -> None:
    settings, found = resolve_options(
        Gate, {"direction": "both", "port": "443", "ratio": 1, "pairs": 4, "strict": "yes"}, "e"
    )
    assert found == []
    assert settings["port"] == 443 and settings["ratio"] == 1.0 and settings["strict"] is True


def test_every_problem_is_reported_at_once() -> None:
    assert len(problems(direction="x", port=0, pairs=1, prot=8)) == 4


def test_a_value_that_breaks_a_rule_is_still_in_the_settings() -> None:
    """Code that builds an adapter despite the problems sees what the file said."""
    settings, found = resolve_options(Gate, {"direction": "bothh"}, "e")
    assert found and settings["direction"] == "bothh"


def test_the_rules_in_words() -> None:
    words = {o.name: o.rules() for o in Gate.options}
    assert words == {
        "direction": "one of: in, out, both",
        "port": "1 to 65535",
        "ratio": "0 to 1",
        "code": "matches [0-9A-Z.]+",
        "pairs": "An even number",
        "strict": "",
    }


def test_config_check_reports_an_option_outside_its_choices_with_file_and_line(
    tmp_path: Path,
) -> None:
    host = PluginHost(load_entry_points=False)
    host.add(GatePlugin(), "gate")
    host.refresh()
    path = tmp_path / "lienthong.yaml"
    path.write_text(
        "endpoints:\n  out:\n    adapter: gate\n    direction: bothh\n    port: 0\nroutes: []\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        config.load(path, host=host)
    text = str(caught.value)
    assert (
        f"{path}:4 endpoints.out.direction: expected one of 'in', 'out', 'both', got 'bothh'. "
        "Did you mean 'both'?" in text
    )
    assert f"{path}:5 endpoints.out.port: must be at least 1, got 0" in text


def test_config_check_command_reports_a_misspelt_folder_direction(tmp_path: Path) -> None:
    path = tmp_path / "lienthong.yaml"
    path.write_text(
        "endpoints:\n  drop:\n    adapter: folder\n    path: in\n    direction: outt\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(cli_module.cli, ["--config", str(path), "config", "check"])
    assert result.exit_code == 1, result.output
    assert (
        f"{path}:5 endpoints.drop.direction: expected one of 'in', 'out', 'sync', got 'outt'. "
        "Did you mean 'out'?" in result.output
    )
    assert not (tmp_path / "in").exists(), "no adapter started: the folder was not created"


def adapters(*args: str) -> Any:
    return CliRunner().invoke(cli_module.cli, ["adapters", *args])


def test_adapters_options_lists_defaults_rules_and_descriptions() -> None:
    shown = adapters("--options", "folder")
    assert shown.exit_code == 0, shown.output
    assert "direction" in shown.output and "one of:" in shown.output
    data = json.loads(adapters("--options", "folder", "--json").output)
    assert data["name"] == "folder"
    options = {o["name"]: o for o in data["options"]}
    assert options["path"]["required"] is True
    assert options["direction"]["default"] == "in"
    assert options["direction"]["choices"] == ["in", "out", "sync"]
    assert options["batch"] == {
        "name": "batch",
        "type": "int",
        "required": False,
        "default": 200,
        "secret": False,
        "choices": [],
        "minimum": 1,
        "maximum": None,
        "pattern": None,
        "rules": "at least 1",
        "example": None,
        "description": "files handed to the bus per poll",
    }
    every = json.loads(adapters("--options", "all", "--json").output)
    assert {"folder", "memory", "axis", "accounting_soap", "email_directory"} <= {
        a["name"] for a in every
    }


def test_adapters_options_of_an_unknown_adapter_suggests_the_name() -> None:
    result = adapters("--options", "foldr")
    assert result.exit_code == 2
    assert "Unknown adapter 'foldr'. Did you mean 'folder'?" in result.output


def test_a_secret_option_says_how_to_give_it() -> None:
    table = adapters("--options", "axis", "--markdown").output
    assert (
        "| `secret` | str | required |  | the shared secret for the request HMAC; a secret: "
        in table
    )
    assert "`{env: NAME}` or `{file: PATH}`; e.g. `{env: AXIS_SECRET}` |" in table
