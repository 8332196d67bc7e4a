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
from typing import Annotated, Any, ClassVar, TypeVar

import yaml
from lxml import etree
from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints, ValidationInfo

from . import access
from .access import AccessPolicy
from .adapter import Secret, resolve_options
from .console import settings as console_settings
from .console.settings import ConsoleSettings
from .errors import ConfigError, ConfigProblem
from .host import PluginHost
from .router import EndpointFrom, OncePer, OrderBy, Route, Target, compile_xpath
from .scheduler import JobSpec, jobs_from_config
from .shape import (
    CLOSED,
    POSITIVE,
    ConfigPath,
    ConfigSecret,
    Expect,
    Names,
    Positive,
    Text,
    check,
    expect,
)
from .suggest import did_you_mean, unknown_key

DEFAULT_CONFIG = Path("config/lienthong.yaml")
CONFIG_VARIABLE = "LIENTHONG_CONFIG"
T = TypeVar("T")


def _store_url(store: Secret, info: ValidationInfo) -> Secret:
    """A relative SQLite file is relative to the config's folder, not the working one."""
    base = (info.context or {}).get("base")
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


_Count = Annotated[int, Field(gt=0, strict=True)]
_Port = Annotated[int, Field(ge=0, le=65535, strict=True)]
_Host = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, strict=True)]
_NotNegative = Annotated[float, Field(ge=0, strict=True)]
_COUNT = expect("expected a positive whole number")
_HOST = expect("expected an address to listen on")
_RETRY = expect("expected a number ≥ 0")
_PORT = "expected a TCP port 0-65535 (0: any free port)"


@dataclass
class RetryPolicy:
    """Exponential back-off with jitter for transient errors."""

    __pydantic_config__ = CLOSED

    max_attempts: Annotated[int, Field(ge=0, strict=True)] = field(default=10, metadata=_RETRY)
    initial_delay: _NotNegative = field(default=2.0, metadata=_RETRY)
    max_delay: _NotNegative = field(default=600.0, metadata=_RETRY)
    multiplier: _NotNegative = field(default=2.0, metadata=_RETRY)
    jitter: _NotNegative = field(default=0.2, metadata=_RETRY)


@dataclass
class BusSettings:
    """The ``bus:`` section: each setting's type, range, default and problem text, declared once.

    Checked by pydantic (lienthong.shape); a config's problems name the setting
    with its file and line, and a misspelt key gets a suggestion.
    """

    __pydantic_config__ = CLOSED

    store: Annotated[ConfigSecret, AfterValidator(_store_url), Field(validate_default=True)] = (
        field(default_factory=lambda: Secret("sqlite:///var/lienthong.db"))
    )
    broker: Annotated[ConfigSecret, AfterValidator(_broker_url)] = field(
        default_factory=lambda: Secret("embedded")
    )
    var_dir: Annotated[ConfigPath, Field(validate_default=True)] = Path("var")
    mappings: Annotated[ConfigPath, Field(validate_default=True)] = Path("mappings")
    max_message_bytes: _Count = field(default=10 * 1024 * 1024, metadata=_COUNT)
    poll_interval: Positive = field(default=1.0, metadata=POSITIVE)
    batch_size: _Count = field(default=200, metadata=_COUNT)
    claim_seconds: Positive = field(default=60.0, metadata=POSITIVE)
    requeue_seconds: Positive = field(default=60.0, metadata=POSITIVE)
    breaker_failures: _Count = field(default=5, metadata=_COUNT)
    breaker_reset_seconds: Positive = field(default=60.0, metadata=POSITIVE)
    # Sources polled at once by one worker (each endpoint by one thread at a time).
    poll_threads: _Count = field(default=4, metadata=_COUNT)
    # A worker's heartbeat (lienthong.holders), and the silence after which it counts as dead.
    heartbeat_seconds: Positive = field(default=2.0, metadata=POSITIVE)
    heartbeat_timeout: Positive = field(default=10.0, metadata=POSITIVE)
    retry: Annotated[RetryPolicy, BeforeValidator(lambda v: v or {})] = field(
        default_factory=RetryPolicy
    )
    # /metrics and /health over HTTP (lienthong.metrics); None: not served.
    metrics_port: _Port | None = field(default=None, metadata=expect(_PORT, "9464"))
    metrics_host: _Host = field(default="127.0.0.1", metadata=_HOST)
    # The audit trail's anchors outside the database (lienthong.audit): an HMAC key
    # (None: var/audit.key on SQLite, made on first start; no key elsewhere), and
    # the file the chain's head is written to every audit_anchor_seconds.
    audit_key: ConfigSecret | None = None
    audit_anchor: ConfigPath | None = None
    audit_anchor_seconds: Positive = field(default=10.0, metadata=POSITIVE)

    @property
    def anchor_path(self) -> Path:
        return self.audit_anchor or self.var_dir / "audit.anchor"

    # The web console (lienthong.console) served by 'lienthong run'; None: not served.
    console_port: _Port | None = field(default=None, metadata=expect(_PORT, "8470"))
    console_host: _Host = field(default="127.0.0.1", metadata=_HOST)
    # Days the inputs of mapped deliveries are kept for 'lienthong mapping diff'
    # (lienthong.mapping_commands); 0: not kept. The bus purges older ones.
    mapping_inputs_days: Annotated[float, Field(ge=0, strict=True)] = field(
        default=30.0,
        metadata=expect(
            "expected a number of days, 0 or more",
            "30 keeps a month of inputs for 'lienthong mapping diff'; 0 keeps none",
        ),
    )

    @property
    def embedded(self) -> bool:
        return self.broker.reveal() == "embedded"


