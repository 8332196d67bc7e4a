"""docs/writing-an-adapter.md works as written: its code passes the contract suite and runs.

The guide's blocks marked ```LANG file=NAME are written to a fresh folder
(blocks naming the same file are joined in order) and used the way a newcomer
would: pytest on the test modules, then the package's entry points, the
``lienthong`` commands and a real run, with the outputs the guide shows. The
JSON adapter written from the guide is then broken on purpose, one rule at a
time, and the contract suite must fail naming that rule.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import sqlite3
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from lienthong.testing import AdapterContract

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "writing-an-adapter.md"
BLOCK = re.compile(r"^```(\w+) file=(\S+)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
CONSOLE = re.compile(r"^```console\n(.*?)^```$", re.MULTILINE | re.DOTALL)
#: Every check of the contract suite, and those the sqlite_table adapter cannot take part
#: in: it uses no network and logs in nowhere, and its table takes any body.
CONTRACT_TESTS = {name for name in dir(AdapterContract) if name.startswith("test_")}
NOT_FOR_SQLITE = {
    "test_a_refused_connection_is_transient",
    "test_a_timeout_is_transient",
    "test_refused_credentials_are_fatal",
    "test_keeps_secrets_out_of_errors",
    "test_rejects_a_body_the_system_cannot_take",
}


def guide_files() -> dict[str, str]:
    """Every file the guide writes, from its ``file=`` blocks in order."""
    files: dict[str, list[str]] = {}
    for _, name, text in BLOCK.findall(GUIDE.read_text(encoding="utf-8")):
        files.setdefault(name, []).append(text)
    return {name: "\n\n".join(parts) for name, parts in files.items()}


def guide_console() -> list[tuple[str, list[str]]]:
    """The commands the guide shows, each with the output lines it promises."""
    shown: list[tuple[str, list[str]]] = []
    for block in CONSOLE.findall(GUIDE.read_text(encoding="utf-8")):
        for line in block.splitlines():
            if line.startswith("$ "):
                shown.append((line[2:], []))
            elif shown:
                shown[-1][1].append(line)
    return shown


def promised(command: str, nth: int = 0) -> list[str]:
    return [out for cmd, out in guide_console() if cmd == command][nth]


def write_project(folder: Path, only: tuple[str, ...] = ()) -> Path:
    folder.mkdir()
    for name, text in guide_files().items():
        if not only or name.endswith(only):
            (folder / name).write_text(text, encoding="utf-8")
    return folder


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST_", "LIENTHONG_")) and k != "PYTHONPATH"
    }
    return {**env, **extra}


def test_the_guide_writes_the_files_it_says() -> None:
    files = guide_files()
    assert set(files) == {
        "lienthong_sqlite_table.py",
        "test_sqlite_table.py",
        "setup.cfg",
        "pyproject.toml",
        "pretend_legacy.py",
        "lienthong.yaml",
        "lienthong_onestop.py",
        "test_onestop.py",
        "onestop.yaml",
    }
    for name, start in (
        ("lienthong_sqlite_table.py", '"""SQLite table adapter:'),
        ("lienthong_onestop.py", '"""One-stop adapter:'),
    ):
        module = files[name]
        assert module.startswith(start)
        for part in ("Features:", "Connection settings:", "Options:"):
            assert part in module.split('"""')[1], f"{name}: the docstring template needs {part!r}"


def run_pytest(project: Path, report: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "lienthong", "-p", "no:cacheprovider"]
        + ["-p", "no:randomly", f"--junitxml={report}", *args],
        cwd=project,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def outcomes_in(report: Path) -> dict[tuple[str, str], tuple[str, str]]:
    """(class, test) -> (passed, skipped or failure; the failure's text)."""
    found = {}
    for case in ET.parse(report).iter("testcase"):
        child = next(iter(case), None)
        kind = "passed" if child is None else child.tag
        text = "" if child is None else (child.get("message") or "") + (child.text or "")
        found[(case.get("classname", "").rsplit(".", 1)[-1], case.get("name", ""))] = (kind, text)
    return found


def test_the_guides_adapters_pass_the_contract_suite(tmp_path: Path) -> None:
    project = write_project(tmp_path / "project", only=(".py",))
    report = tmp_path / "report.xml"
    result = run_pytest(project, report, str(project))
    assert result.returncode == 0, result.stdout + result.stderr
    outcomes = {key: kind for key, (kind, _) in outcomes_in(report).items()}
    for contract, not_run in (
        ("TestSqliteTableContract", NOT_FOR_SQLITE),
        ("TestOnestopContract", set()),
    ):
        ran = {name: kind for (cls, name), kind in outcomes.items() if cls == contract}
        assert set(ran) == CONTRACT_TESTS, f"{contract} did not run the whole suite: {ran}"
        assert {name for name, kind in ran.items() if kind == "skipped"} == not_run, ran
        assert all(kind in ("passed", "skipped") for kind in ran.values()), ran
    [summary] = promised("pytest -q")[-1:]
    passed, skipped = map(int, re.findall(r"(\d+) (?:passed|skipped)", summary))
    assert list(outcomes.values()).count("passed") == passed, (summary, outcomes)
    assert list(outcomes.values()).count("skipped") == skipped, (summary, outcomes)
    assert re.search(rf"\b{passed} passed, {skipped} skipped\b", result.stdout), result.stdout


