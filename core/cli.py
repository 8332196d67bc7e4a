"""The ``lienthong`` command: run the bus and look after it.

Exit codes and the ``error: `` prefix are those of :mod:`lienthong.exits`, for
every command (docs/cli.md).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import yaml
from rich.console import Console
from rich.table import Table

from . import __version__, logs, sync_commands
from . import config as config_module
from .adapter import Adapter, Option
from .console.i18n import duration
from .errors import ConfigError, LienthongError, RejectedError, StoreUnavailable
from .exits import Exit, code_of, fail, prefixed
from .host import PluginHost
from .mapping import MappingLibrary
from .mapping_commands import register as register_mapping_commands
from .store.reads import Reads

console = Console()


class State:
    """What every subcommand shares: the config path and, loaded on demand, the store or the bus.

    A command that only reads uses :attr:`reads` (or its :attr:`read_engine`) and
    :attr:`mappings`: the store's read models and the mapping files, with no
    adapter built or started and no broker called. A command that changes things
    (``run``, ``dlq replay``, ``sync run``) builds the bus.
    """

    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path
        self.host = PluginHost()
        self._config: config_module.Config | None = None
        self._bus: Any = None
        self._reads: Reads | None = None
        self._mappings: MappingLibrary | None = None

    @property
    def config(self) -> config_module.Config:
        if self._config is None:
            self._config = config_module.load(self.config_path, host=self.host)
        return self._config

    # What the sync commands need (lienthong.sync_commands.SyncContext).

    @property
    def engine(self) -> Any:
        return self.bus.store.engine

    @property
    def jobs(self) -> Any:
        return self.config.jobs

    @property
    def read_engine(self) -> Any:
        """The store's engine for ``jobs``, ``sync runs`` and ``sync report``: no bus built."""
        return self.reads.engine

    def adapter(self, endpoint: str) -> Any:
        if endpoint not in self.bus.adapters:
            raise ConfigError([f"no endpoint named '{endpoint}' in {self.config.path}"])
        adapter = self.bus.adapters[endpoint]
        adapter.start()
        return adapter

    @property
    def bus(self) -> Any:
        if self._bus is None:
            from .bus import Bus

            self._bus = Bus(self.config, self.host)
        return self._bus

    def close(self) -> None:
        """Give back the read models' connections (the bus is closed by the command that ran it)."""
        if self._reads is not None:
            self._reads.close()
            self._reads = None

    @property
    def reads(self) -> Reads:
        """The store's read models; the schema checked, nothing started."""
        if self._reads is None:
            self._reads = Reads.open(self.config.bus.store.reveal())
        return self._reads

    @property
    def mappings(self) -> MappingLibrary:
        """The mappings as the bus loads them (bus.mappings), for reading what they made."""
        if self._mappings is None:
            settings = self.config.bus
            self._mappings = MappingLibrary(
                settings.mappings,
                functions=self.host.xpath_functions,
                max_bytes=settings.max_message_bytes,
            )
        return self._mappings


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, Path):
        return str(value)
    return str(value)


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, default=_json_default, ensure_ascii=False, indent=2))


class LienthongGroup(click.Group):
    """Turns every error into one ``error: `` line and the table's exit code, not a traceback."""

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except click.ClickException as exc:
            prefixed(exc)
            raise

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            prefixed(exc)
            raise
        except LienthongError as exc:
            fail(str(exc), code_of(exc))


@click.group(cls=LienthongGroup)
@click.version_option(__version__, prog_name="lienthong")
@click.option(
    "--config",
    "-c",
    "config_path",
    envvar=config_module.CONFIG_VARIABLE,
    type=click.Path(dir_okay=False),
    default=None,
    help=f"Config file (default {config_module.DEFAULT_CONFIG}, "
    f"or ${config_module.CONFIG_VARIABLE}).",
)
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
@click.option(
    "--log-json",
    is_flag=True,
    envvar="LIENTHONG_LOG_JSON",
    help="Log one JSON object per line (or $LIENTHONG_LOG_JSON=1).",
)
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, log_level: str, log_json: bool) -> None:
    """lienthong: the integration bus between agencies' systems."""
    logs.configure(log_level, json=log_json)
    ctx.obj = State(config_path)
    ctx.call_on_close(ctx.obj.close)


pass_state = click.make_pass_decorator(State)


# --- run and status ------------------------------------------------------------