#: An endpoint's keys the core takes; the others are its adapter's options.
_ENDPOINT_CORE_KEYS = ("adapter", "concurrency")

#: The most calls one process may have in flight to one endpoint (``concurrency``).
MAX_CONCURRENCY = 32


@dataclass
class EndpointConfig:
    name: str
    adapter: str
    settings: dict[str, Any]
    location: str
    #: Sends in flight at once from one process, each on an adapter of its own.
    concurrency: int = 1


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
#: A config is a few levels deep; brackets nested thousands deep only make the loader crawl.
MAX_NESTING = 64
_OPENS = (
    yaml.BlockMappingStartToken,
    yaml.BlockSequenceStartToken,
    yaml.FlowMappingStartToken,
    yaml.FlowSequenceStartToken,
)
_CLOSES = (yaml.BlockEndToken, yaml.FlowMappingEndToken, yaml.FlowSequenceEndToken)
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
        # A few aliases keep a config short; many are an expansion bomb. Deep nesting is
        # refused as it opens: PyYAML's scanner slows down with every open bracket and
        # took half a minute over 50,000 of them (the composer then hit RecursionError).
        aliases = depth = 0
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            aliases += isinstance(token, yaml.AliasToken)
            depth += isinstance(token, _OPENS) - isinstance(token, _CLOSES)
            if depth > MAX_NESTING:
                where = f"{path}:{token.start_mark.line + 1}"
                raise ConfigError(
                    [
                        ConfigProblem(
                            where,
                            "the YAML is nested too deeply to be a config. "
                            "Hint: check the file's brackets",
                        )
                    ]
                )
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
    finally:
        if loader is not None:
            loader.dispose()
    return data, lines


# --- checking ----------------------------------------------------------------


class _Checker:
    def __init__(
        self,
        path: Path | None,
        lines: _Lines,
        environ: Mapping[str, str],
        base: Path,
        host: PluginHost,
    ) -> None:
        self.path = path
        self.lines = lines
        self.environ = environ
        self.context = {"base": base, "environ": environ}
        self.host = host
        self.problems: list[ConfigProblem] = []

    def where(self, *keys: Any) -> str:
        dotted = ".".join(str(k) for k in keys) or "(top)"
        line = self.lines.of(tuple(keys))
        file = str(self.path) if self.path else "config"
        return f"{file}:{line} {dotted}" if line else f"{file} {dotted}"

    def problem(self, keys: tuple[Any, ...], message: str) -> None:
        self.problems.append(ConfigProblem(self.where(*keys), message))

    def check(self, shape: type[T], raw: Any, *keys: Any) -> T | None:
        """The section at ``keys`` in its shape, each problem in it noted (lienthong.shape)."""
        value, problems = check(shape, raw, self.where, *keys, context=self.context)
        self.problems.extend(problems)
        return value

    def xpath(self, text: str, namespaces: Mapping[str, str], *keys: Any) -> etree.XPath | None:
        try:
            return compile_xpath(text, namespaces, self.host.xpath_functions, self.where(*keys))
        except ConfigError as exc:
            self.problems.extend(exc.problems)
            return None

    def endpoint(self, keys: tuple[Any, ...], name: str, endpoints: set[str]) -> None:
        if name not in endpoints:
            self.problem(keys, f"no endpoint named '{name}'.{did_you_mean(name, endpoints)}")


_SECTIONS = ["bus", "endpoints", "routes", "jobs", "access", "console"]


