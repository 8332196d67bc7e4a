"""benchmarks/bench_mapping_diff.py runs, finds exactly the affected messages and prints its ratio."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks/bench_mapping_diff.py"


def test_a_small_run_finds_the_affected_messages_and_prints_a_result() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--messages", "1000", "--rounds", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "963 identical, 37 differ, 0 now fail" in done.stdout
    assert "/summary[1]/@refunds: added '1'" in done.stdout
    [line] = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
    fields = dict(item.split("=", 1) for item in shlex.split(line)[1:])
    assert fields["name"] == "mapping.diff" and fields["unit"] == "msg/s"
    assert float(fields["ratio"]) == round(float(fields["figure"]) / float(fields["baseline"]), 3)