def _bus_when_the_store_answers(state: State, once: bool) -> Any:
    """The bus; a long-running worker started before its database waits for it."""
    delay = 1.0
    while True:
        try:
            return state.bus
        except StoreUnavailable as exc:
            if once:
                raise
            logging.getLogger(__name__).warning("%s; trying again in %.0f s", exc, delay)
            time.sleep(delay)
            delay = min(delay * 2, 30.0)


@cli.command()
@click.option("--once", is_flag=True, help="Drain the work that is due now, then exit (for cron).")
@click.option(
    "--max-seconds",
    type=click.FloatRange(min=0, min_open=True),
    help="End after this many seconds even if work is still coming (bounds --once in a "
    "cron slot); the run says what it left.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Serve /metrics and /health on this port (overrides bus.metrics_port; "
    "one per worker on a host).",
)
@pass_state
def run(state: State, once: bool, max_seconds: float | None, metrics_port: int | None) -> None:
    """Run the bus: poll the endpoints, route, deliver, until stopped (SIGTERM or Ctrl-C)."""
    if metrics_port is not None:
        state.config.bus.metrics_port = metrics_port
    bus = _bus_when_the_store_answers(state, once)
    try:
        total = bus.run(once=once, max_seconds=max_seconds)
        pending = bus.store.counts()["pending"] if total.bounded is not None else 0
    finally:
        bus.close()
    repeats = (
        f"; {total.repeats} repeat(s) (offered again, already accepted: not stored twice)"
        if total.repeats
        else ""
    )
    click.echo(
        f"received {total.received}, delivered {total.delivered}, "
        f"retried {total.retried}, dead-lettered {total.dead}{repeats}"
    )
    if total.bounded is not None:
        click.echo(
            f"stopped at the bound of {total.bounded:g} s with {pending} deliveries pending "
            "and the sources perhaps not drained: the next run goes on from there"
        )


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_state
def status(state: State, as_json: bool) -> None:
    """Counts, and per endpoint the queue depth, lag, retries and circuit; the jobs' last runs."""
    from .holders import live_holders
    from .scheduler import jobs_overview
    from .store.reads import age_seconds

    store = state.reads
    overview = store.pending_overview()
    sources = store.source_counts()
    now = datetime.now(UTC)
    data: dict[str, Any] = {
        "counts": store.counts(),
        # Per source: new messages accepted, and repeats (offered again, not stored twice).
        "received_by_endpoint": {n: v["received"] for n, v in sources.items()},
        "repeats_by_endpoint": {n: v["repeats"] for n, v in sources.items()},
        "pending_by_endpoint": {n: v["pending"] for n, v in overview.items()},
        # Age in seconds of each endpoint's oldest pending delivery: how far it lags.
        "lag_seconds": {n: round(age_seconds(v["oldest"], now), 3) for n, v in overview.items()},
        "retrying_by_endpoint": {n: v["retrying"] for n, v in overview.items() if v["retrying"]},
        "endpoints": {n: e.adapter for n, e in state.config.endpoints.items()},
        "circuits": store.endpoint_health(),
        "jobs": [j.to_dict() for j in jobs_overview(store.engine, state.config.jobs)],
        "workers": live_holders(store.engine),
    }
    if as_json:
        _print_json(data)
        return
    table = Table(
        "endpoint", "adapter", "received", "repeats", "pending", "retrying", "lag", "circuit"
    )
    for name, adapter in data["endpoints"].items():
        circuit = data["circuits"].get(name)
        lag = data["lag_seconds"].get(name)
        table.add_row(
            name,
            adapter,
            str(data["received_by_endpoint"].get(name, "-")),
            str(data["repeats_by_endpoint"].get(name, "-")),
            str(data["pending_by_endpoint"].get(name, 0)),
            str(data["retrying_by_endpoint"].get(name, 0)),
            duration(lag) if lag is not None else "-",
            f"{circuit['detail']} ({circuit['updated_at']:%H:%M:%S})" if circuit else "closed",
        )
    console.print(table)
    counts = data["counts"]
    console.print(
        f"messages {counts['messages']} · delivered {counts['delivered']} · pending "
        f"{counts['pending']} · dead letters waiting {counts['dead_letters_waiting']}"
    )
    for job in data["jobs"]:
        last = (
            f"last {job['last_outcome']} at {job['last_started'][:19]}"
            if job["last_outcome"]
            else "not run yet"
        )
        if job["last_outcome"] == "killed" and job["last_detail"]:
            last += f" ({job['last_detail'].removeprefix('killed: ')})"
        console.print(f"job {job['name']} ({job['what']}): {last}")
    for worker in data["workers"]:
        console.print(
            f"worker {worker['name']} (pid {worker['pid']} on {worker['host']}) since "
            f"{worker['started_at']:%Y-%m-%d %H:%M:%S}, heartbeat {worker['age']:.0f} s ago"
        )


