"""Run every benchmark in this folder and write their figures to one table, RESULTS.md.

Each ``bench_*.py`` runs as its own process (so one's memory and threads never
colour another's figure) and ends with machine-readable lines::

    RESULT name=bus.embedded figure=2710.4 unit=msg/s baseline=4127.9 ratio=0.657 ...

(``shlex`` quoting; ``label``, ``baseline_of`` and ``ratio_of`` say what the
numbers are). The table has the figure, the raw baseline measured in the same
run on the same data, the ratio, the exact command, and the machine it ran on.

Usage: python benchmarks/run_all.py [--quick] [--only bus soap ...] [--output PATH]

``--quick`` runs smaller sizes (a smoke run, a minute or two); its figures are
noisier and not comparable with a full run's.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
REQUIRED = ("name", "figure", "unit", "baseline", "ratio")
SKIPPED = 2


@dataclass(frozen=True)
class Benchmark:
    """One benchmark script and its arguments for a full and a quick run."""

    name: str
    script: str
    full: tuple[str, ...] = ()
    quick: tuple[str, ...] = ()


BENCHMARKS = (
    Benchmark(
        "bus", "bench_bus.py", (), ("--messages", "300", "--rounds", "1", "--skip-production")
    ),
    Benchmark("edxml", "bench_edxml.py"),
    Benchmark("soap", "bench_soap.py", (), ("--calls", "30", "--rounds", "1")),
    Benchmark("directory", "bench_directory.py", (), ("--accounts", "2000", "--repeat", "1")),
    Benchmark("mapping-diff", "bench_mapping_diff.py", (), ("--messages", "1000", "--rounds", "1")),
    Benchmark(
        "console", "bench_console.py", (), ("--messages", "5000", "--dead", "500", "--repeat", "3")
    ),
    Benchmark("onestop", "bench_onestop.py", (), ("--quick",)),
)


@dataclass
class Outcome:
    """What one benchmark run printed, parsed."""

    benchmark: Benchmark
    command: str
    seconds: float
    returncode: int
    results: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """Exit code 2 is a benchmark's "cannot run here" (a missing binary): a skip."""
        if self.returncode == SKIPPED:
            return False
        return self.returncode != 0 or not self.results


def parse_result(line: str) -> dict[str, str]:
    """The fields of one ``RESULT key=value ...`` line; a malformed line is an error naming it."""
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise ValueError(f"RESULT line cannot be split ({exc}): {line!r}") from exc
    if not words or words[0] != "RESULT" or not all("=" in w for w in words[1:]):
        raise ValueError(f"not a RESULT line of key=value pairs: {line!r}")
    fields = dict(w.split("=", 1) for w in words[1:])
    missing = [k for k in REQUIRED if not fields.get(k)]
    if missing:
        raise ValueError(f"RESULT line lacks {', '.join(missing)}: {line!r}")
    for key in ("figure", "baseline", "ratio"):
        try:
            float(fields[key])
        except ValueError as exc:
            raise ValueError(f"RESULT {key} is not a number: {fields[key]!r} in {line!r}") from exc
    return fields


def run(benchmark: Benchmark, quick: bool, timeout: float) -> Outcome:
    args = benchmark.quick if quick else benchmark.full
    argv = [sys.executable, str(HERE / benchmark.script), *args]
    shown = shlex.join(["python", f"benchmarks/{benchmark.script}", *args])
    print(f"--- {shown}", file=sys.stderr, flush=True)
    start = time.perf_counter()
    try:
        done = subprocess.run(
            argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return Outcome(
            benchmark,
            shown,
            time.perf_counter() - start,
            -1,
            notes=[f"timed out after {timeout:.0f} s"],
        )
    outcome = Outcome(benchmark, shown, time.perf_counter() - start, done.returncode)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            try:
                outcome.results.append(parse_result(line))
            except ValueError as exc:
                outcome.notes.append(str(exc))
        else:
            print(f"    {line}", file=sys.stderr)
            if "skipped" in line:
                outcome.notes.append(line.strip())
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        outcome.notes.append(f"exit code {done.returncode}: {last}")
    elif not outcome.results:
        outcome.notes.append("printed no RESULT line")
    return outcome


def machine() -> list[tuple[str, str]]:
    """What the figures depend on: CPU, cores, memory, Python and the libraries on the path."""
    cpu = _proc_field("/proc/cpuinfo", "model name") or platform.processor() or "unknown"
    mem = _proc_field("/proc/meminfo", "MemTotal")
    memory = f"{int(mem.split()[0]) / 1024 / 1024:.1f} GiB" if mem else "unknown"
    versions = []
    for package in ("lxml", "kombu", "SQLAlchemy", "zeep"):
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{package} not installed")
    return [
        ("CPU", cpu),
        ("cores", str(os.cpu_count())),
        ("memory", memory),
        ("OS", f"{platform.system()} {platform.release()}"),
        ("Python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("libraries", ", ".join(versions)),
    ]


def _proc_field(path: str, name: str) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    found = re.search(rf"^{re.escape(name)}\s*:\s*(.+)$", text, re.MULTILINE)
    return found.group(1).strip() if found else ""


def _number(value: str) -> str:
    number = float(value)
    return f"{number:,.0f}" if abs(number) >= 100 else f"{number:.3g}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(outcomes: list[Outcome], quick: bool, when: datetime) -> str:
    mode = "quick (smoke run: smaller sizes, not comparable)" if quick else "full"
    lines = [
        "# Benchmark results",
        "",
        "Written by `python benchmarks/run_all.py`, which runs every `benchmarks/bench_*.py`",
        "and reads the `RESULT` line each prints. Each figure sits beside a raw baseline",
        "measured in the same run, on the same data and machine; the ratio column says which",
        "way is better. `--quick` runs smaller sizes as a smoke run (a minute or two): its",
        "figures are noisier and must not be compared with a full run's. See",
        "[README.md](README.md).",
        "",
        f"- mode: {mode}",
        f"- date: {when:%Y-%m-%d %H:%M} UTC",
        *(f"- {key}: {value}" for key, value in machine()),
        "",
        "| benchmark | figure | raw baseline | ratio | command |",
        "|---|---|---|---|---|",
    ]
    for o in outcomes:
        for r in o.results:
            unit = r["unit"]
            name = f"`{r['name']}`" + (f": {r['label']}" if r.get("label") else "")
            baseline = f"{_number(r['baseline'])} {unit}" + (
                f" ({r['baseline_of']})" if r.get("baseline_of") else ""
            )
            ratio = f"**{float(r['ratio']):.2f}**" + (
                f" ({r['ratio_of']})" if r.get("ratio_of") else ""
            )
            row = (name, f"**{_number(r['figure'])} {unit}**", baseline, ratio, f"`{o.command}`")
            lines.append("| " + " | ".join(_cell(c) for c in row) + " |")
    notes = [
        f"- `{o.benchmark.name}` ({o.seconds:.0f} s): {note}" for o in outcomes for note in o.notes
    ]
    if notes:
        lines += ["", "Notes:", "", *notes]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    names = [b.name for b in BENCHMARKS]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--only", nargs="+", choices=names, metavar="NAME", help=", ".join(names))
    parser.add_argument("--output", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per benchmark")
    args = parser.parse_args(argv)
    chosen = [b for b in BENCHMARKS if not args.only or b.name in args.only]
    when = datetime.now(UTC)
    outcomes = [run(b, args.quick, args.timeout) for b in chosen]
    args.output.write_text(table(outcomes, args.quick, when), encoding="utf-8")
    print(f"wrote {args.output}", file=sys.stderr)
    return 1 if any(o.failed for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
