"""How fast the bus takes in edXML: parse + validate + verify, against raw lxml parsing.

Run: ``python benchmarks/bench_edxml.py``. Two messages: a small signed status
and the ~360 KB signed edoc_new sample with its attachment. For each, the full
intake (``edxml.read`` + ``validation.check`` + ``signature.verify``), each step
alone, and the baseline ``lxml.etree.fromstring`` of the same bytes, measured in
the same run; the ratio says how many raw parses one intake costs.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from pathlib import Path

from lxml import etree

from lienthong.plugins.document_axis import edxml, signature, validation

DATA = Path(__file__).resolve().parent.parent / "tests" / "document_axis" / "data" / "edxml"


def throwaway_key() -> signature.KeyMaterial:
    return signature.throwaway_key("bench", days=1)


def rate(func: Callable[[], object], seconds: float = 1.5) -> float:
    """Operations per second, after a warm-up, over at least ``seconds``."""
    for _ in range(3):
        func()
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        func()
        count += 1
    return count / elapsed


def main() -> None:
    key = throwaway_key()
    messages = {
        "small signed status": signature.sign((DATA / "status_finish_06.edxml").read_bytes(), key),
        "edoc_new signed, attachment": signature.sign((DATA / "edoc_new.edxml").read_bytes(), key),
    }
    trusted = [key.certificate]

    def intake(data: bytes) -> None:
        edxml.read(data)
        assert validation.check(data) == []
        signature.verify(data, trusted_certs=trusted)

    print(f"{'message':38} {'step':24} {'ops/s':>10} {'raw lxml ops/s':>15} {'ratio':>8}")
    for label, data in messages.items():
        baseline = rate(lambda data=data: etree.fromstring(data))
        steps: dict[str, Callable[[], object]] = {
            "read+check+verify": lambda data=data: intake(data),
            "read": lambda data=data: edxml.read(data),
            "check": lambda data=data: validation.check(data),
            "verify": lambda data=data: signature.verify(data, trusted_certs=trusted),
        }
        title = f"{label} ({len(data) / 1024:.0f} KB)"
        for step, func in steps.items():
            figure = rate(func)
            print(f"{title:38} {step:24} {figure:10.1f} {baseline:15.1f} {baseline / figure:7.1f}x")
            print(
                shlex.join(
                    [
                        "RESULT",
                        f"name=edxml.{label.split()[0]}.{step}",
                        f"label=edXML {step}, {label} ({len(data) / 1024:.0f} KB)",
                        f"figure={figure:.1f}",
                        "unit=ops/s",
                        f"baseline={baseline:.1f}",
                        "baseline_of=raw lxml etree.fromstring of the same bytes",
                        f"ratio={baseline / figure:.2f}",
                        "ratio_of=raw parses per operation, lower is better",
                    ]
                )
            )
            title = ""


if __name__ == "__main__":
    main()