# --- dead letters ----------------------------------------------------------------


@cli.group()
def dlq() -> None:
    """Dead letters: list, show, replay, purge."""


_filters = [
    click.option("--endpoint", help="Only dead letters for this target endpoint."),
    click.option("--stage", type=click.Choice(["accept", "route", "access", "deliver"])),
    click.option("--reason", help="Only dead letters whose reason contains this text."),
]


def _with_filters(fn: Any) -> Any:
    for option in reversed(_filters):
        fn = option(fn)
    return fn


@dlq.command("list")
@_with_filters
@click.option("--json", "as_json", is_flag=True)
@pass_state
def dlq_list(
    state: State, endpoint: str | None, stage: str | None, reason: str | None, as_json: bool
) -> None:
    """Dead letters waiting, newest first."""
    rows = state.reads.dead_letters(endpoint=endpoint, stage=stage, reason=reason)
    if as_json:
        _print_json(rows)
        return
    for r in rows:
        click.echo(
            f"#{r['id']}  {r['created_at']:%Y-%m-%d %H:%M:%S}  message {r['message_id']}  "
            f"from {r['source']}  stage {r['stage']}  endpoint {r['endpoint'] or '-'}"
        )
        click.echo(f"    {r['reason']}")
    click.echo(f"{len(rows)} dead letter(s)")


@dlq.command("show")
@click.argument("dead_id", type=int)
@click.option("--json", "as_json", is_flag=True)
@pass_state
def dlq_show(state: State, dead_id: int, as_json: bool) -> None:
    """One dead letter: reason, message, every attempt."""
    row = state.reads.dead_letter(dead_id)
    if row is None:
        raise RejectedError(f"no dead letter #{dead_id}. Hint: 'lienthong dlq list'")
    if as_json:
        _print_json(row)
        return
    for key in (
        "id",
        "message_id",
        "correlation_id",
        "kind",
        "source",
        "stage",
        "endpoint",
        "reason",
        "created_at",
        "replayed_at",
    ):
        click.echo(f"{key}: {row[key]}")
    for a in row["attempts"]:
        click.echo(
            f"attempt {a['number']} at {a['at']:%Y-%m-%d %H:%M:%S} by {a['worker']}: "
            f"{a['outcome']} {a['error'] or ''}"
        )
    click.echo("body:")
    click.echo(row["body"].decode("utf-8", "replace")[:4000])


def _chosen_dead_letters(
    state: State,
    ids: tuple[int, ...],
    endpoint: str | None,
    stage: str | None,
    reason: str | None,
    everything: bool,
) -> list[int]:
    """The ids named, or those matching the filters; refuses an unfiltered 'all' by accident."""
    if ids:
        return list(ids)
    if not (everything or endpoint or stage or reason):
        raise click.UsageError("name dead letter ids, or a filter, or --all")
    return [
        r["id"] for r in state.bus.store.dead_letters(endpoint=endpoint, stage=stage, reason=reason)
    ]


@dlq.command("replay")
@click.argument("ids", nargs=-1, type=int)
@_with_filters
@click.option(
    "--all", "replay_all", is_flag=True, help="Replay every dead letter matching the filters."
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Change nothing: show what the current routes and mappings would send, "
    "against what was attempted.",
)
@pass_state
def dlq_replay(
    state: State,
    ids: tuple[int, ...],
    endpoint: str | None,
    stage: str | None,
    reason: str | None,
    replay_all: bool,
    dry_run: bool,
) -> None:
    """Send dead letters through again, by id or by filter."""
    chosen = _chosen_dead_letters(state, ids, endpoint, stage, reason, replay_all)
    if dry_run:
        for dead_id in chosen:
            for line in state.bus.replay_preview(dead_id).lines():
                click.echo(line)
        return
    failed = 0
    for dead_id in chosen:
        try:
            click.echo(f"#{dead_id}: {state.bus.replay(dead_id)}")
        except RejectedError as exc:
            failed += 1
            click.echo(f"#{dead_id}: {exc}", err=True)
    click.echo(f"replayed {len(chosen) - failed}, failed {failed}")
    if failed:
        sys.exit(Exit.PROBLEMS)


