"""The envelope's journey as types: what is stored on accept, claimed, and what came of it.

A received :class:`~lienthong.message.Message` becomes an :class:`Intake`
(routed to :class:`Outgoing` deliveries, or parked as a dead letter at a
:class:`Stage`); each delivery is claimed as a :class:`Delivery` and ends an
attempt as an :class:`Outcome` with a :class:`Result`. The enums' values are
the strings the store's columns hold, so each member compares equal to the
text in the database and no migration is needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from .message import Message

if TYPE_CHECKING:
    from .mapping import MappingVersion


class MessageState(StrEnum):
    """``messages.state``: where an accepted message went."""

    ROUTED = "routed"  # it has deliveries (or once_per left each out)
    PARKED = "parked"  # a dead letter before routing


class DeliveryState(StrEnum):
    """``deliveries.state``: pending until delivered or dead."""

    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


class Result(StrEnum):
    """What one claimed delivery came to (``attempts.outcome``, but for ``deferred``)."""

    OK = "ok"
    TRANSIENT = "transient"  # failed; tried again at ``retry_at``
    REJECTED = "rejected"  # dead-lettered
    DEFERRED = "deferred"  # not tried (circuit open, endpoint busy): not an attempt


class Stage(StrEnum):
    """``dead_letters.stage``: where on the path a message or delivery was parked."""

    ACCEPT = "accept"  # not XML the bus takes, or invalid at its source
    ROUTE = "route"  # no route, or its mapping failed
    ACCESS = "access"  # the access rules refuse its source to send there
    DELIVER = "deliver"  # the target refused it, or it ran out of attempts


@dataclass
class Outgoing:
    """One delivery the router produced for an accepted message.

    ``mapping`` is the version of the mapping that made ``body`` from the
    message's body with ``params`` (None: the body is the message's own).
    """

    key: str
    route: str
    endpoint: str
    body: bytes
    headers: dict[str, str]
    mapping: MappingVersion | None = None
    params: dict[str, str] = field(default_factory=dict)
    #: The target's order_by: (group, place in it); None when its order does not matter.
    order: tuple[str, str] | None = None
    #: The target's once_per value: sent only if no earlier message had it for this route
    #: and endpoint (the store decides, lienthong.store.ledger.claim_once).
    once: str | None = None


@dataclass
class Skipped:
    """A delivery not made: an earlier message had its once_per value (``first`` its id)."""

    outgoing: Outgoing
    first: str


@dataclass
class Intake:
    """A received message and what the bus decided for it, stored in one transaction."""

    message: Message
    outgoing: list[Outgoing] = field(default_factory=list)
    parked: str | None = None
    stage: Stage = Stage.ROUTE
    #: Deliveries the store left out at accept (their once_per value was used); it moves
    #: them here from ``outgoing``.
    skipped: list[Skipped] = field(default_factory=list)


@dataclass
class Delivery:
    """A claimed delivery, ready for an adapter's ``send``."""

    key: str
    message_id: str
    correlation_id: str
    kind: str
    source: str
    route: str
    endpoint: str
    headers: dict[str, str]
    body: bytes
    attempts: int

    def to_message(self) -> Message:
        # A route's target may give the mapped message a kind of its own.
        return Message(
            body=self.body,
            kind=self.headers.get("kind", self.kind),
            source=self.source,
            headers=dict(self.headers),
            id=self.message_id,
            correlation_id=self.correlation_id,
        )


@dataclass
class Outcome:
    """What happened to one claimed delivery."""

    delivery: Delivery
    result: Result
    error: str | None = None
    retry_at: datetime | None = None
    stage: Stage = Stage.DELIVER  # of the dead letter, when rejected: deliver, or access
