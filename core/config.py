"""Load and check the configuration: every problem reported at once, each with its line.

A config file has five sections: ``bus`` (store, broker, folders, limits,
retry), ``endpoints`` (one configured adapter each), ``routes``, ``jobs`` and
``access`` (who may send to whom; see lienthong.access).
Paths are relative to the config file's folder. Secrets are never written in
the file: an option marked secret, and the store and broker URLs, take
``{env: NAME}`` or ``{file: PATH}``, and are never shown in output.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import access
from .access import AccessPolicy
from .adapter import Secret, resolve_options, resolve_secret
from .console import settings as console_settings
from .console.settings import ConsoleSettings
from .errors import ConfigError, ConfigProblem
from .host import PluginHost
from .router import EndpointFrom, OrderBy, Route, Target, compile_xpath
from .scheduler import JobSpec, jobs_from_config
from .suggest import did_you_mean, unknown_key

DEFAULT_CONFIG = Path("config/lienthong.yaml")
CONFIG_VARIABLE = "LIENTHONG_CONFIG"


@dataclass
class RetryPolicy:
    """Exponential back-off with jitter for transient errors."""

    max_attempts: int = 10
    initial_delay: float = 2.0
    max_delay: float = 600.0
    multiplier: float = 2.0
    jitter: float = 0.2


@dataclass
class BusSettings:
    store: Secret = field(default_factory=lambda: Secret("sqlite:///var/lienthong.db"))
    broker: Secret = field(default_factory=lambda: Secret("embedded"))
    var_dir: Path = Path("var")
    mappings: Path = Path("mappings")
    max_message_bytes: int = 10 * 1024 * 1024
    poll_interval: float = 1.0
    batch_size: int = 200
    claim_seconds: float = 60.0
    requeue_seconds: float = 60.0
    breaker_failures: int = 5
    breaker_reset_seconds: float = 60.0
    # Sources polled at once by one worker (each endpoint by one thread at a time).
    poll_threads: int = 4
    # A worker's heartbeat (lienthong.holders), and the silence after which it counts as dead.
    heartbeat_seconds: float = 2.0
    heartbeat_timeout: float = 10.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # /metrics and /health over HTTP (lienthong.metrics); None: not served.
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    # The audit trail's anchors outside the database (lienthong.audit): an HMAC key
    # (None: var/audit.key on SQLite, made on first start; no key elsewhere), and
    # the file the chain's head is written to every audit_anchor_seconds.
    audit_key: Secret | None = None
    audit_anchor: Path | None = None
    audit_anchor_seconds: float = 10.0

    @property
    def anchor_path(self) -> Path:
        return self.audit_anchor or self.var_dir / "audit.anchor"

    # The web console (lienthong.console) served by 'lienthong run'; None: not served.
    console_port: int | None = None
    console_host: str = "127.0.0.1"
    # Days the inputs of mapped deliveries are kept for 'lienthong mapping diff'
    # (lienthong.mapping_commands); 0: not kept. The bus purges older ones.
    mapping_inputs_days: float = 30.0

    @property
    def embedded(self) -> bool:
        return self.broker.reveal() == "embedded"


@dataclass
class EndpointConfig:
    name: str
    adapter: str
    settings: dict[str, Any]
    location: str


@dataclass
class Config:
    """A checked configuration, ready for the bus."""

    path: Path | None
    base_dir: Path
    bus: BusSettings
    endpoints: dict[str, EndpointConfig]
    routes: list[Route]
    jobs: dict[str, JobSpec]
    raw: dict[str, Any]
    access: AccessPolicy = field(default_factory=AccessPolicy)
    console: ConsoleSettings = field(default_factory=ConsoleSettings)


# --- YAML with line numbers -------------------------------------------------


class _Lines(dict[tuple[Any, ...], int]):
    """Line numbers of every key and item, by path from the root."""

    def of(self, path: tuple[Any, ...]) -> int | None:
        while path:
            if path in self:
                return self[path]
            path = path[:-1]
        return self.get((), None)


MAX_CONFIG_BYTES = 1024 * 1024
MAX_ALIASES = 50
_PLAIN_TAGS = {"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"}


class _Builder:
    """Builds plain data from YAML nodes, recording lines; an aliased node is built once.

    Building each node once keeps alias "bombs" linear, and a node met again while
    it is being built is a cycle, refused.
    """

    def __init__(self, loader: Any, lines: _Lines) -> None:
        self.loader = loader
        self.lines = lines
        self.built: dict[int, Any] = {}
        self.building: set[int] = set()

    def build(self, node: yaml.Node, path: tuple[Any, ...]) -> Any:
        self.lines[path] = node.start_mark.line + 1
        if not isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
            return self.loader.construct_object(node)
        if node.tag not in _PLAIN_TAGS:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"the tag {node.tag!r} is not accepted in a lienthong config",
                node.start_mark,
            )
        key = id(node)
        if key in self.built:
            return self.built[key]
        if key in self.building:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                "a recursive alias (an anchor used inside itself) is not accepted",
                node.start_mark,
            )
        self.building.add(key)
        result: Any
        if isinstance(node, yaml.MappingNode):
            result = {}
            for key_node, value_node in node.value:
                name = self.loader.construct_object(key_node)
                self.lines[(*path, name)] = key_node.start_mark.line + 1
                result[name] = self.build(value_node, (*path, name))
                self.lines[(*path, name)] = key_node.start_mark.line + 1
        else:
            result = [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        self.building.discard(key)
        self.built[key] = result
        return result


def read_yaml(path: Path) -> tuple[dict[str, Any], _Lines]:
    """Read a YAML file into plain data and the line of every path."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(
            [
                ConfigProblem(
                    str(path),
                    f"cannot read the config file: {exc.strerror}. "
                    f"Hint: pass --config or set {CONFIG_VARIABLE}",
                )
            ]
        ) from exc
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(
            [
                ConfigProblem(
                    str(path),
                    (
                        f"the config file is over {MAX_CONFIG_BYTES:,} bytes; a lienthong "
                        "config is a few kilobytes. Hint: check that --config names the right file"
                    ),
                )
            ]
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [
                ConfigProblem(
                    str(path),
                    (
                        f"not UTF-8 text (bad byte at offset {exc.start}). "
                        "Hint: save the file as UTF-8"
                    ),
                )
            ]
        ) from exc
    data, lines = _parse_yaml(text, path)
    if not isinstance(data, dict):
        raise ConfigError([ConfigProblem(str(path), "the config must be a mapping of sections")])
    return data, lines


