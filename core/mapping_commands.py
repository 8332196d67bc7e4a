"""The ``lienthong mapping versions`` and ``lienthong mapping diff`` commands, over the store.

``lienthong mapping versions MAPPING [--json]``
    every version of MAPPING that made deliveries: its hash, when first and last
    used, how many deliveries it made, and which one the file on disk is now.
``lienthong mapping diff MAPPING [--from HASH] [--endpoint E] [--since DATE] [--limit N] [--json]``
    run each stored input through the version that mapped it (or only those
    ``--from`` made) and through the current file; print how many outputs are
    identical, differ or now fail, and the first differences node by node.
    Exit 1 when anything differs or fails, so a config repository's CI can
    refuse a mapping change that alters real traffic unannounced.

Inputs are kept ``bus.mapping_inputs_days`` (see docs/mappings.md, "Change a
mapping safely"). The commands only read: they take the store's read models and
the mapping files from the click context object (``lienthong.cli.State``:
``reads`` and ``mappings``), and build no bus.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import click

from . import regression
from .errors import ConfigError, LienthongError
from .exits import Exit
from .mapping import Mapping, MappingLibrary
from .regression import Report, Sample
from .store.reads import Reads

_DATE_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]


@dataclass
class StoredDiff:
    """``mapping diff``'s answer: one report per old version met, against the current file."""

    mapping: str
    current: str
    reports: dict[str, Report] = field(default_factory=dict)
    same_as_current: int = 0  # inputs the current version made: nothing to compare

    @property
    def changed(self) -> bool:
        return any(r.changed for r in self.reports.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "mapping": self.mapping,
            "current": self.current,
            "same_as_current": self.same_as_current,
            "reports": [r.to_dict() for r in self.reports.values()],
        }

    def format(self) -> str:
        lines = [f"mapping {self.mapping}, current version {self.current[:12]}"]
        lines.extend(regression.format_report(r) for r in self.reports.values())
        if self.same_as_current:
            lines.append(
                f"{self.same_as_current} kept input(s) were mapped by the current version: "
                "not compared"
            )
        if not self.reports and not self.same_as_current:
            lines.append(
                "no kept inputs match. Hint: inputs are kept bus.mapping_inputs_days; "
                "'lienthong mapping versions' lists what made deliveries"
            )
        return "\n".join(lines)


def diff_stored(
    store: Reads,
    library: MappingLibrary,
    name: str,
    *,
    version: str | None = None,
    endpoint: str | None = None,
    since: datetime | None = None,
    limit: int | None = None,
    examples: int = 10,
) -> StoredDiff:
    """Compare the stored versions of mapping ``name`` with its current file on the kept inputs.

    ``version`` (a hash or its prefix) keeps only the inputs that version mapped.
    """
    current = library.get(name)
    wanted = store.mapping_version_text(current.name, version)[0] if version else None
    result = StoredDiff(current.name, current.version.hash)
    olds: dict[str, Mapping] = {}
    for key, made_by, params, body in store.mapping_inputs(
        current.name, version=wanted, endpoint=endpoint, since=since, limit=limit
    ):
        if made_by == result.current:
            result.same_as_current += 1
            continue
        old = olds.get(made_by)
        if old is None:
            old = olds[made_by] = library.load_version(
                store.mapping_version_text(current.name, made_by)[1]
            )
            result.reports[made_by] = Report(made_by, result.current)
        report = result.reports[made_by]
        outcome = regression.compare(old, current, Sample(key, body, params))
        report.counts[outcome.status] += 1
        if outcome.status != regression.IDENTICAL and len(report.examples) < examples:
            report.examples.append(outcome)
    return result


def delivery_lineage(
    store: Reads, library: MappingLibrary, message_id: str, delivery: dict[str, Any]
) -> dict[str, Any]:
    """Lineage of one traced delivery's body, by the version that made it, on its input.

    The input is the message's own body, which is what the router maps (and what
    a kept input refers to), so lineage works past bus.mapping_inputs_days too.
    """
    from .lineage import format_lineage, lineage

    if not delivery.get("mapping"):
        return {"text": "", "origins": []}
    try:
        _, text = store.mapping_version_text(delivery["mapping"], delivery["mapping_hash"])
        made_by = library.load_version(text)
        message = store.message(message_id)
        assert message is not None  # traced: it is in the store
        origins = lineage(made_by, message.body, delivery["mapping_params"])
    except LienthongError as exc:
        return {"text": f"cannot trace: {exc}", "origins": [], "error": str(exc)}
    return {"text": format_lineage(origins), "origins": [o.to_dict() for o in origins]}


def _canonical(library: MappingLibrary, name: str) -> tuple[str, str | None]:
    """The mapping's stored name and its current hash; a deleted file keeps the name given."""
    try:
        mapping = library.get(name)
    except ConfigError:
        return name, None
    return mapping.name, mapping.version.hash


@click.command("versions")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def versions_command(state: Any, name: str, as_json: bool) -> None:
    """The versions of mapping NAME that made deliveries: first and last use, how many."""
    canonical, current = _canonical(state.mappings, name)
    rows = [{**v, "current": v["hash"] == current} for v in state.reads.mapping_versions(canonical)]
    if as_json:
        from .cli import _print_json

        _print_json({"mapping": canonical, "current": current, "versions": rows})
        return
    if not rows:
        click.echo(f"mapping {canonical}: no version has made a delivery yet")
        return
    click.echo(f"mapping {canonical}")
    for v in rows:
        click.echo(
            f"  {v['hash'][:12]}  first {v['first_used']:%Y-%m-%d %H:%M:%S}  "
            f"last {v['last_used']:%Y-%m-%d %H:%M:%S}  {v['deliveries']} deliveries"
            + ("  (the file now)" if v["current"] else "")
        )
    if current is not None and not any(v["current"] for v in rows):
        click.echo(f"  {current[:12]}  the file now: not used yet")


@click.command("diff")
@click.argument("name")
@click.option("--from", "version", metavar="HASH", help="Only inputs this version mapped.")
@click.option("--endpoint", help="Only deliveries to this endpoint.")
@click.option(
    "--since",
    type=click.DateTime(_DATE_FORMATS),
    help="Only deliveries made since then (UTC), e.g. 2026-11-30.",
)
@click.option("--limit", type=click.IntRange(min=1), help="At most this many, newest first.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def diff_command(
    state: Any,
    name: str,
    version: str | None,
    endpoint: str | None,
    since: datetime | None,
    limit: int | None,
    as_json: bool,
) -> None:
    """What the current file of mapping NAME changes in the kept real inputs; exit 1 if any."""
    since_utc = since.replace(tzinfo=UTC) if since else None
    found = diff_stored(
        state.reads,
        state.mappings,
        name,
        version=version,
        endpoint=endpoint,
        since=since_utc,
        limit=limit,
    )
    if as_json:
        from .cli import _print_json

        _print_json(found.to_dict())
    else:
        click.echo(found.format())
    if found.changed:
        sys.exit(Exit.PROBLEMS)  # anything differs: a config repository's CI fails


def register(group: click.Group) -> None:
    """Add ``versions`` and ``diff`` to the ``lienthong mapping`` group."""
    group.add_command(versions_command)
    group.add_command(diff_command)


__all__ = ["StoredDiff", "delivery_lineage", "diff_stored", "register"]
