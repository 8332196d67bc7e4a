"""The router: which routes a message matches, where each sends it, through which mapping.

A route matches on kind, source endpoint, headers and an XPath predicate; a
route with ``senders`` then refuses a matching message whose ``from`` header
(the sender its source adapter vouches for) is not one of them, so the whole
message is parked with that reason rather than acted on. Each
of its targets is a fixed endpoint or one computed from the content (a
recipient list: an organisation code in the document → the endpoint serving
it), with an optional mapping and an optional schema the output must satisfy;
a target may keep its deliveries in order per group (``order_by``) or send
only the first message per value (``once_per``).
A message that no route matches is a rejection: the bus parks it with that
reason instead of dropping it.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree

from . import xml
from .errors import ConfigError, ConfigProblem, RejectedError
from .host import XPATH_NAMESPACE
from .message import Message
from .model import Outgoing


@dataclass
class EndpointFrom:
    """A computed target: values an XPath finds, turned into endpoint names."""

    xpath: etree.XPath
    table: dict[str, str] = field(default_factory=dict)
    template: str | None = None
    default: str | None = None

    def endpoints(self, tree: etree._ElementTree) -> list[str]:
        found = self.xpath(tree)
        values = found if isinstance(found, list) else [found]
        names: list[str] = []
        for value in values:
            text = (value.text if isinstance(value, etree._Element) else str(value)) or ""
            text = text.strip()
            if not text:
                continue
            name = self.table.get(text)
            if name is None and self.template:
                name = self.template.format(value=text)
            if name is None:
                name = self.default
            if name is None:
                raise RejectedError(
                    f"no endpoint serves '{text}' (found by {self.xpath.path}). "
                    "Hint: add it to the route's endpoint_from.map or set a default"
                )
            if name not in names:
                names.append(name)
        return names


@dataclass
class OrderBy:
    """A target's order: deliveries of one group go to its endpoint one at a time, in order.

    Like JMS message groups or a resequencer: a dossier's progress steps reach the
    portal in the order they happened, even when one must be retried (a later step
    waits for it). ``group`` names what must stay in order (a dossier number);
    ``sequence`` gives a message's place in it, compared as text (ISO times sort
    right); without it, or between equal values, the order they were accepted in.
    """

    group: etree.XPath
    sequence: etree.XPath | None = None

    def order(self, tree: etree._ElementTree) -> tuple[str, str]:
        """(group, place) of the message whose tree this is."""
        group = _text(self.group(tree))
        if not group:
            raise RejectedError(
                f"order_by group {self.group.path!r} finds nothing in this message, so its "
                "place in order is unknown. Hint: fix the XPath, or route such messages "
                "by a target without order_by"
            )
        place = _text(self.sequence(tree)) if self.sequence is not None else ""
        return group[:200], f"{place[:160]}\x1f{_accepted_stamp():020d}"


#: The longest once_per value the store keeps (``once_per.value``).
ONCE_PER_MAX = 200


@dataclass
class OncePer:
    """A target's once_per: of the messages whose ``value`` is the same, only the first is sent.

    Like Camel's idempotent consumer keyed by an expression: a dossier's versions
    are many messages, but its letter must go once. The router only finds the
    value; the store decides, in the transaction that stores the message, whether
    it is the first (lienthong.store.ledger), so two workers cannot both send.
    """

    value: etree.XPath

    def value_of(self, tree: etree._ElementTree) -> str:
        """The value of the message whose tree this is."""
        try:
            value = _text(self.value(tree))
        except etree.XPathEvalError as exc:
            raise RejectedError(f"once_per {self.value.path!r} failed: {exc}") from exc
        if not value:
            raise RejectedError(
                f"once_per {self.value.path!r} finds nothing in this message, so whether it "
                "was sent already is unknown. Hint: fix the XPath, or route such messages "
                "by a target without once_per"
            )
        if len(value) > ONCE_PER_MAX:
            raise RejectedError(
                f"once_per {self.value.path!r} gives a value of {len(value)} characters; "
                f"at most {ONCE_PER_MAX} are kept, and a shortened one could match another "
                "message's. Hint: give once_per an XPath to a shorter identifier"
            )
        return value


_stamp_lock = threading.Lock()
_last_stamp = 0


def _accepted_stamp() -> int:
    """A number that grows with every call in this process (nanoseconds, made strictly rising)."""
    global _last_stamp
    with _stamp_lock:
        _last_stamp = max(time.time_ns(), _last_stamp + 1)
        return _last_stamp


def _text(found: Any) -> str:
    if isinstance(found, list):
        found = found[0] if found else ""
    if isinstance(found, etree._Element):
        found = "".join(found.itertext())
    if isinstance(found, float) and found.is_integer():
        found = int(found)
    return str(found).strip()


@dataclass
class Target:
    """Where a route sends a message, and how it is transformed on the way."""

    endpoint: str | None = None
    endpoint_from: EndpointFrom | None = None
    mapping: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    schema: Path | None = None
    kind: str | None = None
    order_by: OrderBy | None = None
    once_per: OncePer | None = None


@dataclass
class Route:
    """One route from config: a predicate and its targets."""

    name: str
    targets: list[Target]
    kinds: frozenset[str] = frozenset()
    sources: frozenset[str] = frozenset()
    headers: dict[str, str] = field(default_factory=dict)
    predicate: etree.XPath | None = None
    senders: frozenset[str] = frozenset()

    def matches(self, message: Message, tree: Callable[[], etree._ElementTree]) -> bool:
        if self.kinds and message.kind not in self.kinds:
            return False
        if self.sources and message.source not in self.sources:
            return False
        for key, value in self.headers.items():
            if message.headers.get(key) != value:
                return False
        return self.predicate is None or bool(self.predicate(tree()))


def delivery_key(message_id: str, route: str, endpoint: str) -> str:
    """The idempotency key of one delivery: stable for a message, route and endpoint."""
    digest = hashlib.sha256(f"{route}\0{endpoint}".encode()).hexdigest()[:12]
    return f"{message_id}-{digest}"


def compile_xpath(
    expression: str,
    namespaces: Mapping[str, str],
    functions: Mapping[str, Callable[..., Any]],
    where: str,
) -> etree.XPath:
    """Compile an XPath with the route's namespaces and the plugins' ``lt:`` functions."""
    namespaces = {"lt": XPATH_NAMESPACE, **namespaces}
    extensions = {(XPATH_NAMESPACE, name): fn for name, fn in functions.items()}
    try:
        return etree.XPath(expression, namespaces=namespaces, extensions=extensions)
    except etree.XPathSyntaxError as exc:
        raise ConfigError(
            [ConfigProblem(where, f"XPath {expression!r} does not compile: {exc}")]
        ) from exc


class Router:
    """Applies the configured routes to accepted messages."""

    def __init__(
        self,
        routes: list[Route],
        mappings: Any,
        *,
        max_bytes: int = xml.DEFAULT_MAX_BYTES,
    ) -> None:
        self.routes = routes
        self.mappings = mappings
        self.max_bytes = max_bytes

    def route(self, message: Message) -> list[Outgoing]:
        """The deliveries for ``message``; raises ``RejectedError`` when none can be made."""
        tree = lambda: message.tree(max_bytes=self.max_bytes)  # noqa: E731
        outgoing: list[Outgoing] = []
        for route in self.routes:
            try:
                matched = route.matches(message, tree)
            except etree.XPathEvalError as exc:
                raise RejectedError(f"route '{route.name}': predicate failed: {exc}") from exc
            if not matched:
                continue
            sender = message.headers.get("from") or "no sender"
            if route.senders and sender not in route.senders:
                raise RejectedError(
                    f"route '{route.name}' takes this message only from "
                    f"{', '.join(sorted(route.senders))}, and it comes from {sender!r}. Hint: if "
                    "this sender is entitled, add it to the route's senders, then replay it "
                    "with 'lienthong dlq replay'"
                )
            for target in route.targets:
                outgoing.extend(self._deliveries(message, route, target, tree))
        if not outgoing:
            raise RejectedError(
                f"no route matches this message (kind '{message.kind}', source "
                f"'{message.source}'). Hint: add a route for it, then replay it with "
                "'lienthong dlq replay'"
            )
        return outgoing

    def _deliveries(
        self,
        message: Message,
        route: Route,
        target: Target,
        tree: Callable[[], etree._ElementTree],
    ) -> list[Outgoing]:
        if target.endpoint_from is not None:
            endpoints = target.endpoint_from.endpoints(tree())
        else:
            endpoints = [target.endpoint or ""]
        body = message.body
        version = None
        if target.mapping:
            mapping = self.mappings.get(target.mapping)
            version = mapping.version
            mapped = mapping.apply(tree(), target.params)
            if target.schema:
                xml.validate(mapped, target.schema, what=f"output of mapping '{target.mapping}'")
            body = xml.serialize(mapped)
        elif target.schema:
            xml.validate(tree(), target.schema, what=f"message {message.id}")
        headers = dict(message.headers)
        if target.kind:
            headers["kind"] = target.kind
        order = target.order_by.order(tree()) if target.order_by is not None else None
        once = target.once_per.value_of(tree()) if target.once_per is not None else None
        return [
            Outgoing(
                delivery_key(message.id, route.name, endpoint),
                route.name,
                endpoint,
                body,
                headers,
                mapping=version,
                params=target.params,
                order=order,
                once=once,
            )
            for endpoint in endpoints
        ]
