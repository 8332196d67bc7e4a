"""The envelope every message travels in.

The body is XML kept as bytes; it is parsed once, with the hardened parser, and
only where something needs the tree (routing predicates, mappings).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lxml import etree

from . import xml


def new_id() -> str:
    """A fresh message id: 32 hex characters that begin with the time, laid out as a UUIDv7.

    The store's indexes (messages, deliveries, audit) are keyed by this id. A
    random id lands on a random page of each of them, so once they outgrow the
    database's cache every insert reads pages back: over a year of one-stop
    traffic the store slowed down by half. Ids that begin with the time are
    added at the indexes' end, where the pages are already in memory. The last
    74 bits are random, so ids stay unique across workers and hosts without
    asking anyone; the time in them is the one ``created_at`` holds anyway.
    """
    milliseconds = time.time_ns() // 1_000_000 & (1 << 48) - 1
    random = int.from_bytes(os.urandom(10), "big")
    rand_a, rand_b = random >> 68, random & (1 << 62) - 1
    value = milliseconds << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    return f"{value:032x}"


@dataclass
class Message:
    """An envelope (id, correlation id, kind, source, headers, time) around XML bytes.

    ``source_key`` identifies the message in its source system (a file name, an
    axis document id): the store accepts one message per source and key, so a
    source that redelivers after a crash does not create a second message.
    """

    body: bytes
    kind: str = "xml"
    source: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    id: str = field(default_factory=new_id)
    correlation_id: str = ""
    source_key: str | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    _tree: etree._ElementTree | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.correlation_id:
            self.correlation_id = self.id

    def tree(self, *, max_bytes: int = xml.DEFAULT_MAX_BYTES) -> etree._ElementTree:
        """The parsed body, parsed on first use with the hardened parser."""
        if self._tree is None:
            self._tree = xml.parse(self.body, max_bytes=max_bytes, what=f"message {self.id}")
        return self._tree

    def derive(self, body: bytes, **changes: Any) -> Message:
        """A new message that answers or transforms this one, keeping the correlation id."""
        values: dict[str, Any] = {
            "body": body,
            "kind": self.kind,
            "source": self.source,
            "headers": dict(self.headers),
            "correlation_id": self.correlation_id,
        }
        values.update(changes)
        return Message(**values)
