"""The core names no plugin: plugins depend on the core, never the other way (issue 13)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "core"
#: What ``grep -rn "lienthong.plugins\|from \.\+plugins" core/`` looks for.
PLUGIN_IMPORT = re.compile(r"lienthong.plugins|from \.+plugins")


def test_no_core_module_names_a_plugin() -> None:
    found = [
        f"{path.relative_to(CORE.parent)}:{number}: {line.strip()}"
        for path in sorted(CORE.rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if PLUGIN_IMPORT.search(line)
    ]
    assert found == []


def test_the_command_line_loads_the_demo_only_when_it_runs() -> None:
    program = (
        "import sys; from lienthong import cli; group = cli.build(); "
        "print('demo' in group.commands, 'lienthong.plugins.demo.flows' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split() == ["True", "False"]
