"""The store as the queue: claim due deliveries, record each outcome, give back, relay marks.

A claim is a lease (``claimed_until``) tied to a live holder (lienthong.holders);
an outcome is recorded once, with its attempt and audit record, in one
transaction (:meth:`Queue.finish`). In production the relay (lienthong.relay)
marks which due deliveries a queue entry covers (``enqueued_at``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, exists, func, insert, or_, select, update
from sqlalchemy.engine import Connection

from ..model import Delivery, DeliveryState, Outcome, Result
from .base import Base, among
from .schema import attempts, dead_letters, deliveries, driver_value, headers_of, messages, utcnow


def in_turn() -> Any:
    """Not waiting behind an earlier pending delivery of its order group (``order_by``)."""
    earlier = deliveries.alias("earlier")
    return or_(
        deliveries.c.order_group.is_(None),
        ~exists().where(
            earlier.c.endpoint == deliveries.c.endpoint,
            earlier.c.order_group == deliveries.c.order_group,
            earlier.c.state == DeliveryState.PENDING,
            earlier.c.order_seq < deliveries.c.order_seq,
        ),
    )


def unclaimed(now: datetime) -> Any:
    """Not claimed, or its claim's lease ran out (its worker died)."""
    return or_(deliveries.c.claimed_until.is_(None), deliveries.c.claimed_until < now)


def claimable(now: datetime) -> Any:
    """Pending, due, and not claimed by a live worker."""
    return and_(
        deliveries.c.state == DeliveryState.PENDING,
        deliveries.c.next_attempt_at <= now,
        unclaimed(now),
    )


def checked(condition: Any) -> Any:
    """``condition`` tested on the rows the keys find, never searched for by an index.

    A claim by key names its rows. PostgreSQL's statistics see few pending
    deliveries, but the index on (state, next_attempt_at) keeps an entry for
    every version a claim wrote until the table is vacuumed: searched through
    it, a claim of 500 keys took 43 ms early in the one-stop year and more as
    it went on (30 ms by the primary key, most of it the update itself).
    Inside a CASE the condition is no index's business.
    """
    return case((condition, True), else_=False)


def claim_by_keys(
    keys: Sequence[str], worker: str, until: datetime, now: datetime, dialect: str
) -> Any:
    """The UPDATE that claims ``keys`` for ``worker`` until ``until``, returning those it took."""
    return (
        update(deliveries)
        .where(among(deliveries.c.id, keys, dialect), checked(claimable(now)), in_turn())
        .values(claimed_by=worker, claimed_until=until)
        .returning(deliveries.c.id)
    )


