"""Dead letters: what a replay changes, and their purge.

Reading them (``dlq list``, ``dlq show``) is in :mod:`.reads`; deciding what
becomes one is lienthong.disposition's.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, insert, update

from ..model import DeliveryState, MessageState, Outgoing, Skipped
from .base import Base
from .ledger import claim_once, skipped_audit
from .schema import dead_letters, deliveries, headers_text, mapping_inputs, messages, utcnow


class DeadLetters(Base):
    """A dead letter sent again (its delivery re-queued, its message routed), or forgotten."""

    def mark_replayed(self, dead_id: int) -> None:
        with self._begin() as conn:
            conn.execute(
                update(dead_letters)
                .where(dead_letters.c.id == dead_id)
                .values(replayed_at=utcnow())
            )

    def retry_delivery(self, delivery_id: str, message_id: str) -> None:
        """Put a dead delivery back in the queue, with its attempts kept for the record."""
        now = utcnow()
        with self._begin() as conn:
            conn.execute(
                update(deliveries)
                .where(deliveries.c.id == delivery_id)
                .values(
                    state=DeliveryState.PENDING,
                    next_attempt_at=now,
                    claimed_until=None,
                    enqueued_at=None,
                )
            )
            self._append_audit(
                conn,
                [
                    {
                        "message_id": message_id,
                        "at": now,
                        "event": "replayed",
                        "endpoint": None,
                        "detail": f"delivery {delivery_id}",
                    }
                ],
            )

    def add_deliveries(self, message_id: str, outgoing: Sequence[Outgoing]) -> list[Skipped]:
        """Route a parked message after all (a replay): its deliveries join the queue.

        If any is mapped, the message's body is kept (marked) as their input,
        from now, for bus.mapping_inputs_days. Its once_per values are claimed
        as at accept: this is its first routing, so a value another message had
        first is not sent again. Returns the deliveries left out for that.
        """
        now = utcnow()
        with self._begin() as conn:
            firsts = claim_once(conn, self.dialect, [(message_id, o) for o in outgoing], now)
            skipped = [Skipped(o, firsts[o.key]) for o in outgoing if o.key in firsts]
            outgoing = [o for o in outgoing if o.key not in firsts]
            versions = {o.mapping.hash: o.mapping for o in outgoing if o.mapping is not None}
            if outgoing:
                conn.execute(
                    insert(deliveries),
                    [
                        {
                            "id": o.key,
                            "message_id": message_id,
                            "route": o.route,
                            "endpoint": o.endpoint,
                            "headers": headers_text(o.headers),
                            "body": o.body,
                            "state": DeliveryState.PENDING,
                            "attempts": 0,
                            "next_attempt_at": now,
                            "created_at": now,
                            "mapping": o.mapping.name if o.mapping else None,
                            "mapping_hash": o.mapping.hash if o.mapping else None,
                            "mapping_params": headers_text(o.params) if o.mapping else None,
                            "order_group": o.order[0] if o.order else None,
                            "order_seq": o.order[1] if o.order else None,
                        }
                        for o in outgoing
                    ],
                )
            stored = self._store_versions(conn, versions.values(), now)
            if versions and self.keep_mapping_inputs:
                conn.execute(
                    delete(mapping_inputs).where(mapping_inputs.c.message_id == message_id)
                )
                conn.execute(insert(mapping_inputs).values(message_id=message_id, kept_at=now))
            conn.execute(
                update(messages)
                .where(messages.c.id == message_id)
                .values(state=MessageState.ROUTED)
            )
            replayed = [
                {
                    "message_id": message_id,
                    "at": now,
                    "event": "replayed",
                    "endpoint": o.endpoint,
                    "detail": f"route {o.route}",
                }
                for o in outgoing
            ]
            self._append_audit(conn, replayed + skipped_audit(message_id, skipped, now))
        self._versions_stored.update(stored)
        return skipped

    def purge_dead_letters(self, ids: Sequence[int]) -> int:
        """Forget dead letters (the messages and the audit trail stay)."""
        if not ids:
            return 0
        with self._begin() as conn:
            return conn.execute(
                delete(dead_letters).where(dead_letters.c.id.in_(list(ids)))
            ).rowcount
