"""The store: messages, deliveries and their attempts, dead letters, cursors, audit.

The store is the bus's source of truth and its durable queue: a message is
accepted when its row and its deliveries are committed, and a delivery is done
when its row says so. Queues (kombu) only say *which* delivery to work on next,
so a lost or duplicated queue entry never loses or duplicates an effect.

SQLite (the embedded default) and PostgreSQL (production) run the same code;
the schema comes from the Alembic migrations in ``lienthong/migrations``.

Split by use, along the data path:

=================== ==============================================================
``schema``          the tables, aware-UTC times (``UtcDateTime``), headers as JSON text
``engine``          the engine (SQLite pragmas, a private file), transactions whose
                    lost database is one ``StoreUnavailable``, the schema check
``base``            what the write paths share: fast inserts, the audit chain
``ledger``          accept: messages with their deliveries or dead letters, at once
``queue``           claim, finish (the outcome and its attempt), release, relay marks
``dead_letters``    replay's writes and the purge
``reads``           read models for the CLI, metrics and console (:class:`Reads`)
``cursors``         incremental sources' positions
=================== ==============================================================

:class:`Store` is all of them over one engine, for the bus; a read-only command
opens :class:`Reads` alone. This package exports what plugins and tests import.
"""

from __future__ import annotations

from sqlalchemy.engine import Engine

from ..model import Delivery, Intake, Outcome, Outgoing
from .cursors import Cursors
from .dead_letters import DeadLetters
from .engine import (
    Transaction,
    make_engine,
    open_read_only,
    prepare_schema,
    store_error,
    upgrade,
)
from .ledger import Ledger
from .queue import Queue
from .reads import Reads
from .schema import (
    UtcDateTime,
    attempts,
    audit,
    cursors,
    dead_letters,
    deliveries,
    endpoint_health,
    headers_of,
    headers_text,
    holders,
    mapping_inputs,
    mapping_versions,
    messages,
    metadata,
    once_per,
    source_counts,
    utcnow,
)


class Store(Ledger, Queue, DeadLetters, Reads):
    """The bus's tables behind the operations the bus, the workers and the CLI need."""

    def __init__(self, engine: Engine, audit_key: bytes | None = None) -> None:
        Ledger.__init__(self, engine, audit_key)


__all__ = [
    "Cursors",
    "DeadLetters",
    "Delivery",
    "Intake",
    "Ledger",
    "Outcome",
    "Outgoing",
    "Queue",
    "Reads",
    "Store",
    "Transaction",
    "UtcDateTime",
    "attempts",
    "audit",
    "cursors",
    "dead_letters",
    "deliveries",
    "endpoint_health",
    "headers_of",
    "headers_text",
    "holders",
    "make_engine",
    "mapping_inputs",
    "mapping_versions",
    "messages",
    "metadata",
    "once_per",
    "open_read_only",
    "prepare_schema",
    "source_counts",
    "store_error",
    "upgrade",
    "utcnow",
]
