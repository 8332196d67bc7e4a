"""Regression check of a changed mapping on stored traffic: the work of ``mapping diff``.

10,000 stored-like 5 KB voucher batches go through an old version of a mapping
(loaded from its stored text, as the store will hold it) and the current file,
and each pair of outputs is compared: identical, different (with the node-level
diff), or now failing. The raw baseline, measured in the same run on the same
bytes, is what lxml alone does for the same answer: parse, run both compiled
stylesheets, serialize both. Target: >= 0.5x the raw rate.

The change between the versions adds a ``refunds`` attribute where a batch
holds refund vouchers, which 37 batches in every 1,000 do: the run checks that
exactly those differ, so a fast but wrong pipeline cannot pass.

The inputs come from the store, as ``lienthong mapping diff`` reads them: the
messages are first accepted into an SQLite store with one delivery each, mapped
by the old version (which the store keeps by hash); the measured part is
:func:`lienthong.mapping_commands.diff_stored`, reading the kept inputs and the
old version's text back from the store. The raw baseline reads its bodies from
memory.

Usage: python benchmarks/bench_mapping_diff.py [--messages N] [--rounds R]
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

from lxml import etree

from lienthong import regression
from lienthong.mapping import Mapping, MappingLibrary
from lienthong.mapping_commands import diff_stored
from lienthong.message import Message
from lienthong.regression import Report
from lienthong.store import Intake, Outgoing, Store, make_engine

OLD = """<?xml version="1.0" encoding="UTF-8"?>
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:include href="_accounts.xsl"/>
  <xsl:template match="/batch">
    <summary agency="{@agency}" vouchers="{count(voucher)}" total="{sum(voucher/amount)}">
      <xsl:call-template name="accounts"/>
    </summary>
  </xsl:template>
</xsl:stylesheet>
"""
NEW = OLD.replace(
    'total="{sum(voucher/amount)}">',
    'total="{sum(voucher/amount)}">\n'
    "      <xsl:if test=\"voucher[kind = 'refund']\">"
    '<xsl:attribute name="refunds"><xsl:value-of select="count(voucher[kind = \'refund\'])"/>'
    "</xsl:attribute></xsl:if>",
)
ACCOUNTS = """<?xml version="1.0" encoding="UTF-8"?>
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:key name="by-account" match="voucher" use="debit"/>
  <xsl:template name="accounts">
    <xsl:for-each select="voucher[generate-id() = generate-id(key('by-account', debit)[1])]">
      <xsl:sort select="debit"/>
      <account code="{debit}" total="{sum(key('by-account', debit)/amount)}"/>
    </xsl:for-each>
  </xsl:template>