def _bus(c: _Checker, raw: Any) -> BusSettings:
    """The bus section; with problems, the settings that passed are kept and the others
    take their defaults, so the rest of the config is still checked against a usable bus.
    """
    # Not even a mapping: the defaults, so the rest is still checked against a usable bus.
    bus = c.check(BusSettings, raw, "bus") or c.check(BusSettings, {}, "bus")
    assert bus is not None  # every setting has a default
    if bus.heartbeat_seconds >= bus.heartbeat_timeout:
        c.problem(
            ("bus", "heartbeat_timeout"),
            f"must be longer than heartbeat_seconds ({bus.heartbeat_seconds:g}), got "
            f"{bus.heartbeat_timeout:g}. Hint: a few heartbeats, e.g. 5 times heartbeat_seconds",
        )
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
        options = {k: v for k, v in settings.items() if k not in _ENDPOINT_CORE_KEYS}
        resolved, problems = resolve_options(
            cls, options, "", c.environ, base, core_keys=_ENDPOINT_CORE_KEYS
        )
        for p in problems:
            option = p.location.lstrip(".")
            c.problems.append(ConfigProblem(c.where(*keys, option), p.message))
        concurrency = _concurrency(c, keys, settings.get("concurrency", 1))
        endpoints[str(name)] = EndpointConfig(
            str(name), cls.name, resolved, c.where(*keys), concurrency
        )
    return endpoints


def _concurrency(c: _Checker, keys: tuple[Any, ...], value: Any) -> int:
    """An endpoint's ``concurrency``: how many sends one process has in flight to it
    (its polls stay one at a time)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CONCURRENCY:
        c.problem(
            (*keys, "concurrency"),
            f"expected a whole number from 1 to {MAX_CONCURRENCY}, got {value!r}",
        )
        return 1
    return value


# --- routes: their shape, then what they name ---------------------------------


@dataclass
class _OrderByConfig:
    __pydantic_config__ = CLOSED
    shape: ClassVar[Expect] = Expect(
        "order_by needs 'group': an XPath on the message naming what must stay in order "
        "(e.g. a dossier number), and may have 'sequence': an XPath giving its place"
    )

    group: Text = field(
        metadata=expect("expected an XPath", "what must stay in order, e.g. a dossier number")
    )
    sequence: Text | None = None


@dataclass
class _EndpointFromConfig:
    __pydantic_config__ = CLOSED
    shape: ClassVar[Expect] = Expect(
        "endpoint_from needs 'xpath' and 'map', 'template' or 'default'"
    )

    xpath: Text
    map: dict[Text, Text] = field(default_factory=dict)
    template: Text | None = None
    default: Text | None = None


@dataclass
class _TargetConfig:
    __pydantic_config__ = CLOSED
    shape: ClassVar[Expect] = Expect("a target is an endpoint name or a mapping with 'endpoint'")

    endpoint: Text | None = None
    endpoint_from: _EndpointFromConfig | None = None
    mapping: Text | None = None
    params: dict[Text, Text] = field(default_factory=dict)
    validate: Text | None = None
    kind: Text | None = None
    order_by: _OrderByConfig | None = None
    once_per: Text | None = field(
        default=None,
        metadata=expect(
            "expected an XPath (text)",
            "what is sent once per value, e.g. \"string(//*[@key='dossierNo'])\"",
        ),
    )


def _targets(value: Any) -> list[Any]:
    """``to``: one target or a list of them, each an endpoint's name or a mapping."""
    if not value:
        raise ValueError("a route needs at least one target under 'to'")
    targets = value if isinstance(value, list) else [value]
    return [{"endpoint": t} if isinstance(t, str) else t for t in targets]


def _some_senders(senders: list[str]) -> list[str]:
    if not senders:
        raise ValueError(
            "list the agency codes this route takes messages from, or leave 'senders' out"
        )
    return senders


@dataclass
class _RouteConfig:
    __pydantic_config__ = CLOSED
    shape: ClassVar[Expect] = Expect("each route is a mapping with at least 'name' and 'to'")

    name: Text | None = None
    source: Annotated[Names, Field(alias="from")] = field(default_factory=list)
    kind: Names = field(default_factory=list)
    headers: dict[Text, Text] = field(default_factory=dict)
    when: Text | None = None
    senders: Annotated[Names | None, AfterValidator(_some_senders)] = None
    namespaces: dict[Text, Text] = field(default_factory=dict)
    # Each target is checked on its own (_target): one wrong target leaves the others checked.
    to: Annotated[list[Any], BeforeValidator(_targets), Field(validate_default=True)] = field(
        default_factory=list
    )


