"""Regression check of a mapping change: run the old and the new version on the same inputs.

The engine of ``lienthong mapping diff`` (issue 17): for each input, both
versions' outputs are compared node by node (:mod:`lienthong.xmldiff`); the
report counts the identical, the different and those that now fail, and keeps
the first few of each with their differences. Where the inputs come from (the
store's retained bodies, a folder of samples) is the caller's business.

Outputs that differ only where the test cases do not look (indentation,
comments, namespace prefixes) count as identical. An input that both versions
reject with the same reason is identical too; one the old version rejected and
the new one maps is a difference.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from collections.abc import Mapping as MappingType
from dataclasses import dataclass, field
from typing import Any

from . import xml
from .errors import LienthongError
from .mapping import Mapping
from .xmldiff import Difference, diff

IDENTICAL, DIFFERS, FAILS = "identical", "differs", "fails"
_LINE = re.compile(r"^(mapping '[^']*') line \d+")


@dataclass(frozen=True)
class Sample:
    """One input to check: ``key`` names it in the report (a message or delivery id)."""

    key: str
    body: bytes
    params: MappingType[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    """What the change does to one input."""

    key: str
    status: str
    differences: tuple[Difference, ...] = ()
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "status": self.status,
            "differences": [d.to_dict() for d in self.differences],
            "error": self.error,
        }


@dataclass
class Report:
    """Counts per status and the first outcomes that are not identical."""

    old: str
    new: str
    counts: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys((IDENTICAL, DIFFERS, FAILS), 0)
    )
    examples: list[Outcome] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """Whether anything differs or fails: ``mapping diff`` then exits 1."""
        return bool(self.counts[DIFFERS] or self.counts[FAILS])

    def to_dict(self) -> dict[str, Any]:
        return {
            "old": self.old,
            "new": self.new,
            "counts": dict(self.counts),
            "examples": [e.to_dict() for e in self.examples],
        }


def compare(old: Mapping, new: Mapping, sample: Sample, *, limit: int = 20) -> Outcome:
    """Run both versions on one input and say what changed (at most ``limit`` differences)."""
    try:
        tree = xml.parse(sample.body, what=f"input {sample.key}")
    except LienthongError as exc:
        return Outcome(sample.key, IDENTICAL, error=str(exc))  # neither version can read it
    before_error = after_error = None
    try:
        before = old.apply(tree, sample.params, quiet=True)
    except LienthongError as exc:
        before_error = str(exc)
    try:
        after = new.apply(tree, sample.params, quiet=True)
    except LienthongError as exc:
        after_error = str(exc)
    if after_error is not None:
        status = IDENTICAL if _same_failure(before_error, after_error) else FAILS
        return Outcome(sample.key, status, error=after_error)
    if before_error is not None:
        return Outcome(
            sample.key,
            DIFFERS,
            error=f"the old version failed: {before_error}; the new one maps it",
        )
    if xml.serialize(before) == xml.serialize(after):
        return Outcome(sample.key, IDENTICAL)
    found = diff(before, after, limit=limit)
    return Outcome(sample.key, DIFFERS if found else IDENTICAL, tuple(found))


def check(
    old: Mapping, new: Mapping, samples: Iterable[Sample], *, examples: int = 10, limit: int = 20
) -> Report:
    """Compare both versions on every sample; keep the first ``examples`` that are not identical."""
    report = Report(old.version.hash, new.version.hash)
    for sample in samples:
        outcome = compare(old, new, sample, limit=limit)
        report.counts[outcome.status] += 1
        if outcome.status != IDENTICAL and len(report.examples) < examples:
            report.examples.append(outcome)
    return report


def format_report(report: Report) -> str:
    """The counts, then each example with its differences, as ``mapping diff`` prints them."""
    counts = report.counts
    lines = [
        f"{report.old[:12]} -> {report.new[:12]}: {counts[IDENTICAL]} identical, "
        f"{counts[DIFFERS]} differ, {counts[FAILS]} now fail"
    ]
    for outcome in report.examples:
        lines.append(
            f"{outcome.key}: {outcome.status}" + (f": {outcome.error}" if outcome.error else "")
        )
        lines.extend(f"  {d}" for d in outcome.differences)
    return "\n".join(lines)


def _same_failure(before: str | None, after: str) -> bool:
    # Both messages name the same mapping; a line number that moved is not a new failure.
    return before is not None and _LINE.sub(r"\1", before) == _LINE.sub(r"\1", after)
