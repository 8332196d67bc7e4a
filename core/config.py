"""Load and check the configuration: every problem reported at once, each with its line.

A config file has five sections: ``bus`` (store, broker, folders, limits,
retry), ``endpoints`` (one configured adapter each), ``routes``, ``jobs`` and
``access`` (who may send to whom; see lienthong.access).
Paths are relative to the config file's folder. Secrets are never written in
the file: an option marked secret, and the store and broker URLs, take
``{env: NAME}`` or ``{file: PATH}``, and are never shown in output.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
)
from pydantic_core import ErrorDetails

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


@dataclass(frozen=True)
class Expect:
    """What a bus setting must be, in the words of its config problem, and a hint."""

    text: str
    hint: str = ""


def _expect(text: str, hint: str = "") -> dict[str, Expect]:
    return {"expect": Expect(text, hint)}


def _context(info: ValidationInfo) -> tuple[Path | None, Mapping[str, str] | None]:
    """The config's folder and the environment the bus section is checked with."""
    context = info.context or {}
    return context.get("base"), context.get("environ")


def _secret(value: Any, info: ValidationInfo) -> Any:
    base, environ = _context(info)
    return value if isinstance(value, Secret) else resolve_secret(value, environ, base)


def _store_url(store: Secret, info: ValidationInfo) -> Secret:
    """A relative SQLite file is relative to the config's folder, not the working one."""
    base, _ = _context(info)
    url = store.reveal()
    relative = url.removeprefix("sqlite:///")
    if base is None or relative in (url, "", ":memory:") or relative.startswith("/"):
        return store
    return Secret(f"sqlite:///{(base / relative).resolve()}", store.origin)


def _broker_url(broker: Secret) -> Secret:
    url = broker.reveal()
    if url != "embedded" and not url.startswith(("amqp://", "amqps://", "pyamqp://")):
        raise ValueError("expected 'embedded' or an amqp:// URL")
    return broker


def _from_base(path: Path | None, info: ValidationInfo) -> Path | None:
    """A path in the config is relative to the config's folder."""
    base, _ = _context(info)
    return path if path is None or base is None else (base / path).resolve()


def _as_path(value: Any) -> Any:
    return value if value is None or isinstance(value, Path) else Path(str(value))


_Secret = Annotated[Secret, BeforeValidator(_secret)]
_Path = Annotated[Path, BeforeValidator(_as_path), AfterValidator(_from_base)]
_Positive = Annotated[float, Field(gt=0, strict=True)]
_Count = Annotated[int, Field(gt=0, strict=True)]
_Port = Annotated[int, Field(ge=0, le=65535, strict=True)]
_Host = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, strict=True)]
_NotNegative = Annotated[float, Field(ge=0, strict=True)]
_POSITIVE = _expect("expected a positive number")
_COUNT = _expect("expected a positive whole number")
_HOST = _expect("expected an address to listen on")
_RETRY = _expect("expected a number ≥ 0")
_PORT = "expected a TCP port 0-65535 (0: any free port)"


@dataclass
class RetryPolicy:
    """Exponential back-off with jitter for transient errors."""

    __pydantic_config__ = ConfigDict(extra="forbid")

    max_attempts: Annotated[int, Field(ge=0, strict=True)] = field(default=10, metadata=_RETRY)
    initial_delay: _NotNegative = field(default=2.0, metadata=_RETRY)
    max_delay: _NotNegative = field(default=600.0, metadata=_RETRY)
    multiplier: _NotNegative = field(default=2.0, metadata=_RETRY)
    jitter: _NotNegative = field(default=0.2, metadata=_RETRY)