@dlq.command("purge")
@click.argument("ids", nargs=-1, type=int)
@_with_filters
@click.option("--all", "purge_all", is_flag=True)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_state
def dlq_purge(
    state: State,
    ids: tuple[int, ...],
    endpoint: str | None,
    stage: str | None,
    reason: str | None,
    purge_all: bool,
    yes: bool,
) -> None:
    """Forget dead letters (the message and its audit trail stay in the store)."""
    chosen = _chosen_dead_letters(state, ids, endpoint, stage, reason, purge_all)
    if not yes:
        click.confirm(f"Purge {len(chosen)} dead letter(s)?", abort=True)
    click.echo(f"purged {state.bus.store.purge_dead_letters(chosen)}")


# --- trace -----------------------------------------------------------------------


@cli.command()
@click.argument("message_id")
@click.option("--json", "as_json", is_flag=True)
@click.option(
    "--lineage", is_flag=True, help="For each mapped delivery, where each output value came from."
)
@pass_state
def trace(state: State, message_id: str, as_json: bool, lineage: bool) -> None:
    """Every hop, delivery and attempt of one message (an id, or its unique end or beginning)."""
    from .mapping_commands import delivery_lineage

    data = state.reads.trace(message_id)
    if data is None:
        raise RejectedError(
            f"no single message with id {message_id!r}. Hint: use more of the id, or its end "
            "(ids begin with their time)"
        )
    if lineage:
        for d in data["deliveries"]:
            d["lineage"] = delivery_lineage(state.reads, state.mappings, data["id"], d)
    if as_json:
        _print_json(data)
        return
    label = state.host.describe_message(kind=data["kind"], headers=data["headers"])
    click.echo(
        f"message {data['id']} ({data['kind']} from {data['source']}), "
        f"correlation {data['correlation_id']}, {data['state']}" + (f": {label}" if label else "")
    )
    for hop in data["hops"]:
        click.echo(
            f"  {hop['at']:%Y-%m-%d %H:%M:%S}  {hop['event']:<14} "
            f"{hop['endpoint'] or '-':<16} {hop['detail']}"
        )
    for d in data["deliveries"]:
        made = f", mapping {d['mapping']}@{d['mapping_hash'][:12]}" if d["mapping"] else ""
        click.echo(
            f"  delivery {d['id']} → {d['endpoint']} via {d['route']}{made}: {d['state']}, "
            f"{d['attempts']} attempt(s)"
        )
        if lineage and d["mapping"]:
            click.echo("    lineage:")
            click.echo("\n".join(f"      {line}" for line in d["lineage"]["text"].splitlines()))
        for a in d["attempt_log"]:
            click.echo(
                f"    attempt {a['number']} {a['at']:%H:%M:%S} {a['outcome']} {a['error'] or ''}"
            )
    for r in data["correlated"]:
        label = state.host.describe_message(kind=r["kind"], headers=r["headers"])
        click.echo(
            f"  related {r['id']} ({r['kind']} from {r['source']}) {r['accepted_at']}"
            + (f": {label}" if label else "")
        )


# --- mappings ----------------------------------------------------------------------


@cli.group()
def mapping() -> None:
    """Test, try and trace XSLT mappings."""


def _mapping_library(state: State, root: str | None) -> Any:
    from .mapping import MappingLibrary

    if root:
        return MappingLibrary(Path(root), functions=state.host.xpath_functions)
    return MappingLibrary(state.config.bus.mappings, functions=state.host.xpath_functions)


@mapping.command("test")
@click.argument("path", required=False, type=click.Path(exists=True))
@click.option(
    "--root",
    type=click.Path(file_okay=False, exists=True),
    help="Mappings folder (default: bus.mappings of the config).",
)
@pass_state
def mapping_test(state: State, path: str | None, root: str | None) -> None:
    """Run the test cases beside each mapping (all of them, or those under PATH)."""
    from .mapping import format_results, run_cases

    results = run_cases(_mapping_library(state, root), Path(path) if path else None)
    click.echo(format_results(results))
    if not results or not all(r.ok for r in results):
        sys.exit(Exit.PROBLEMS)


