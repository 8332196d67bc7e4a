"""The plugin contract: every hook lienthong calls, in one place.

Hooks are named by verb family: ``lienthong_register_*`` for one-time
declarations (through a ``register`` callback, so the core owns the registry),
``lienthong_after_*`` for events in a message's life. Plugins implement them
with ``@hookimpl``; nothing outside ``core/`` calls ``pm.hook`` directly
(see :class:`lienthong.host.PluginHost`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click

    from .adapter import Adapter
    from .console.queries import Queries
    from .message import Message

PROJECT = "lienthong"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# --- registration ---------------------------------------------------------


@hookspec
def lienthong_register_adapters(register: Callable[[type[Adapter]], None]) -> None:
    """Register adapter classes by calling ``register(AdapterClass)`` once for each.

    Called once when the plugin host starts. The core rejects a second adapter
    with the same ``name`` and reports which plugins both claimed it.
    """


@hookspec
def lienthong_register_xpath_functions(
    register: Callable[..., None],
) -> None:
    """Register XPath extension functions for mappings and route predicates.

    Call ``register(name, function)`` for each; the function receives lxml's
    context first, then the XPath arguments, and returns a string, number,
    boolean or node list. Functions live in the namespace
    ``urn:lienthong:functions`` (prefix ``lt`` in mappings). Called once at start.
    """


@hookspec
def lienthong_register_commands(cli: click.Group) -> None:
    """Add subcommands to the ``lienthong`` command with ``cli.add_command(...)``.

    Called once when the command line is built, before arguments are parsed.
    """


# --- message flow ---------------------------------------------------------


@hookspec
def lienthong_prepare_message(message: Message) -> None:
    """Adjust a received message before it is routed and stored.

    Set ``message.correlation_id`` (e.g. from a document id, so the statuses that
    answer a document share its correlation) or add headers routes can match.
    ``message.tree()`` gives the parsed body (parsed once, hardened). Called for
    every message that parsed; raise ``RejectedError`` to park it with a reason.
    """


@hookspec
def lienthong_after_accept(message: Message, parked: str | None) -> None:
    """Observe a message the store has just accepted from ``message.source``.

    ``parked`` is the reason when it went straight to the dead letters (bad XML,
    no route). Called after the store commits; the return value is ignored and
    an exception is logged, never passed to the source.
    """


@hookspec
def lienthong_after_route(message: Message, targets: list[str]) -> None:
    """Observe a message the router matched, with the endpoints it will go to.

    Called after the deliveries are stored; the return value is ignored.
    """


@hookspec
def lienthong_after_deliver(message: Message, endpoint: str, attempts: int) -> None:
    """Observe a delivery that succeeded, after ``attempts`` tries.

    Called after the store marks it delivered; the return value is ignored.
    """


@hookspec
def lienthong_after_dead_letter(message: Message, endpoint: str | None, reason: str) -> None:
    """Observe a message parked as a dead letter, with why.

    ``endpoint`` is ``None`` when it was parked before routing. Called after the
    store commits the dead letter; the return value is ignored.
    """


@hookspec(firstresult=True)
def lienthong_describe_message(kind: str, headers: dict[str, str]) -> str | None:
    """Say in a few words what a stored message is, for ``lienthong trace``.

    ``kind`` and ``headers`` are the stored message's. Return a short label
    (``"status 03 from 000.00.01.H15"``) or ``None`` to leave it to another
    plugin; the first label wins. Called once per message shown.
    """


@hookspec(firstresult=True)
def lienthong_list_documents(queries: Queries, limit: int) -> list[dict[str, Any]] | None:
    """List the documents most recently active, for the console's Documents page.

    ``queries`` is the console's read model over the store. Return up to
    ``limit`` dicts with ``correlation_id``, ``document_id``, ``messages`` and
    ``last`` (newest first), or ``None`` to leave it to another plugin; the
    page shows none when no plugin answers. Called once per page view.
    """


@hookspec(firstresult=True)
def lienthong_describe_document(queries: Queries, document_id: str) -> Any | None:
    """Tell the life of one document, for the console's Documents page.

    ``document_id`` is what the user typed (a document id or a correlation id).
    Return an object with ``document_id``, ``correlation_id``, ``messages`` and
    ``events``, or ``None`` to leave it to another plugin. Called once per view.
    """


@hookspec
def lienthong_prepare_metrics(registry: Any, engine: Any) -> None:
    """Add a plugin's own metrics to the bus's Prometheus ``registry``.

    ``registry`` is the bus's ``prometheus_client.CollectorRegistry`` (served on
    ``/metrics``) and ``engine`` the store's SQLAlchemy engine, for a collector
    that reads the plugin's tables when scraped. Called once per bus, when it
    is built. Return value ignored.
    """


# --- lifecycle -------------------------------------------------------------


@hookspec
def lienthong_after_start(adapters: dict[str, Adapter], config: Any) -> None:
    """Observe the bus once every endpoint's adapter has started.

    ``adapters`` maps endpoint names to their adapter instances. Return value ignored.
    """
