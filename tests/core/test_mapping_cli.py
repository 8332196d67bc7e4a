"""The ``lienthong mapping lineage`` command, end to end through click."""

from __future__ import annotations

import json
from pathlib import Path

import click.testing
from click.testing import CliRunner

from lienthong import cli as cli_module

REPO = Path(__file__).resolve().parents[2]
CASE = REPO / "mappings/onestop/application-to-receipt.cases/basic"


def run(*args: str) -> click.testing.Result:
    return CliRunner().invoke(cli_module.cli, ["mapping", *args])


def lineage(*args: str) -> click.testing.Result:
    return run(
        "lineage",
        "--root",
        str(REPO / "mappings"),
        "onestop/application-to-receipt.xsl",
        str(CASE / "input.xml"),
        *args,
    )


def test_lineage_prints_each_output_value_and_its_source() -> None:
    result = lineage("-p", "issuer=000.00.00.H41")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "/receipt[1]/issuer[1]/text() = '000.00.00.H41' <- $issuer (copy)" in lines
    assert (
        "/receipt[1]/caseNumber[1]/text() = 'HS-2026-000123' <- /application[1]/@id (copy)" in lines
    )
    assert (
        "/receipt[1]/receivedOn[1]/text() = '2026/11/27' <- /application[1]/submitted[1]/text() (derived)"
        in lines
    )
    assert "/receipt[1]/documents[1]/@count = '2' <- computed" in lines


def test_lineage_as_json() -> None:
    result = lineage("--param", "issuer=X", "--json")
    assert result.exit_code == 0, result.output
    rows = {row["path"]: row for row in json.loads(result.output)}
    assert rows["/receipt[1]/procedure[1]/text()"] == {
        "path": "/receipt[1]/procedure[1]/text()",
        "value": "1.001234",
        "how": "copy",
        "sources": ["/application[1]/procedure[1]/@code"],
        "alike": False,
    }
    assert rows["/receipt[1]/documents[1]/@count"]["sources"] == []


def test_lineage_refuses_a_param_without_a_value() -> None:
    result = lineage("-p", "issuer")
    assert result.exit_code == 2 and "'issuer' is not key=value" in result.output


def test_lineage_of_an_unknown_mapping_suggests_the_close_one() -> None:
    result = run(
        "lineage",
        "--root",
        str(REPO / "mappings"),
        "onestop/application-to-reciept.xsl",
        str(CASE / "input.xml"),
    )
    assert result.exit_code == 4
    assert "Did you mean 'onestop/application-to-receipt.xsl'" in result.output


def test_lineage_of_an_input_the_mapping_rejects_exits_1(tmp_path: Path) -> None:
    wrong = tmp_path / "staff.xml"
    wrong.write_text("<NotStaff/>")
    result = run(
        "lineage",
        "--root",
        str(REPO / "mappings"),
        "directory/staff-list-to-records.xsl",
        str(wrong),
    )
    assert result.exit_code == 1
    assert "expected a DuLieuCanBo export, got <NotStaff>" in result.output