#: Each deliberately broken variant of the guide's JSON adapter: the text replaced in
#: lienthong_onestop.py, what replaces it, the check that must fail, the rule it names.
BROKEN_ONESTOP = {
    "cursor before accept": (
        "    # --- receive: IncrementalAdapter.receive calls read() and keeps the position ---\n",
        """    def receive(self, inbox):
        cursors = self.services.cursors
        messages = list(self.read(cursors.get(self.cursor_name), self.settings["page_size"]))
        for message in messages:
            message.source = self.endpoint
        if messages:
            cursors.set(self.cursor_name, messages[-1].headers["seq"])
            inbox.accept(messages)
        return len(messages)

""",
        "test_acks_only_after_the_inbox_accepted",
        "ack-after-accept",
    ),
    "no source key": (
        "source_key=f\"{item.get('MaHoSo')}@{item['seq']}\",",
        "source_key=None,",
        "test_receives_a_message_once",
        "source-key",
    ),
    "second send repeats the effect": (
        'headers={"Idempotency-Key": key}',
        "headers={}",
        "test_sends_a_message_once",
        "sends-once",
    ),
    "timeout raised as a plain exception": (
        "transient_errors = (requests.ConnectionError, requests.Timeout)",
        "transient_errors = (requests.ConnectionError,)",
        "test_a_timeout_is_transient",
        "transient-errors",
    ),
    "secret in an error": (
        "the system refused the token (HTTP {response.status_code}). ",
        "the system refused the token {self.settings['token'].reveal()}. ",
        "test_keeps_secrets_out_of_errors",
        "secrets-stay-secret",
    ),
}


def test_each_broken_variant_of_the_guides_json_adapter_fails_naming_its_rule(
    tmp_path: Path,
) -> None:
    good = guide_files()["lienthong_onestop.py"]
    failures = {}
    for variant, (old, new, check, rule) in BROKEN_ONESTOP.items():
        assert good.count(old) == 1, f"{variant}: the guide no longer has {old!r}"
        project = tmp_path / variant.replace(" ", "-")
        write_project(project, only=("onestop.py",))
        (project / "lienthong_onestop.py").write_text(good.replace(old, new), encoding="utf-8")
        report = project / "report.xml"
        run_pytest(project, report, f"test_onestop.py::TestOnestopContract::{check}")
        kind, text = outcomes_in(report).get(("TestOnestopContract", check), ("not run", ""))
        if kind != "failure" or f"[{rule}]" not in text:
            failures[variant] = (check, rule, kind, text[:400])
    assert not failures, failures


def install_like_pip(project: Path, site: Path) -> tuple[str, str]:
    """Lay the guide's package out as pip would: the module and a dist-info with entry points."""
    cfg = configparser.ConfigParser()
    cfg.read_string((project / "setup.cfg").read_text(encoding="utf-8"))
    name, version = cfg["metadata"]["name"], cfg["metadata"]["version"]
    dist_info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8"
    )
    points = cfg["options.entry_points"]
    (dist_info / "entry_points.txt").write_text(
        "".join(f"[{group}]\n{points[group].strip()}\n\n" for group in points),
        encoding="utf-8",
    )
    for module in cfg["options"]["py_modules"].split():
        (site / f"{module}.py").write_text(
            (project / f"{module}.py").read_text(encoding="utf-8"), encoding="utf-8"
        )
    return name, version


def lienthong(
    project: Path, site: Path, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from lienthong.cli import main; main()", *args],
        cwd=project,
        env=clean_env(PYTHONPATH=str(site), **env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_guides_package_loads_checks_its_config_and_carries_a_message(
    tmp_path: Path,
) -> None:
    project = write_project(tmp_path / "project")
    site = tmp_path / "site"
    name, version = install_like_pip(project, site)

    listed = lienthong(project, site, "adapters", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    for adapter in ("sqlite_table", "onestop"):
        assert rows[adapter]["origin"] == f"entry point ({name} {version})"
        assert rows[adapter]["plugin"] == adapter
        assert rows[adapter]["capabilities"] == ["receive", "send"]

    legacy = subprocess.run(
        [sys.executable, "pretend_legacy.py"],
        cwd=project,
        env=clean_env(PYTHONPATH=str(site)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert legacy.returncode == 0, legacy.stderr

    check = lienthong(project, site, "-c", "lienthong.yaml", "config", "check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.splitlines() == promised("lienthong -c lienthong.yaml config check")

    run = lienthong(project, site, "-c", "lienthong.yaml", "run", "--once")
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == promised("lienthong -c lienthong.yaml run --once")
    with sqlite3.connect(project / "docs.db") as conn:
        bodies = [bytes(b).decode() for (b,) in conn.execute("SELECT body FROM inbox")]
    conn.close()
    assert bodies == ["<application><name>Lê Văn Tám</name></application>"]

    config = project / "lienthong.yaml"
    config.write_text(
        config.read_text(encoding="utf-8").replace("table: inbox", "tabel: inbox"),
        encoding="utf-8",
    )
    typo = lienthong(project, site, "-c", "lienthong.yaml", "config", "check")
    assert typo.returncode == 1, typo.stdout + typo.stderr
    assert typo.stdout.splitlines() == promised("lienthong -c lienthong.yaml config check", 1)


def test_config_check_judges_the_json_adapters_options_with_file_line_and_a_suggestion(
    tmp_path: Path,
) -> None:
    project = write_project(tmp_path / "project")
    site = tmp_path / "site"
    install_like_pip(project, site)
    token = {"ONESTOP_TOKEN": "motcua-token-2468"}
    check = lienthong(project, site, "-c", "onestop.yaml", "config", "check", **token)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "ok (2 endpoints, 1 routes" in check.stdout
    config = project / "onestop.yaml"
    text = config.read_text(encoding="utf-8")
    assert text.count("direction: both\n") == 1
    config.write_text(text.replace("direction: both\n", "direction: bothh\n"), encoding="utf-8")
    typo = lienthong(project, site, "-c", "onestop.yaml", "config", "check", **token)
    assert typo.returncode == 1, typo.stdout + typo.stderr
    assert typo.stdout.splitlines() == promised("lienthong -c onestop.yaml config check")