def _parse_yaml(text: str, path: Path) -> tuple[Any, _Lines]:
    """Compose and build the data, refusing what a config never needs and attacks use."""
    lines = _Lines()
    loader = None
    try:
        # A few aliases keep a config short; many are an expansion bomb.
        aliases = 0
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            aliases += isinstance(token, yaml.AliasToken)
            if aliases > MAX_ALIASES:
                raise yaml.scanner.ScannerError(
                    None,
                    None,
                    f"more than {MAX_ALIASES} YAML aliases (*name): a config "
                    "needs a few, an entity-expansion attack needs many",
                    token.start_mark,
                )
        loader = yaml.SafeLoader(text)
        node = loader.get_single_node()
        data = _Builder(loader, lines).build(node, ()) if node is not None else {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError([ConfigProblem(where, f"not valid YAML: {exc}")]) from exc
    except TypeError as exc:  # a list or mapping used as a key
        raise ConfigError([ConfigProblem(str(path), f"not a valid config: {exc}")]) from exc
    except RecursionError as exc:
        raise ConfigError(
            [
                ConfigProblem(
                    str(path),
                    (
                        "the YAML is nested too deeply to be a config. "
                        "Hint: check the file's brackets"
                    ),
                )
            ]
        ) from exc
    finally:
        if loader is not None:
            loader.dispose()
    return data, lines


# --- checking ----------------------------------------------------------------


class _Checker:
    def __init__(self, path: Path | None, lines: _Lines, environ: Mapping[str, str]) -> None:
        self.path = path
        self.lines = lines
        self.environ = environ
        self.problems: list[ConfigProblem] = []

    def where(self, *keys: Any) -> str:
        dotted = ".".join(str(k) for k in keys) or "(top)"
        line = self.lines.of(tuple(keys))
        file = str(self.path) if self.path else "config"
        return f"{file}:{line} {dotted}" if line else f"{file} {dotted}"

    def problem(self, keys: tuple[Any, ...], message: str) -> None:
        self.problems.append(ConfigProblem(self.where(*keys), message))

    def unknown_keys(
        self, data: Mapping[str, Any], known: list[str], keys: tuple[Any, ...]
    ) -> None:
        for key in data:
            if key not in known:
                self.problem((*keys, key), unknown_key(key, known))


_BUS_KEYS = [
    "store",
    "broker",
    "var_dir",
    "mappings",
    "max_message_bytes",
    "poll_interval",
    "batch_size",
    "claim_seconds",
    "requeue_seconds",
    "breaker_failures",
    "breaker_reset_seconds",
    "poll_threads",
    "heartbeat_seconds",
    "heartbeat_timeout",
    "retry",
    "metrics_port",
    "metrics_host",
    "audit_key",
    "audit_anchor",
    "audit_anchor_seconds",
    "console_port",
    "console_host",
    "mapping_inputs_days",
]
_RETRY_KEYS = ["max_attempts", "initial_delay", "max_delay", "multiplier", "jitter"]
_ROUTE_KEYS = ["name", "from", "kind", "headers", "when", "senders", "namespaces", "to"]
_TARGET_KEYS = ["endpoint", "endpoint_from", "mapping", "params", "validate", "kind", "order_by"]
_ORDER_KEYS = ["group", "sequence"]
_SECTIONS = ["bus", "endpoints", "routes", "jobs", "access", "console"]


def _bus(c: _Checker, raw: Mapping[str, Any], base: Path) -> BusSettings:
    bus = BusSettings()
    c.unknown_keys(raw, _BUS_KEYS, ("bus",))
    for name in ("store", "broker", "audit_key"):
        if name in raw:
            try:
                setattr(bus, name, resolve_secret(raw[name], c.environ))
            except ValueError as exc:
                c.problem(("bus", name), str(exc))
    store = bus.store.reveal()
    if store.startswith("sqlite:///") and not store.startswith("sqlite:////"):
        relative = store.removeprefix("sqlite:///")
        if relative and relative != ":memory:":
            bus.store = Secret(f"sqlite:///{(base / relative).resolve()}", bus.store.origin)
    broker = bus.broker.reveal()
    if broker != "embedded" and not broker.startswith(("amqp://", "amqps://", "pyamqp://")):
        c.problem(("bus", "broker"), "expected 'embedded' or an amqp:// URL")
    for name in ("var_dir", "mappings"):
        if name in raw:
            setattr(bus, name, Path(str(raw[name])))
        setattr(bus, name, (base / getattr(bus, name)).resolve())
    if raw.get("audit_anchor") is not None:
        bus.audit_anchor = (base / str(raw["audit_anchor"])).resolve()
    for name, kind in (
        ("max_message_bytes", int),
        ("batch_size", int),
        ("breaker_failures", int),
        ("breaker_reset_seconds", float),
        ("poll_interval", float),
        ("claim_seconds", float),
        ("requeue_seconds", float),
        ("audit_anchor_seconds", float),
        ("poll_threads", int),
        ("heartbeat_seconds", float),
        ("heartbeat_timeout", float),
    ):
        if name in raw:
            value = raw[name]
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                c.problem(("bus", name), f"expected a positive number, got {value!r}")
            else:
                setattr(bus, name, kind(value))
    if "mapping_inputs_days" in raw:
        days = raw["mapping_inputs_days"]
        if not isinstance(days, (int, float)) or isinstance(days, bool) or days < 0:
            c.problem(
                ("bus", "mapping_inputs_days"),
                f"expected a number of days, 0 or more, got {days!r}. Hint: 30 keeps a "
                "month of inputs for 'lienthong mapping diff'; 0 keeps none",
            )
        else:
            bus.mapping_inputs_days = float(days)
    if bus.heartbeat_seconds >= bus.heartbeat_timeout:
        c.problem(
            ("bus", "heartbeat_timeout"),
            f"must be longer than heartbeat_seconds ({bus.heartbeat_seconds:g}), got "
            f"{bus.heartbeat_timeout:g}. Hint: a few heartbeats, e.g. 5 times heartbeat_seconds",
        )
    for server, example in (("metrics", 9464), ("console", 8470)):
        if raw.get(f"{server}_port") is not None:
            port = raw[f"{server}_port"]
            if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
                c.problem(
                    ("bus", f"{server}_port"),
                    f"expected a TCP port 0-65535 (0: any free port), got {port!r}. "
                    f"Hint: {example}",
                )
            else:
                setattr(bus, f"{server}_port", port)
        if f"{server}_host" in raw:
            host = raw[f"{server}_host"]
            if not isinstance(host, str) or not host.strip():
                c.problem(
                    ("bus", f"{server}_host"), f"expected an address to listen on, got {host!r}"
                )
            else:
                setattr(bus, f"{server}_host", host.strip())
    retry = raw.get("retry", {}) or {}
    if not isinstance(retry, Mapping):
        c.problem(("bus", "retry"), "expected a mapping")
        retry = {}
    c.unknown_keys(retry, _RETRY_KEYS, ("bus", "retry"))
    for name in _RETRY_KEYS:
        if name in retry:
            value = retry[name]
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                c.problem(("bus", "retry", name), f"expected a number ≥ 0, got {value!r}")
            else:
                setattr(bus.retry, name, type(getattr(bus.retry, name))(value))
    return bus


def _endpoints(c: _Checker, raw: Any, host: PluginHost, base: Path) -> dict[str, EndpointConfig]:
    endpoints: dict[str, EndpointConfig] = {}
    if not isinstance(raw, Mapping):
        c.problem(("endpoints",), "expected a mapping of endpoint name → settings")
        return endpoints
    for name, settings in raw.items():
        keys = ("endpoints", name)
        if not isinstance(settings, Mapping) or "adapter" not in settings:
            c.problem(keys, "each endpoint needs 'adapter: NAME' (see 'lienthong adapters')")
            continue
        try:
            cls = host.adapter(str(settings["adapter"]))
        except ConfigError as exc:
            c.problem((*keys, "adapter"), exc.problems[0].message)
            continue
        options = {k: v for k, v in settings.items() if k != "adapter"}
        resolved, problems = resolve_options(cls, options, "", c.environ)
        for p in problems:
            option = p.location.lstrip(".")
            c.problems.append(ConfigProblem(c.where(*keys, option), p.message))
        endpoints[str(name)] = EndpointConfig(str(name), cls.name, resolved, c.where(*keys))
    return endpoints


def _routes(
    c: _Checker,
    raw: Any,
    endpoints: set[str],
    host: PluginHost,
    bus: BusSettings,
) -> list[Route]:
    routes: list[Route] = []
    if not isinstance(raw, list):
        c.problem(("routes",), "expected a list of routes")
        return routes
    names: set[str] = set()
    for i, item in enumerate(raw):
        keys: tuple[Any, ...] = ("routes", i)
        if not isinstance(item, Mapping):
            c.problem(keys, "each route is a mapping with at least 'name' and 'to'")
            continue
        c.unknown_keys(item, _ROUTE_KEYS, keys)
        name = str(item.get("name") or f"route-{i + 1}")
        if name in names:
            c.problem((*keys, "name"), f"route name '{name}' is used twice")
        names.add(name)
        namespaces = dict(item.get("namespaces") or {})
        sources = _as_list(item.get("from"))
        for s in sources:
            _check_endpoint(c, (*keys, "from"), s, endpoints)
        predicate = None
        if item.get("when"):
            try:
                predicate = compile_xpath(
                    str(item["when"]), namespaces, host.xpath_functions, c.where(*keys, "when")
                )
            except ConfigError as exc:
                c.problems.extend(exc.problems)
        if "senders" in item and not _as_list(item["senders"]):
            c.problem(
                (*keys, "senders"),
                "list the agency codes this route takes messages from, or leave 'senders' out",
            )
        targets = []
        to = item.get("to")
        if not to:
            c.problem((*keys, "to"), "a route needs at least one target under 'to'")
        for j, t in enumerate(_as_list(to) if not isinstance(to, list) else to):
            target = _target(c, (*keys, "to", j), t, namespaces, endpoints, host, bus)
            if target:
                targets.append(target)
        routes.append(
            Route(
                name=name,
                targets=targets,
                kinds=frozenset(_as_list(item.get("kind"))),
                sources=frozenset(sources),
                headers={str(k): str(v) for k, v in (item.get("headers") or {}).items()},
                predicate=predicate,
                senders=frozenset(str(s) for s in _as_list(item.get("senders"))),
            )
        )
    return routes


def _target(
    c: _Checker,
    keys: tuple[Any, ...],
    raw: Any,
    namespaces: dict[str, str],
    endpoints: set[str],
    host: PluginHost,
    bus: BusSettings,
) -> Target | None:
    if isinstance(raw, str):
        raw = {"endpoint": raw}
    if not isinstance(raw, Mapping):
        c.problem(keys, "a target is an endpoint name or a mapping with 'endpoint'")
        return None
    c.unknown_keys(raw, _TARGET_KEYS, keys)
    target = Target(kind=raw.get("kind"))
    if "endpoint" in raw:
        target.endpoint = str(raw["endpoint"])
        _check_endpoint(c, (*keys, "endpoint"), target.endpoint, endpoints)
    elif "endpoint_from" in raw:
        spec = raw["endpoint_from"] or {}
        if not isinstance(spec, Mapping) or "xpath" not in spec:
            c.problem((*keys, "endpoint_from"), "needs 'xpath' and 'map', 'template' or 'default'")
            return None
        try:
            xpath = compile_xpath(
                str(spec["xpath"]),
                namespaces,
                host.xpath_functions,
                c.where(*keys, "endpoint_from", "xpath"),
            )
        except ConfigError as exc:
            c.problems.extend(exc.problems)
            return None
        table = {str(k): str(v) for k, v in (spec.get("map") or {}).items()}
        for endpoint in [*table.values(), *([spec["default"]] if spec.get("default") else [])]:
            _check_endpoint(c, (*keys, "endpoint_from"), endpoint, endpoints)
        target.endpoint_from = EndpointFrom(xpath, table, spec.get("template"), spec.get("default"))
    else:
        c.problem(keys, "a target needs 'endpoint' or 'endpoint_from'")
        return None
    if raw.get("mapping"):
        target.mapping = str(raw["mapping"])
        if not (bus.mappings / target.mapping).is_file():
            c.problem(
                (*keys, "mapping"),
                f"mapping '{target.mapping}' not found in {bus.mappings}. "
                "Hint: paths are relative to bus.mappings",
            )
    target.params = {str(k): str(v) for k, v in (raw.get("params") or {}).items()}
    if raw.get("validate"):
        target.schema = bus.mappings / str(raw["validate"])
        if not target.schema.is_file():
            c.problem(
                (*keys, "validate"), f"schema '{raw['validate']}' not found in {bus.mappings}"
            )
    if "order_by" in raw:
        target.order_by = _order_by(c, (*keys, "order_by"), raw["order_by"], namespaces, host)
    return target


def _order_by(
    c: _Checker, keys: tuple[Any, ...], raw: Any, namespaces: dict[str, str], host: PluginHost
) -> OrderBy | None:
    if not isinstance(raw, Mapping) or not raw.get("group"):
        c.problem(
            keys,
            "order_by needs 'group': an XPath on the message naming what must stay in order "
            "(e.g. a dossier number), and may have 'sequence': an XPath giving its place",
        )
        return None
    c.unknown_keys(raw, _ORDER_KEYS, keys)
    compiled = {}
    for name in _ORDER_KEYS:
        if raw.get(name):
            try:
                compiled[name] = compile_xpath(
                    str(raw[name]), namespaces, host.xpath_functions, c.where(*keys, name)
                )
            except ConfigError as exc:
                c.problems.extend(exc.problems)
                return None
    return OrderBy(compiled["group"], compiled.get("sequence"))


def _jobs(c: _Checker, raw: Any, declared: set[str]) -> dict[str, JobSpec]:
    jobs, problems = jobs_from_config(raw, "jobs")
    for p in problems:
        c.problem(tuple(p.location.split(".")), p.message)
    for name, job in jobs.items():
        used = [("poll", job.poll)] if job.poll else []
        if job.sync:
            used += [
                ("sync.source", job.sync.source_endpoint),
                ("sync.target", job.sync.target_endpoint),
            ]
        for key, endpoint in used:
            if endpoint:
                _check_endpoint(c, ("jobs", name, *key.split(".")), endpoint, declared)
    return jobs


def _check_endpoint(c: _Checker, keys: tuple[Any, ...], name: str, endpoints: set[str]) -> None:
    if name not in endpoints:
        c.problem(keys, f"no endpoint named '{name}'.{did_you_mean(name, endpoints)}")


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(value)]