class Queue(Base):
    """Deliveries out: claimed by one worker at a time, finished once."""

    def claim_due(
        self, worker: str, *, limit: int, lease: timedelta, endpoints: Iterable[str] | None = None
    ) -> list[Delivery]:
        """Claim up to ``limit`` deliveries that are due and not claimed by a live worker."""
        now = utcnow()
        condition = and_(claimable(now), in_turn())
        if endpoints is not None:
            condition = and_(condition, deliveries.c.endpoint.in_(list(endpoints)))
        with self._begin() as conn:
            ids_query = (
                select(deliveries.c.id)
                .where(condition)
                .order_by(deliveries.c.next_attempt_at)
                .limit(limit)
            )
            if self.dialect == "postgresql":
                ids_query = ids_query.with_for_update(skip_locked=True)
            ids = list(conn.execute(ids_query).scalars())
            if not ids:
                return []
            conn.execute(
                update(deliveries)
                .where(among(deliveries.c.id, ids, self.dialect))
                .values(claimed_by=worker, claimed_until=now + lease)
            )
            return self._load_deliveries(conn, ids)

    def claim(self, keys: Sequence[str], worker: str, *, lease: timedelta) -> list[Delivery]:
        """Claim deliveries by key (a queue told us of them); those done or taken are left out."""
        now = utcnow()
        with self._begin() as conn:
            claim = claim_by_keys(keys, worker, now + lease, now, self.dialect)
            claimed = list(conn.execute(claim).scalars())
            # Those waiting behind an earlier one of their order group: the relay
            # queues them again once it is their turn.
            taken = set(claimed)
            waiting = [k for k in keys if k not in taken]
            if waiting:
                conn.execute(
                    update(deliveries)
                    .where(
                        among(deliveries.c.id, waiting, self.dialect),
                        checked(
                            and_(
                                deliveries.c.state == DeliveryState.PENDING,
                                deliveries.c.order_group.is_not(None),
                                unclaimed(now),
                            )
                        ),
                    )
                    .values(enqueued_at=None)
                )
            return self._load_deliveries(conn, [k for k in keys if k in taken]) if taken else []

    def _load_deliveries(self, conn: Connection, ids: list[str]) -> list[Delivery]:
        rows = conn.execute(
            select(
                deliveries.c.id,
                deliveries.c.message_id,
                messages.c.correlation_id,
                messages.c.kind,
                messages.c.source,
                deliveries.c.route,
                deliveries.c.endpoint,
                deliveries.c.headers,
                deliveries.c.body,
                deliveries.c.attempts,
            )
            .join(messages, messages.c.id == deliveries.c.message_id)
            .where(among(deliveries.c.id, ids, self.dialect))
        )
        # In the order asked for (the order they were claimed in): a source's items go
        # out in the order it offered them, e.g. a dossier's progress steps.
        place = {key: i for i, key in enumerate(ids)}
        return [
            Delivery(
                r.id,
                r.message_id,
                r.correlation_id,
                r.kind,
                r.source,
                r.route,
                r.endpoint,
                headers_of(r.headers),
                r.body,
                r.attempts,
            )
            for r in sorted(rows, key=lambda r: place[r.id])
        ]

    def finish(self, outcomes: Sequence[Outcome], worker: str) -> None:
        """Record attempts and move each delivery to delivered, back to pending, or dead."""
        if not outcomes:
            return
        now = utcnow()
        attempt_rows, dead_rows, audit_rows = [], [], []
        with self._begin() as conn:
            delivered = [o.delivery.key for o in outcomes if o.result == Result.OK]
            if delivered:
                # The hot path, at driver level: on PostgreSQL one statement for the
                # batch (an array of keys), on SQLite one prepared statement, executemany.
                stamp = driver_value(now, self.dialect)
                done = (
                    f"UPDATE deliveries SET state = '{DeliveryState.DELIVERED}', "
                    "claimed_until = NULL, attempts = attempts + 1, delivered_at = "
                )
                if self.dialect == "postgresql":
                    conn.exec_driver_sql(done + "%s WHERE id = ANY(%s)", (stamp, delivered))
                else:
                    conn.exec_driver_sql(
                        done + "? WHERE id = ?", [(stamp, key) for key in delivered]
                    )
            for o in outcomes:
                d = o.delivery
                if o.result == Result.DEFERRED:
                    conn.execute(
                        update(deliveries)
                        .where(deliveries.c.id == d.key)
                        .values(
                            next_attempt_at=o.retry_at or now, claimed_until=None, enqueued_at=None
                        )
                    )
                    continue
                number = d.attempts + 1
                attempt_rows.append(
                    {
                        "delivery_id": d.key,
                        "number": number,
                        "at": now,
                        "worker": worker,
                        "outcome": o.result,
                        "error": o.error,
                    }
                )
                if o.result == Result.OK:
                    audit_rows.append(
                        {
                            "message_id": d.message_id,
                            "at": now,
                            "event": "delivered",
                            "endpoint": d.endpoint,
                            "detail": f"attempt {number}",
                        }
                    )
                elif o.result == Result.TRANSIENT:
                    conn.execute(
                        update(deliveries)
                        .where(deliveries.c.id == d.key)
                        .values(
                            attempts=number,
                            next_attempt_at=o.retry_at or now,
                            claimed_until=None,
                            enqueued_at=None,
                            last_error=o.error,
                        )
                    )
                    audit_rows.append(
                        {
                            "message_id": d.message_id,
                            "at": now,
                            "event": "retry",
                            "endpoint": d.endpoint,
                            "detail": f"attempt {number}: {o.error}",
                        }
                    )
                else:
                    conn.execute(
                        update(deliveries)
                        .where(deliveries.c.id == d.key)
                        .values(
                            state=DeliveryState.DEAD,
                            attempts=number,
                            claimed_until=None,
                            last_error=o.error,
                        )
                    )
                    dead_rows.append(
                        {
                            "message_id": d.message_id,
                            "delivery_id": d.key,
                            "endpoint": d.endpoint,
                            "stage": o.stage,
                            "reason": o.error or "rejected",
                            "created_at": now,
                        }
                    )
                    audit_rows.append(
                        {
                            "message_id": d.message_id,
                            "at": now,
                            "event": "dead-lettered",
                            "endpoint": d.endpoint,
                            "detail": o.error or "",
                        }
                    )
            self._insert_many(conn, attempts, attempt_rows)
            if dead_rows:
                conn.execute(insert(dead_letters), dead_rows)
            self._append_audit(conn, audit_rows)

    def release(self, keys: Sequence[str], *, claims: bool = True) -> None:
        """Give pending deliveries back untouched: the next claim or relay pass takes them.

        A clean shutdown mid-batch gives back its claims too; a publish that
        never reached a queue (``claims=False``, :meth:`unmark_enqueued`) only
        its queue mark, so a claim another worker holds stays.
        """
        if not keys:
            return
        values: dict[str, Any] = {"enqueued_at": None}
        if claims:
            values.update(claimed_until=None, claimed_by=None)
        with self._begin() as conn:
            conn.execute(
                update(deliveries)
                .where(
                    among(deliveries.c.id, keys, self.dialect),
                    deliveries.c.state == DeliveryState.PENDING,
                )
                .values(values)
            )

    def next_due(self) -> datetime | None:
        with self.engine.connect() as conn:
            return conn.execute(
                select(func.min(deliveries.c.next_attempt_at)).where(
                    deliveries.c.state == DeliveryState.PENDING, in_turn()
                )
            ).scalar_one()

    # --- the queue relay (production) ---

    def unmark_enqueued(self, keys: Sequence[str]) -> None:
        """Say these deliveries' keys never reached a queue: the relay's next pass queues them."""
        self.release(keys, claims=False)

    def due_for_enqueue(
        self, *, limit: int, stale_after: timedelta, by: str
    ) -> list[tuple[str, str]]:
        """Mark and return (key, endpoint) of due deliveries no queue holds a live entry for.

        The marks are ``by``'s (a holder name): the reaper clears a dead one's.
        """
        now = utcnow()
        with self._begin() as conn:
            query = (
                select(deliveries.c.id, deliveries.c.endpoint)
                .where(
                    claimable(now),
                    or_(
                        deliveries.c.enqueued_at.is_(None),
                        deliveries.c.enqueued_at < now - stale_after,
                    ),
                    in_turn(),
                )
                .order_by(deliveries.c.next_attempt_at)
                .limit(limit)
            )
            if self.dialect == "postgresql":
                query = query.with_for_update(skip_locked=True)
            rows = [(r.id, r.endpoint) for r in conn.execute(query)]
            if rows:
                conn.execute(
                    update(deliveries)
                    .where(among(deliveries.c.id, [k for k, _ in rows], self.dialect))
                    .values(enqueued_at=now, enqueued_by=by)
                )
        return rows
