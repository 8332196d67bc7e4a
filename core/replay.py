"""Replay: a dead letter sent through again, or previewed (``lienthong dlq replay [--dry-run]``).

A failed delivery goes back to its endpoint's queue with its key unchanged, so an
effect that did happen is not repeated; a message parked before routing is
routed again by intake (lienthong.intake) with the current routes, mappings and
access rules. The preview changes nothing and shows, node by node, how what
would be sent now differs from what was attempted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import RejectedError
from .store import Store
from .xmldiff import Difference, diff

if TYPE_CHECKING:
    from .access import AccessPolicy
    from .intake import IntakeStage


@dataclass
class PreviewTarget:
    """One delivery a replay preview found: made now, against what was attempted."""

    endpoint: str
    route: str
    mapping: str | None  # name@hash of the mapping that makes it now
    attempted_mapping: str | None  # name@hash of the one that made the attempted body
    differences: list[Difference]
    body: bytes
    first: str | None = None  # the message that had its once_per value first: not sent
    once: str | None = None  # that value


@dataclass
class ReplayPreview:
    """What ``lienthong dlq replay --dry-run`` shows for one dead letter."""

    dead_id: int
    action: str
    targets: list[PreviewTarget] = field(default_factory=list)
    now_fails: str | None = None
    attempted: bool = True  # False: a message parked before routing, nothing was sent

    def lines(self) -> list[str]:
        """The preview as the command prints it."""
        shown = [f"#{self.dead_id}: {self.action}"]
        if self.now_fails:
            shown.append(f"  with the current routes and mappings it fails: {self.now_fails}")
        for t in self.targets:
            via = f"route {t.route}" + (f", mapping {t.mapping}" if t.mapping else "")
            if t.first is not None:
                shown.append(
                    f"  not to {t.endpoint} by {via}: message {t.first} had its once_per "
                    f"value {t.once!r} first"
                )
                continue
            if not self.attempted:
                shown.append(f"  to {t.endpoint} by {via}: {len(t.body)} bytes")
                continue
            was = f" (attempted: {t.attempted_mapping})" if t.attempted_mapping else ""
            if not t.differences:
                shown.append(f"  to {t.endpoint} by {via}: the same as attempted{was}")
                continue
            shown.append(
                f"  to {t.endpoint} by {via}: {len(t.differences)} difference(s) from what "
                f"was attempted{was}"
            )
            shown.extend(f"    {d}" for d in t.differences)
        return shown


def _mapping_label(delivery: dict[str, Any] | None) -> str | None:
    if delivery is None or not delivery.get("mapping"):
        return None
    return f"{delivery['mapping']}@{(delivery['mapping_hash'] or '')[:12]}"


def replay(store: Store, access: AccessPolicy, stage: IntakeStage, dead_id: int) -> str:
    """Send a dead letter through again; returns what was done, or raises ``RejectedError``.

    A failed delivery goes back to its endpoint's queue (its key unchanged, so
    an effect that did happen is not repeated) if the access rules still let
    its source send there; a message parked before routing is routed again
    with the current routes, mappings and access rules.
    """
    dead = store.dead_letter(dead_id)
    if dead is None:
        raise RejectedError(f"no dead letter #{dead_id}. Hint: 'lienthong dlq list'")
    if dead["replayed_at"] is not None:
        raise RejectedError(f"dead letter #{dead_id} was already replayed")
    if dead["delivery_id"]:
        refusal = access.refusal(dead["source"], [dead["endpoint"]])
        if refusal:
            raise RejectedError(f"dead letter #{dead_id} cannot be replayed: {refusal}")
        store.retry_delivery(dead["delivery_id"], dead["message_id"])
        store.mark_replayed(dead_id)
        return f"delivery to '{dead['endpoint']}' queued again"
    message = store.message(dead["message_id"])
    assert message is not None
    intake = stage.intake(message)
    if intake.parked:
        raise RejectedError(f"dead letter #{dead_id} still fails: {intake.parked}")
    skipped = store.add_deliveries(message.id, intake.outgoing)
    store.mark_replayed(dead_id)
    left_out = {s.outgoing.key for s in skipped}
    targets = ", ".join(o.endpoint for o in intake.outgoing if o.key not in left_out)
    # Its first routing: a once_per value another message had first is not sent again.
    return "; ".join(
        [f"routed again to {targets}" if targets else "routed again"]
        + [
            f"not to {s.outgoing.endpoint}: message {s.first} had its once_per value "
            f"{s.outgoing.once!r} first"
            for s in skipped
        ]
    )


def replay_preview(
    store: Store, access: AccessPolicy, stage: IntakeStage, dead_id: int
) -> ReplayPreview:
    """What :func:`replay` would do for a dead letter, changing nothing.

    For each delivery the current routes and mappings make of the message:
    its node-level differences from the body that was attempted (a parked
    message had none attempted), or, for a parked message, that another message
    had its once_per value first, so the replay would leave that target out.
    """
    dead = store.dead_letter(dead_id)
    if dead is None:
        raise RejectedError(f"no dead letter #{dead_id}. Hint: 'lienthong dlq list'")
    if dead["replayed_at"] is not None:
        at = f"{dead['replayed_at']:%Y-%m-%d %H:%M:%S}"
        return ReplayPreview(dead_id, f"already replayed at {at}: replay refuses it")
    message = store.message(dead["message_id"])
    assert message is not None
    attempted = store.delivery(dead["delivery_id"]) if dead["delivery_id"] else None
    if attempted is not None:
        refusal = access.refusal(dead["source"], [dead["endpoint"]])
        action = (
            f"cannot be replayed: {refusal}"
            if refusal
            else f"would queue the delivery to '{dead['endpoint']}' again "
            "(the attempted body, key unchanged)"
        )
    else:
        action = "would route the message again"
    sent = attempted is not None
    intake = stage.intake(message)
    if intake.parked:
        return ReplayPreview(dead_id, action, now_fails=intake.parked, attempted=sent)
    targets = []
    for out in intake.outgoing:
        if attempted is not None and out.key != attempted["id"]:
            continue
        before = attempted["body"] if attempted is not None else None
        first = None
        if attempted is None and out.once is not None:
            first = store.once_per_first(out.route, out.endpoint, out.once)
            first = None if first == message.id else first
        targets.append(
            PreviewTarget(
                endpoint=out.endpoint,
                route=out.route,
                mapping=f"{out.mapping.name}@{out.mapping.hash[:12]}" if out.mapping else None,
                attempted_mapping=_mapping_label(attempted),
                differences=diff(before, out.body) if before is not None else [],
                body=out.body,
                first=first,
                once=out.once,
            )
        )
    if attempted is not None and not targets:
        return ReplayPreview(
            dead_id,
            action,
            now_fails=f"the current routes no longer send this message to "
            f"'{dead['endpoint']}' by route '{attempted['route']}'",
        )
    return ReplayPreview(dead_id, action, targets, attempted=sent)
