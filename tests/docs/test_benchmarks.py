"""benchmarks/run_all.py runs a benchmark, reads its RESULT line and writes the table."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture
def run_all(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location("run_all", BENCHMARKS / "run_all.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "run_all", module)  # dataclasses look it up there
    spec.loader.exec_module(module)
    return module


def test_a_quick_run_of_the_bus_benchmark_writes_a_row_with_a_ratio(tmp_path: Path) -> None:
    output = tmp_path / "RESULTS.md"
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "run_all.py"), "--quick", "--only", "bus"]
        + ["--output", str(output)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    text = output.read_text(encoding="utf-8")
    assert "- mode: quick" in text and "- cores: " in text and "lxml " in text
    [row] = [line for line in text.splitlines() if line.startswith("| `bus.embedded`")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    figure, baseline, ratio = (float(re.sub(r"[^\d.]", "", c.split()[0])) for c in cells[1:4])
    assert figure > 0 and baseline > 0
    # The table shows the ratio to two decimals: 0.1945 is written 0.19 or 0.20.
    assert ratio == pytest.approx(figure / baseline, abs=0.006)
    assert (
        cells[4] == "`python benchmarks/bench_bus.py --messages 300 --rounds 1 --skip-production`"
    )


def test_every_benchmark_in_the_folder_is_run(run_all: ModuleType) -> None:
    scripts = {b.script for b in run_all.BENCHMARKS}
    assert scripts == {p.name for p in BENCHMARKS.glob("bench_*.py")}
    for script in scripts:
        assert "RESULT" in (BENCHMARKS / script).read_text(encoding="utf-8"), script


def test_result_lines_parse_and_bad_ones_are_named(run_all: ModuleType) -> None:
    parse = run_all.parse_result
    fields = parse("RESULT name=x.y figure=12.5 unit=msg/s baseline=25 ratio=0.5 'label=a b'")
    assert fields["label"] == "a b" and fields["ratio"] == "0.5"
    with pytest.raises(ValueError, match="lacks baseline, ratio: 'RESULT name=x"):
        parse("RESULT name=x figure=1 unit=s")
    with pytest.raises(ValueError, match="figure is not a number: 'fast'"):
        parse("RESULT name=x figure=fast unit=s baseline=1 ratio=1")
    with pytest.raises(ValueError, match="cannot be split"):
        parse("RESULT name='x")
    with pytest.raises(ValueError, match="key=value"):
        parse("RESULT name=x figure")