def load(
    path: Path | str | None = None,
    *,
    host: PluginHost | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Read and check a config file; raise ``ConfigError`` listing every problem."""
    path = Path(path or os.environ.get(CONFIG_VARIABLE) or DEFAULT_CONFIG)
    data, lines = read_yaml(path)
    return from_dict(
        data, base_dir=path.resolve().parent, path=path, lines=lines, host=host, environ=environ
    )


def from_dict(
    data: Mapping[str, Any],
    *,
    base_dir: Path,
    path: Path | None = None,
    lines: _Lines | None = None,
    host: PluginHost | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Check configuration data already in memory (tests, the tester plugin)."""
    host = host or PluginHost()
    c = _Checker(path, lines or _Lines(), os.environ if environ is None else environ)
    c.unknown_keys(data, _SECTIONS, ())
    raw_bus = data.get("bus") or {}
    if not isinstance(raw_bus, Mapping):
        c.problem(("bus",), f"the bus section must be a mapping of settings, not {raw_bus!r}")
        raw_bus = {}
    bus = _bus(c, raw_bus, base_dir)
    endpoints = _endpoints(c, data.get("endpoints") or {}, host, base_dir)
    # Routes are checked against every declared endpoint, even one with problems
    # of its own, so one mistake is reported once.
    declared = (
        set(data.get("endpoints") or {}) if isinstance(data.get("endpoints"), Mapping) else set()
    )
    routes = _routes(c, data.get("routes") or [], declared, host, bus)
    jobs = _jobs(c, data.get("jobs"), declared)
    policy, access_problems = access.from_config(data.get("access"), declared, c.where)
    c.problems.extend(access_problems)
    console, console_problems = console_settings.from_config(
        data.get("console"), base_dir, c.where, c.environ
    )
    c.problems.extend(console_problems)
    if c.problems:
        raise ConfigError(c.problems)
    return Config(path, base_dir, bus, endpoints, routes, jobs, dict(data), policy, console)