@mapping.command("apply")
@click.argument("name")
@click.argument("input_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--param", "-p", multiple=True, help="A string parameter, as key=value.")
@click.option("--root", type=click.Path(file_okay=False, exists=True))
@pass_state
def mapping_apply(
    state: State, name: str, input_file: str, param: tuple[str, ...], root: str | None
) -> None:
    """Apply mapping NAME (relative to the mappings folder) to INPUT_FILE and print the result."""
    params = _mapping_params(param)
    output = (
        _mapping_library(state, root).get(name).apply_bytes(Path(input_file).read_bytes(), params)
    )
    click.echo(output.decode("utf-8"))


def _mapping_params(param: tuple[str, ...]) -> dict[str, str]:
    params = {}
    for item in param:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r} is not key=value", param_hint="--param")
        params[key] = value
    return params


@mapping.command("lineage")
@click.argument("name")
@click.argument("input_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--param", "-p", multiple=True, help="A string parameter, as key=value.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--root", type=click.Path(file_okay=False, exists=True))
@pass_state
def mapping_lineage(
    state: State,
    name: str,
    input_file: str,
    param: tuple[str, ...],
    as_json: bool,
    root: str | None,
) -> None:
    """For each value mapping NAME outputs from INPUT_FILE, the input node(s) it came from."""
    from . import xml
    from .lineage import format_lineage, lineage

    params = _mapping_params(param)
    library = _mapping_library(state, root)
    source = xml.parse_file(Path(input_file), max_bytes=library.max_bytes)
    origins = lineage(library.get(name), source, params)
    if as_json:
        _print_json([o.to_dict() for o in origins])
        return
    click.echo(format_lineage(origins))


# --- config, adapters, db -----------------------------------------------------------


@cli.group("config")
def config_group() -> None:
    """Check the configuration."""


@config_group.command("check")
@pass_state
def config_check(state: State) -> None:
    """Validate the config against the adapters' schemas; list every problem at once."""
    try:
        cfg = state.config
    except ConfigError as exc:
        click.echo(str(exc))
        sys.exit(Exit.PROBLEMS)
    from .mapping import MappingLibrary

    library = MappingLibrary(cfg.bus.mappings, functions=state.host.xpath_functions)
    problems = []
    for route in cfg.routes:
        for target in route.targets:
            if target.mapping:
                try:
                    library.get(target.mapping)
                except LienthongError as exc:
                    problems.append(f"route '{route.name}': {exc}")
    for p in problems:
        click.echo(p)
    if problems:
        sys.exit(Exit.PROBLEMS)
    click.echo(
        f"{cfg.path}: ok ({len(cfg.endpoints)} endpoints, {len(cfg.routes)} routes, "
        f"store {'SQLite' if 'sqlite' in cfg.bus.store.reveal() else 'PostgreSQL'}, "
        f"broker {'embedded' if cfg.bus.embedded else 'RabbitMQ'})"
    )


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--options",
    "options_of",
    metavar="NAME",
    default=None,
    help="List the options of adapter NAME ('all': of every adapter) instead of the adapters.",
)
@click.option(
    "--markdown", is_flag=True, help="With --options: the tables the docs are generated from."
)
@pass_state
def adapters(state: State, as_json: bool, options_of: str | None, markdown: bool) -> None:
    """The adapters that loaded: name, version, capabilities, where each came from."""
    if options_of is not None:
        _adapter_options(state, options_of, as_json=as_json, markdown=markdown)
        return
    if markdown:
        raise click.UsageError("--markdown goes with --options NAME")
    rows: list[dict[str, Any]] = [
        {
            "name": name,
            "version": info.cls.version,
            "plugin": info.plugin,
            "origin": info.origin,
            "capabilities": sorted(c.value for c in info.cls.capabilities),
            "summary": info.cls.summary,
        }
        for name, info in sorted(state.host.adapters.items())
    ]
    if as_json:
        _print_json(rows)
        return
    table = Table("adapter", "version", "capabilities", "from", "summary")
    for r in rows:
        table.add_row(
            r["name"],
            r["version"],
            ", ".join(r["capabilities"]),
            f"{r['plugin']} ({r['origin']})",
            r["summary"],
        )
    console.print(table)