@dataclass
class BusSettings:
    """The ``bus:`` section: each setting's type, range, default and problem text, declared once.

    Checked by pydantic (:func:`_bus`); a config's problems name the setting with
    its file and line, and a misspelt key gets a suggestion.
    """

    __pydantic_config__ = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    store: Annotated[_Secret, AfterValidator(_store_url), Field(validate_default=True)] = field(
        default_factory=lambda: Secret("sqlite:///var/lienthong.db")
    )
    broker: Annotated[_Secret, AfterValidator(_broker_url)] = field(
        default_factory=lambda: Secret("embedded")
    )
    var_dir: Annotated[_Path, Field(validate_default=True)] = Path("var")
    mappings: Annotated[_Path, Field(validate_default=True)] = Path("mappings")
    max_message_bytes: _Count = field(default=10 * 1024 * 1024, metadata=_COUNT)
    poll_interval: _Positive = field(default=1.0, metadata=_POSITIVE)
    batch_size: _Count = field(default=200, metadata=_COUNT)
    claim_seconds: _Positive = field(default=60.0, metadata=_POSITIVE)
    requeue_seconds: _Positive = field(default=60.0, metadata=_POSITIVE)
    breaker_failures: _Count = field(default=5, metadata=_COUNT)
    breaker_reset_seconds: _Positive = field(default=60.0, metadata=_POSITIVE)
    # Sources polled at once by one worker (each endpoint by one thread at a time).
    poll_threads: _Count = field(default=4, metadata=_COUNT)
    # A worker's heartbeat (lienthong.holders), and the silence after which it counts as dead.
    heartbeat_seconds: _Positive = field(default=2.0, metadata=_POSITIVE)
    heartbeat_timeout: _Positive = field(default=10.0, metadata=_POSITIVE)
    retry: Annotated[RetryPolicy, BeforeValidator(lambda v: v or {})] = field(
        default_factory=RetryPolicy, metadata=_expect("expected a mapping")
    )
    # /metrics and /health over HTTP (lienthong.metrics); None: not served.
    metrics_port: _Port | None = field(default=None, metadata=_expect(_PORT, "9464"))
    metrics_host: _Host = field(default="127.0.0.1", metadata=_HOST)
    # The audit trail's anchors outside the database (lienthong.audit): an HMAC key
    # (None: var/audit.key on SQLite, made on first start; no key elsewhere), and
    # the file the chain's head is written to every audit_anchor_seconds.
    audit_key: _Secret | None = None
    audit_anchor: _Path | None = None
    audit_anchor_seconds: _Positive = field(default=10.0, metadata=_POSITIVE)

    @property
    def anchor_path(self) -> Path:
        return self.audit_anchor or self.var_dir / "audit.anchor"

    # The web console (lienthong.console) served by 'lienthong run'; None: not served.
    console_port: _Port | None = field(default=None, metadata=_expect(_PORT, "8470"))
    console_host: _Host = field(default="127.0.0.1", metadata=_HOST)
    # Days the inputs of mapped deliveries are kept for 'lienthong mapping diff'
    # (lienthong.mapping_commands); 0: not kept. The bus purges older ones.
    mapping_inputs_days: Annotated[float, Field(ge=0, strict=True)] = field(
        default=30.0,
        metadata=_expect(
            "expected a number of days, 0 or more",
            "30 keeps a month of inputs for 'lienthong mapping diff'; 0 keeps none",
        ),
    )

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


_ROUTE_KEYS = ["name", "from", "kind", "headers", "when", "senders", "namespaces", "to"]
_TARGET_KEYS = ["endpoint", "endpoint_from", "mapping", "params", "validate", "kind", "order_by"]
_ORDER_KEYS = ["group", "sequence"]
_SECTIONS = ["bus", "endpoints", "routes", "jobs", "access", "console"]


_BUS = TypeAdapter(BusSettings)


def _bus(c: _Checker, raw: Mapping[str, Any], base: Path) -> BusSettings:
    """The bus section checked by pydantic, each of its errors worded as a config problem.

    With problems, the settings that passed are kept and the others take their
    defaults, so the rest of the config is still checked against a usable bus.
    """
    context = {"base": base, "environ": c.environ}
    try:
        bus = _BUS.validate_python(dict(raw), context=context)
    except ValidationError as exc:
        errors = sorted(exc.errors(), key=lambda e: c.lines.of(("bus", *e["loc"])) or 0)
        for error in errors:
            c.problem(("bus", *error["loc"]), _bus_problem(error))
        failed = {error["loc"][0] for error in errors}
        bus = _BUS.validate_python(
            {k: v for k, v in raw.items() if k not in failed}, context=context
        )
    if bus.heartbeat_seconds >= bus.heartbeat_timeout:
        c.problem(
            ("bus", "heartbeat_timeout"),
            f"must be longer than heartbeat_seconds ({bus.heartbeat_seconds:g}), got "
            f"{bus.heartbeat_timeout:g}. Hint: a few heartbeats, e.g. 5 times heartbeat_seconds",
        )
    return bus


def _bus_problem(error: ErrorDetails) -> str:
    """A pydantic error in the words the setting declares (``Expect``), with the bad value."""
    *section, key = error["loc"]
    cls: type = RetryPolicy if section == ["retry"] else BusSettings
    declared = {f.name: f for f in dataclasses.fields(cls)}
    if error["type"] in ("unexpected_keyword_argument", "extra_forbidden"):
        return unknown_key(key, declared)
    if error["type"] == "value_error":
        return str(error["ctx"]["error"])
    expect = declared[str(key)].metadata.get("expect") if str(key) in declared else None
    if expect is None:
        return f"{error['msg']}, got {error['input']!r}"
    hint = f". Hint: {expect.hint}" if expect.hint else ""
    return f"{expect.text}, got {error['input']!r}{hint}"


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
        resolved, problems = resolve_options(cls, options, "", c.environ, base)
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