</xsl:stylesheet>
"""
AFFECTED_PER_1000 = 37


def document(n: int) -> bytes:
    """A voucher batch of about 5 KB, different per message; 37 in 1,000 hold a refund."""
    refund = n % 1000 < AFFECTED_PER_1000
    vouchers = "".join(
        f"<voucher><number>PT-{n:06d}-{i:02d}</number>"
        f"<kind>{'refund' if refund and i == 7 else 'payment'}</kind>"
        f"<date>2026/11/{1 + i % 28:02d}</date><debit>{1111 + i % 5}</debit>"
        f"<credit>3311</credit><amount>{1000 * (i + n % 97)}</amount>"
        f"<description>Chi tạm ứng công tác phí đợt {i}</description></voucher>"
        for i in range(22)
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><batch agency="000.00.{n % 84:02d}.H41">'
        f"{vouchers}</batch>".encode()
    )


def raw_lxml(bodies: list[bytes], root: Path, old_text: dict[str, str]) -> tuple[float, int]:
    """lxml alone: parse, both stylesheets, serialize both, compare the bytes."""
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in old_text.items():
            (Path(tmp) / name).write_text(text, encoding="utf-8")
        old = etree.XSLT(etree.parse(str(Path(tmp) / "summary.xsl")))
    new = etree.XSLT(etree.parse(str(root / "summary.xsl")))
    differ = 0
    start = time.perf_counter()
    for body in bodies:
        doc = etree.fromstring(body)
        a = etree.tostring(old(doc), encoding="UTF-8", xml_declaration=True)
        b = etree.tostring(new(doc), encoding="UTF-8", xml_declaration=True)
        differ += a != b
    return len(bodies) / (time.perf_counter() - start), differ


def fill_store(store: Store, bodies: list[bytes], old: Mapping) -> None:
    """Accept every body as the bus does: one delivery each, mapped by the old version."""
    for start in range(0, len(bodies), 500):
        intakes = []
        for n in range(start, min(start + 500, len(bodies))):
            message = Message(bodies[n], source="bench", id=f"m{n:06d}")
            mapped = old.apply_bytes(bodies[n])
            out = Outgoing(f"{message.id}-d", "bench", "out", mapped, {}, old.version)
            intakes.append(Intake(message, outgoing=[out]))
        store.accept(intakes)


def through_store(store: Store, library: MappingLibrary, count: int) -> tuple[float, Report]:
    """``mapping diff`` as the command runs it: inputs and the old version from the store."""
    start = time.perf_counter()
    found = diff_stored(store, library, "summary.xsl", examples=1)
    rate = count / (time.perf_counter() - start)
    [report] = found.reports.values()
    return rate, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3, help="best of this many runs each")
    args = parser.parse_args()

    bodies = [document(n) for n in range(args.messages)]
    expected = sum(1 for n in range(args.messages) if n % 1000 < AFFECTED_PER_1000)
    size = sum(map(len, bodies)) / len(bodies)
    print(
        f"{args.messages:,} messages of {size / 1024:.1f} KB; "
        f"python {sys.version.split()[0]}, {os.cpu_count()} cores"
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "summary.xsl").write_text(OLD, encoding="utf-8")
        (root / "_accounts.xsl").write_text(ACCOUNTS, encoding="utf-8")
        first = MappingLibrary(root).get("summary.xsl")
        store = Store(make_engine(f"sqlite:///{root / 'bench.db'}"))
        store.upgrade()
        fill_store(store, bodies, first)
        (root / "summary.xsl").write_text(NEW, encoding="utf-8")

        # Best of R, alternating, so a noisy neighbour hurts both sides alike.
        raw = ours = 0.0
        for _ in range(args.rounds):
            raw_rate, raw_differ = raw_lxml(
                bodies, root, {"summary.xsl": OLD, "_accounts.xsl": ACCOUNTS}
            )
            raw = max(raw, raw_rate)
            # A fresh library each round, as each run of the command has.
            rate, report = through_store(store, MappingLibrary(root), len(bodies))
            ours = max(ours, rate)
        store.engine.dispose()
    differ, failed = report.counts[regression.DIFFERS], report.counts[regression.FAILS]
    if differ != expected or raw_differ != expected or failed:
        print(
            f"wrong answer: {differ} differ (raw {raw_differ}), {failed} fail; expected {expected}"
        )
        sys.exit(1)
    print(regression.format_report(report))
    print(f"raw lxml, both versions + serialize  : {raw:9,.0f} msg/s")
    print(
        f"mapping diff from the store          : {ours:9,.0f} msg/s   "
        f"ratio to raw lxml {ours / raw:.2f} (target >= 0.50)"
    )
    print(
        shlex.join(
            [
                "RESULT",
                "name=mapping.diff",
                f"label=mapping diff from the store (SQLite), old stored version vs current "
                f"file, {args.messages:,} messages of {size / 1024:.1f} KB",
                f"figure={ours:.1f}",
                "unit=msg/s",
                f"baseline={raw:.1f}",
                "baseline_of=raw lxml parse + both stylesheets + serialize both",
                f"ratio={ours / raw:.3f}",
                "ratio_of=mapping diff / raw lxml, higher is better, target >= 0.50",
            ]
        )
    )


if __name__ == "__main__":
    main()