def _adapter_options(state: State, name: str, *, as_json: bool, markdown: bool) -> None:
    """``adapters --options NAME``: each option's type, default, rules and description."""
    try:
        classes = (
            [info.cls for _, info in sorted(state.host.adapters.items())]
            if name == "all"
            else [state.host.adapter(name)]
        )
    except ConfigError as exc:
        raise click.BadParameter(exc.problems[0].message, param_hint="--options") from exc
    if as_json:
        data = [
            {
                "name": cls.name,
                "summary": cls.summary,
                "options": [_option_data(o) for o in cls.options],
            }
            for cls in classes
        ]
        _print_json(data if name == "all" else data[0])
    elif markdown:
        if name == "all":
            click.echo(
                "\n\n".join(
                    f"## {cls.name}\n\n{cls.summary}\n\n{options_markdown(cls)}" for cls in classes
                )
            )
        else:
            click.echo(options_markdown(classes[0]))
    else:
        for cls in classes:
            table = Table("option", "type", "default", "rules", "description", title=cls.name)
            for option in cls.options:
                table.add_row(
                    option.name,
                    option.type.__name__,
                    _default_text(option),
                    option.rules(),
                    option.description + _extras(option),
                )
            console.print(table)


def _option_data(option: Option) -> dict[str, Any]:
    return {
        "name": option.name,
        "type": option.type.__name__,
        "required": option.required,
        "default": None if option.required else option.default,
        "secret": option.secret,
        "choices": list(option.choices),
        "minimum": option.minimum,
        "maximum": option.maximum,
        "pattern": option.pattern,
        "rules": option.rules(),
        "example": option.example,
        "description": option.description,
    }


def _yaml_value(value: Any) -> str:
    """``value`` as it is written in a config file."""
    if isinstance(value, str):
        return value
    text = yaml.safe_dump(
        value, default_flow_style=True, allow_unicode=True, width=1000, sort_keys=False
    )
    return text.removesuffix("\n").removesuffix("\n...").strip()


def _default_text(option: Option) -> str:
    if option.required:
        return "required"
    if option.default is None:
        return "none"
    return _yaml_value(option.default) or "''"


def _extras(option: Option, code: Callable[[str], str] = str) -> str:
    """What the description of an option leaves out: how a secret is given, an example."""
    text = ""
    if option.secret:
        text += f"; a secret: {code('{env: NAME}')} or {code('{file: PATH}')}"
    if option.example is not None:
        text += f"; e.g. {code(_yaml_value(option.example))}"
    return text


def options_markdown(cls: type[Adapter]) -> str:
    """The Markdown table of an adapter's options, as docs/options.md shows it."""

    def text(value: str) -> str:
        return value.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")

    def code(value: str) -> str:
        return f"`{value.replace('|', chr(92) + '|')}`" if value else ""

    lines = ["| option | type | default | rules | description |", "|---|---|---|---|---|"]
    for o in cls.options:
        default = _default_text(o)
        row = [
            code(o.name),
            o.type.__name__,
            default if o.required or o.default is None else code(default),
            text(o.rules()),
            text(o.description) + _extras(o, code),
        ]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


@cli.group()
def audit() -> None:
    """The tamper-evident audit trail."""


@audit.command("verify")
@click.option(
    "--anchor",
    "anchor_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Anchor file to check the trail's end against (default: bus.audit_anchor).",
)
@click.option(
    "--key-file",
    "key_files",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="An earlier audit key, for the part of the trail it wrote (repeatable).",
)
@pass_state
def audit_verify(state: State, anchor_path: Path | None, key_files: tuple[Path, ...]) -> None:
    """Walk the hash chain; name the first record altered, removed or inserted (exit 1).

    With the audit key, a trail rewritten with new hashes is caught; with the
    anchor file, a trail whose end was cut off is caught.
    """
    import sqlalchemy.exc

    from . import audit as audit_chain
    from .adapter import Secret
    from .store import audit as audit_table
    from .store import make_engine

    settings = state.config.bus
    engine = make_engine(settings.store.reveal())
    sqlite = engine.dialect.name == "sqlite"
    key = audit_chain.load_key(settings.audit_key, settings.var_dir, embedded=sqlite, create=False)
    extra = [
        audit_chain.load_key(
            Secret(p.read_text(encoding="utf-8").strip(), f"file {p}"), p.parent, embedded=False
        )
        for p in key_files
    ]
    keys = [k for k in (key, *extra) if k is not None]
    anchor_file = anchor_path or settings.anchor_path
    anchor = audit_chain.read_anchor(anchor_file)
    try:
        verdict = audit_chain.verify(engine, audit_table, keys, anchor)
    except sqlalchemy.exc.OperationalError as exc:
        raise StoreUnavailable(f"the store cannot be read: {exc.orig}") from exc
    finally:
        engine.dispose()
    if not verdict.ok:
        where = f" after {verdict.records - 1} good records" if verdict.broken_at else ""
        click.echo(f"audit trail broken{where}: {verdict.problem}")
        sys.exit(Exit.PROBLEMS)
    click.echo(f"audit trail intact: {verdict.records} records")
    if verdict.keyed_from is not None and key is not None:
        click.echo(f"  keyed (key id {audit_chain.key_id(key)}) from record #{verdict.keyed_from}")
    elif key is None:
        click.echo(
            "  not keyed: whoever can write the database could rewrite the trail with new "
            "hashes. Hint: set bus.audit_key (docs/security.md)"
        )
    if anchor is not None:
        click.echo(f"  its end matches the anchor of {anchor.at} ({anchor_file})")
    elif verdict.records:
        click.echo(
            f"  no anchor at {anchor_file}: records removed from the end would go unnoticed "
            "(the bus writes it while it runs)"
        )