def _routes(c: _Checker, raw: Any, endpoints: set[str], bus: BusSettings) -> list[Route]:
    routes: list[Route] = []
    if not isinstance(raw, list):
        c.problem(("routes",), "expected a list of routes")
        return routes
    names: set[str] = set()
    for i, item in enumerate(raw):
        keys: tuple[Any, ...] = ("routes", i)
        spec = c.check(_RouteConfig, item, *keys)
        if spec is None:
            continue
        name = spec.name or f"route-{i + 1}"
        if name in names:
            c.problem((*keys, "name"), f"route name '{name}' is used twice")
        names.add(name)
        for source in spec.source:
            c.endpoint((*keys, "from"), source, endpoints)
        predicate = c.xpath(spec.when, spec.namespaces, *keys, "when") if spec.when else None
        targets = [
            _target(c, (*keys, "to", j), t, spec.namespaces, endpoints, bus)
            for j, t in enumerate(spec.to)
        ]
        routes.append(
            Route(
                name=name,
                targets=[t for t in targets if t],
                kinds=frozenset(spec.kind),
                sources=frozenset(spec.source),
                headers=spec.headers,
                predicate=predicate,
                senders=frozenset(spec.senders or ()),
            )
        )
    return routes


def _target(
    c: _Checker,
    keys: tuple[Any, ...],
    raw: Any,
    namespaces: dict[str, str],
    endpoints: set[str],
    bus: BusSettings,
) -> Target | None:
    spec = c.check(_TargetConfig, raw, *keys)
    if spec is None:
        return None
    target = Target(spec.endpoint, mapping=spec.mapping or None, params=spec.params, kind=spec.kind)
    if spec.endpoint is not None:
        c.endpoint((*keys, "endpoint"), spec.endpoint, endpoints)
    elif spec.endpoint_from is not None:
        given = spec.endpoint_from
        found = c.xpath(given.xpath, namespaces, *keys, "endpoint_from", "xpath")
        if found is None:
            return None
        for endpoint in [*given.map.values(), *([given.default] if given.default else [])]:
            c.endpoint((*keys, "endpoint_from"), endpoint, endpoints)
        target.endpoint_from = EndpointFrom(found, given.map, given.template, given.default)
    else:
        c.problem(keys, "a target needs 'endpoint' or 'endpoint_from'")
        return None
    if target.mapping and not (bus.mappings / target.mapping).is_file():
        c.problem(
            (*keys, "mapping"),
            f"mapping '{target.mapping}' not found in {bus.mappings}. "
            "Hint: paths are relative to bus.mappings",
        )
    if spec.validate:
        target.schema = bus.mappings / spec.validate
        if not target.schema.is_file():
            c.problem((*keys, "validate"), f"schema '{spec.validate}' not found in {bus.mappings}")
    if spec.order_by is not None:
        order, at = spec.order_by, (*keys, "order_by")
        group = c.xpath(order.group, namespaces, *at, "group")
        sequence = c.xpath(order.sequence, namespaces, *at, "sequence") if order.sequence else None
        if group is not None and (sequence is not None or not order.sequence):
            target.order_by = OrderBy(group, sequence)
    if spec.once_per is not None:
        value = c.xpath(spec.once_per, namespaces, *keys, "once_per")
        if value is not None:
            target.once_per = OncePer(value)
    return target


def _jobs(c: _Checker, raw: Any, declared: set[str]) -> dict[str, JobSpec]:
    jobs, problems = jobs_from_config(raw, c.where)
    c.problems.extend(problems)
    for name, job in jobs.items():
        used = [("poll", job.poll)] if job.poll else []
        if job.sync:
            used += [
                ("sync.source", job.sync.source_endpoint),
                ("sync.target", job.sync.target_endpoint),
            ]
        for key, endpoint in used:
            if endpoint:
                c.endpoint(("jobs", name, *key.split(".")), endpoint, declared)
    return jobs


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
    environ = os.environ if environ is None else environ
    c = _Checker(path, lines or _Lines(), environ, base_dir, host)
    for key in data:
        if key not in _SECTIONS:
            c.problem((key,), unknown_key(key, _SECTIONS))
    bus = _bus(c, data.get("bus") or {})
    endpoints = _endpoints(c, data.get("endpoints") or {}, host, base_dir)
    # Routes are checked against every declared endpoint, even one with problems
    # of its own, so one mistake is reported once.
    declared = (
        set(data.get("endpoints") or {}) if isinstance(data.get("endpoints"), Mapping) else set()
    )
    routes = _routes(c, data.get("routes") or [], declared, bus)
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
