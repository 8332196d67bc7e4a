"""The one-stop year benchmark runs in its quick form and reports a figure beside its baseline."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.mark.slow
def test_the_quick_year_benchmark_prints_rates_and_a_ratio() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_onestop.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "1,000 dossiers x 5 steps = 6,000 portal calls" in done.stdout
    [line] = [x for x in done.stdout.splitlines() if x.startswith("RESULT name=onestop.embedded")]
    fields = dict(part.split("=", 1) for part in shlex.split(line)[1:])
    figure, baseline, ratio = (float(fields[k]) for k in ("figure", "baseline", "ratio"))
    assert figure > 0 and baseline > 0
    assert ratio == pytest.approx(figure / baseline, rel=0.01)
    assert "dossiers/s" in fields["label"] and "steps/s" in fields["label"]
    assert "min for the year" in fields["label"]