@cli.group()
def db() -> None:
    """The store's schema."""


@db.command("cleanup")
@click.option(
    "--older-than",
    "days",
    type=click.IntRange(min=1),
    required=True,
    help="Forget sync and job run records older than this many days.",
)
@pass_state
def db_cleanup(state: State, days: int) -> None:
    """Delete old sync and job run records; messages, dead letters and the audit trail stay."""
    from datetime import UTC, timedelta

    from . import scheduler, sync

    cutoff = datetime.now(UTC) - timedelta(days=days)
    engine = state.bus.store.engine
    runs = sync.delete_runs_before(engine, cutoff)
    job_runs = scheduler.delete_job_runs_before(engine, cutoff)
    click.echo(f"deleted {runs} sync run(s) and {job_runs} job run(s) older than {days} days")


@db.command("upgrade")
@pass_state
def db_upgrade(state: State) -> None:
    """Apply the store's migrations up to the newest."""
    from . import migrations
    from .store import Store, make_engine

    engine = make_engine(state.config.bus.store.reveal())
    Store(engine).upgrade()
    click.echo(f"store schema at {migrations.current(engine)}")


# --- the web console -------------------------------------------------------------------


@cli.group("console", invoke_without_command=True)
@click.option("--host", default=None, help="Address to listen on (default bus.console_host).")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Port to listen on (default bus.console_port, else 8470; 0: any free port).",
)
@click.pass_context
def console_command(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Serve the web console (Vietnamese, with an English switch) until Ctrl-C."""
    if ctx.invoked_subcommand is not None:
        return
    from .console.server import ConsoleServer
    from .console.settings import DEFAULT_PORT

    state: State = ctx.obj
    cfg = state.config
    if port is None:
        port = cfg.bus.console_port if cfg.bus.console_port is not None else DEFAULT_PORT
    server = ConsoleServer(cfg, state.host, listen=host or cfg.bus.console_host, port=port)
    if not server.console.login_methods:
        click.echo(
            "warning: nobody can log in: add a 'console' section with users_file or ldap "
            "(docs/console.md)",
            err=True,
        )
    click.echo(f"console at {server.url} (Ctrl-C stops it)")
    server.serve()


@console_command.command("adduser")
@click.argument("name")
@click.option("--role", type=click.Choice(["viewer", "operator", "admin"]), required=True)
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    envvar="LIENTHONG_CONSOLE_PASSWORD",
    help="Asked for when not given (or $LIENTHONG_CONSOLE_PASSWORD).",
)
@pass_state
def console_adduser(state: State, name: str, role: str, password: str) -> None:
    """Add or change a local console account in console.users_file (an argon2 hash)."""
    from .console.auth import add_local_account

    path = state.config.console.users_file
    if path is None:
        raise ConfigError(
            ["console.users_file is not set. Hint: add 'console: {users_file: console-users}'"]
        )
    try:
        add_local_account(path, name, role, password)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    click.echo(f"{name} ({role}) written to {path}")


register_mapping_commands(mapping)


def build() -> click.Group:
    """The command with the plugins' subcommands added, the core's own ``jobs`` and ``sync`` too.

    Those join through ``lienthong_register_commands`` like a third party's commands.
    """
    host = PluginHost()
    host.add(sync_commands, "sync_commands", origin="built-in")
    host.refresh()
    host.register_commands(cli)
    return cli


def main() -> None:
    build()(prog_name="lienthong")
