"""How fast the bus takes in edXML: parse + validate + verify, against raw lxml parsing.

Run: ``python benchmarks/bench_edxml.py``. Two messages: a small signed status
and the ~360 KB signed edoc_new sample with its attachment, signed under a
SANDBOX CA (root, intermediate carried in the signature). For each, the full
intake (``edxml.read`` + ``validation.check`` + ``signature.verify`` with the
chain to the root and both CRLs checked, as the adapter does), each step alone,
verify without trust (integrity only, to show what the chain costs), and the
baseline ``lxml.etree.fromstring`` of the same bytes, measured in the same run;
the ratio says how many raw parses one operation costs.
"""

from __future__ import annotations

import shlex
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from lxml import etree

from lienthong.plugins.document_axis import edxml, signature, validation
from lienthong.plugins.document_axis.sandbox_ca import SandboxCA
from lienthong.plugins.document_axis.trust import CrlFiles, Trust

DATA = Path(__file__).resolve().parent.parent / "tests" / "document_axis" / "data" / "edxml"


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
    with tempfile.TemporaryDirectory() as folder:
        ca = SandboxCA()
        files = ca.write(Path(folder))
        trust = Trust(
            [ca.root.certificate], crls=CrlFiles([files["root_crl"], files["intermediate_crl"]])
        )
        run(ca.issue("CN=bench,O=Sở Y tế,C=VN"), trust)


def run(key: signature.KeyMaterial, trust: Trust) -> None:
    messages = {
        "small signed status": signature.sign((DATA / "status_finish_06.edxml").read_bytes(), key),
        "edoc_new signed, attachment": signature.sign((DATA / "edoc_new.edxml").read_bytes(), key),
    }

    def intake(data: bytes) -> None:
        edxml.read(data)
        assert validation.check(data) == []
        assert signature.verify(data, trust=trust).trusted

    print(f"{'message':38} {'step':24} {'ops/s':>10} {'raw lxml ops/s':>15} {'ratio':>8}")
    for label, data in messages.items():
        baseline = rate(lambda data=data: etree.fromstring(data))
        steps: dict[str, Callable[[], object]] = {
            "read+check+verify": lambda data=data: intake(data),
            "read": lambda data=data: edxml.read(data),
            "check": lambda data=data: validation.check(data),
            "verify": lambda data=data: signature.verify(data, trust=trust),
            "verify-integrity-only": lambda data=data: signature.verify(data),
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
