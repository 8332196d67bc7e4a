"""Registers the axis adapter, the ``edxml`` commands and a metric; correlates edXML messages.

It also tells the console's Documents page what documents passed and each one's life.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lienthong.hookspecs import hookimpl

from .adapter import AxisAdapter
from .correlation import facts

if TYPE_CHECKING:
    import click
    from prometheus_client import CollectorRegistry
    from sqlalchemy.engine import Engine

    from lienthong.adapter import Adapter
    from lienthong.console.queries import Queries
    from lienthong.message import Message


@hookimpl
def lienthong_register_adapters(register: Callable[[type[Adapter]], None]) -> None:
    register(AxisAdapter)


@hookimpl
def lienthong_register_commands(cli: click.Group) -> None:
    # The edXML commands are optional: an install without .cli still gets the adapter.
    try:
        module = importlib.import_module(f"{__package__}.cli")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__package__}.cli":
            raise
        return
    cli.add_command(module.edxml_group)


@hookimpl
def lienthong_prepare_message(message: Message) -> None:
    """Give an edXML document and its statuses one correlation id and routing headers.

    Whatever endpoint the message came from (the axis, a DMS drop folder), a
    document and every status answering it end up with the same correlation.
    Anything that is not edXML, or names no document, passes untouched.
    """
    found = facts(message.tree().getroot())
    if found is None:
        return
    message.correlation_id = found.correlation_id
    message.headers.update(found.headers())


@hookimpl
def lienthong_prepare_metrics(registry: CollectorRegistry, engine: Engine) -> None:
    """Serve the soonest expiry of the signing certificates met, read from the store."""
    from .certificates import ExpiryCollector

    registry.register(ExpiryCollector(engine))


@hookimpl
def lienthong_describe_message(kind: str, headers: dict[str, str]) -> str | None:
    """A status's code, meaning and sender, or a document's business, for ``lienthong trace``."""
    from .correlation import (
        BUSINESS_HEADER,
        CONCERNS_HEADER,
        FROM_HEADER,
        KIND_HEADER,
        STATUS_HEADER,
    )
    from .edxml import STATUS_MEANINGS

    what = headers.get(KIND_HEADER)
    sender = headers.get(FROM_HEADER) or headers.get("from") or "?"
    if what == "status":
        code = headers.get(STATUS_HEADER, "")
        meaning = STATUS_MEANINGS.get(code, "unknown status code").split(":")[0]
        return f"status {code} ({meaning}) from {sender}"
    if what == "document":
        business = headers.get(BUSINESS_HEADER, "new")
        if business == "new":
            return f"document from {sender}"
        return f"{business} from {sender} of {headers.get(CONCERNS_HEADER, '?')}"
    return None


@hookimpl
def lienthong_list_documents(queries: Queries, limit: int) -> list[dict[str, Any]]:
    """The edXML documents most recently active: correlation id, document id, messages, last."""
    from .correlation import DOCUMENT_ID_HEADER, PREFIX

    return queries.recent_correlations(PREFIX, DOCUMENT_ID_HEADER, limit)


@hookimpl
def lienthong_describe_document(queries: Queries, document_id: str) -> Any:
    """The document's life as this adapter records it (its public ``history``)."""
    from .history import history

    axis = {n for n, e in queries.config.endpoints.items() if e.adapter == AxisAdapter.name}
    return history(queries, document_id, axis_endpoints=axis)
