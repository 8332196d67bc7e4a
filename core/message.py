"""The envelope every message travels in.

The body is XML kept as bytes; it is parsed once, with the hardened parser, and
only where something needs the tree (routing predicates, mappings).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lxml import etree

from . import xml


def new_id() -> str:
    """A fresh message id: 32 hex characters, sortable enough and unique."""
    return uuid.uuid4().hex


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
