"""The write path in: accept messages with their deliveries or dead letters, in one transaction.

The same transaction decides each once_per delivery (lienthong.router.OncePer):
the first message with its value claims it in ``once_per``, a later one gets no
delivery there, and its audit trail says so (``skipped``).

Also what the bus records beside it: each source's counts, each endpoint's
circuit as a worker sees it, and the purge of kept mapping inputs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, insert, select, tuple_
from sqlalchemy.engine import Connection

from ..model import DeliveryState, Intake, MessageState, Outgoing, Skipped
from .base import Base
from .schema import (
    dead_letters,
    deliveries,
    endpoint_health,
    headers_text,
    mapping_inputs,
    messages,
    once_per,
    source_counts,
    utcnow,
)

if TYPE_CHECKING:
    from ..mapping import MappingVersion


def _message_row(intake: Intake, now: datetime) -> dict[str, Any]:
    m = intake.message
    return {
        "id": m.id,
        "correlation_id": m.correlation_id,
        "kind": m.kind,
        "source": m.source,
        "source_key": m.source_key,
        "headers": headers_text(m.headers),
        "body": m.body,
        "created_at": m.created_at,
        "accepted_at": now,
        "state": MessageState.PARKED if intake.parked else MessageState.ROUTED,
    }


#: once_per rows per INSERT: 6 parameters each, under the 999 SQLite takes at most.
_ONCE_ROWS = 150


def claim_once(
    conn: Connection, dialect: str, outgoing: Iterable[tuple[str, Outgoing]], now: datetime
) -> dict[str, str]:
    """Claim the once_per values of deliveries (each with its message's id); who lost, to whom.

    Returns delivery key → the id of the message that used its value first: an
    earlier one in the store, or in this batch. The INSERT is the decision: on
    PostgreSQL one that meets a row another transaction is inserting waits for
    its commit, then finds it taken; SQLite has one writer at a time. Keys go in
    sorted, so two batches that share several values cannot deadlock.
    """
    from sqlalchemy.dialects import postgresql, sqlite

    claims: dict[tuple[str, str, str], tuple[str, str]] = {}  # key → (message, delivery)
    later: list[tuple[str, tuple[str, str, str]]] = []  # a value an earlier intake claims
    for message_id, out in outgoing:
        if out.once is None:
            continue
        key = (out.route, out.endpoint, out.once)
        if key in claims:
            later.append((out.key, key))
        else:
            claims[key] = (message_id, out.key)
    if not claims:
        return {}
    insert_of = postgresql.insert if dialect == "postgresql" else sqlite.insert
    rows = [
        {
            "route": route,
            "endpoint": endpoint,
            "value": value,
            "message_id": claims[(route, endpoint, value)][0],
            "delivery_id": claims[(route, endpoint, value)][1],
            "created_at": now,
        }
        for route, endpoint, value in sorted(claims)
    ]
    won: set[tuple[str, str, str]] = set()
    columns = (once_per.c.route, once_per.c.endpoint, once_per.c.value)
    for start in range(0, len(rows), _ONCE_ROWS):
        statement = (
            insert_of(once_per)
            .values(rows[start : start + _ONCE_ROWS])
            .on_conflict_do_nothing()
            .returning(*columns)
        )
        won.update((r, e, v) for r, e, v in conn.execute(statement))
    first = {key: message for key, (message, _) in claims.items() if key in won}
    taken = sorted(key for key in claims if key not in won)
    for start in range(0, len(taken), _ONCE_ROWS):
        found = conn.execute(
            select(*columns, once_per.c.message_id).where(
                tuple_(*columns).in_(taken[start : start + _ONCE_ROWS])
            )
        )
        first.update(((r, e, v), message) for r, e, v, message in found)
    lost = {claims[key][1]: first[key] for key in taken}
    lost.update((delivery, first[key]) for delivery, key in later)
    return lost


def skipped_audit(
    message_id: str, skipped: Iterable[Skipped], now: datetime
) -> list[dict[str, Any]]:
    """The audit records of deliveries once_per left out: where an admin sees why none went."""
    return [
        {
            "message_id": message_id,
            "at": now,
            "event": "skipped",
            "endpoint": skip.outgoing.endpoint,
            "detail": skipped_detail(skip),
        }
        for skip in skipped
    ]


def skipped_detail(skip: Skipped) -> str:
    """The audit record's words for a delivery once_per left out."""
    out = skip.outgoing
    return (
        f"no delivery to {out.endpoint} by route {out.route}: message {skip.first} had its "
        f"once_per value {out.once!r} first"
    )


class Ledger(Base):
    """Messages in: stored once by source key, with what they became, and audited."""

    def accept(
        self,
        intakes: Sequence[Intake],
        *,
        enqueued_by: str | None = None,
        claim: tuple[str, timedelta] | None = None,
    ) -> list[tuple[Intake, bool]]:
        """Store messages with their deliveries or dead letters, all in one transaction.

        Returns each intake with ``True`` when it was new, ``False`` when the
        store already had its source key (a redelivery by the source).
        ``enqueued_by`` (the caller's holder name) notes that it publishes the
        deliveries to a queue right after the commit; if it never does, the relay
        does once the caller is found dead, or after ``requeue_seconds``.
        ``claim`` (worker, lease) claims the new deliveries for the caller, which
        sends them straight from memory; if it dies, the lease runs out.
        """
        now = utcnow()
        claimed_by, claimed_until = (claim[0], now + claim[1]) if claim else (None, None)
        results: list[tuple[Intake, bool]] = []
        delivery_rows: list[dict[str, Any]] = []
        dead_rows: list[dict[str, Any]] = []
        audit_rows: list[dict[str, Any]] = []
        input_rows: list[dict[str, Any]] = []
        versions: dict[str, MappingVersion] = {}
        rows = [_message_row(intake, now) for intake in intakes]
        # Each new intake's deliveries as stored, and those once_per left out; set on the
        # intakes only once committed, so a rolled-back accept leaves them as they came.
        decided: list[tuple[Intake, list[Outgoing], list[Skipped]]] = []
        with self._begin() as conn:
            plain_rows: list[dict[str, Any]] = []
            new_ids = self._insert_new(conn, [r for r in rows if r["source_key"] is not None])
            fresh: list[Intake] = []
            for intake, row in zip(intakes, rows, strict=True):
                m = intake.message
                if m.source_key is None:
                    plain_rows.append(row)
                elif m.id in new_ids:
                    new_ids.discard(m.id)  # the same message twice in a batch: once new
                else:
                    results.append((intake, False))
                    continue
                results.append((intake, True))
                fresh.append(intake)
            firsts = claim_once(
                conn, self.dialect, [(i.message.id, o) for i in fresh for o in i.outgoing], now
            )
            for intake in fresh:
                m = intake.message
                outgoing = [o for o in intake.outgoing if o.key not in firsts]
                skipped = [Skipped(o, firsts[o.key]) for o in intake.outgoing if o.key in firsts]
                decided.append((intake, outgoing, skipped))
                # Accepting and routing are one transaction, so one hop: the record
                # names where the message goes.
                routed = "; ".join(f"to {o.endpoint} by route {o.route}" for o in outgoing)
                audit_rows.append(
                    {
                        "message_id": m.id,
                        "at": now,
                        "event": "accepted",
                        "endpoint": m.source,
                        "detail": f"{m.kind}, {len(m.body)} bytes"
                        + (f"; {routed}" if routed else ""),
                    }
                )
                if intake.parked:
                    dead_rows.append(
                        {
                            "message_id": m.id,
                            "delivery_id": None,
                            "endpoint": None,
                            "stage": intake.stage,
                            "reason": intake.parked,
                            "created_at": now,
                        }
                    )
                    audit_rows.append(
                        {
                            "message_id": m.id,
                            "at": now,
                            "event": "dead-lettered",
                            "endpoint": None,
                            "detail": intake.parked,
                        }
                    )
                audit_rows.extend(skipped_audit(m.id, skipped, now))
                mapped = False
                for out in outgoing:
                    version = out.mapping
                    if version is not None:
                        mapped = True
                        if version.hash not in self._versions_stored:
                            versions[version.hash] = version
                    delivery_rows.append(
                        {
                            "id": out.key,
                            "message_id": m.id,
                            "route": out.route,
                            "endpoint": out.endpoint,
                            "headers": headers_text(out.headers),
                            "body": out.body,
                            "state": DeliveryState.PENDING,
                            "attempts": 0,
                            "next_attempt_at": now,
                            "created_at": now,
                            "enqueued_at": now if enqueued_by else None,
                            "enqueued_by": enqueued_by,
                            # An ordered delivery waits for the store's check of its group.
                            "claimed_by": None if out.order else claimed_by,
                            "claimed_until": None if out.order else claimed_until,
                            "order_group": out.order[0] if out.order else None,
                            "order_seq": out.order[1] if out.order else None,
                            "mapping": version.name if version else None,
                            "mapping_hash": version.hash if version else None,
                            "mapping_params": headers_text(out.params) if version else None,
                        }
                    )
                if mapped and self.keep_mapping_inputs:
                    input_rows.append({"message_id": m.id, "kept_at": now})
            if plain_rows:
                self._insert_many(conn, messages, plain_rows)
            if delivery_rows:
                self._insert_many(conn, deliveries, delivery_rows)
            if input_rows:
                self._insert_many(conn, mapping_inputs, input_rows)
            stored_versions = self._store_versions(conn, versions.values(), now)
            if dead_rows:
                conn.execute(insert(dead_letters), dead_rows)
            self._count_sources(conn, results, now)
            self._append_audit(conn, audit_rows)
        self._versions_stored.update(stored_versions)
        for intake, outgoing, skipped in decided:
            if skipped:
                intake.outgoing, intake.skipped = outgoing, skipped
        return results

    def _count_sources(
        self, conn: Connection, results: Sequence[tuple[Intake, bool]], now: datetime
    ) -> None:
        """Add a batch's new messages and repeats to each source's totals."""
        from sqlalchemy.dialects import postgresql, sqlite

        tally: dict[str, list[int]] = {}
        for intake, is_new in results:
            counts = tally.setdefault(intake.message.source, [0, 0])
            counts[0 if is_new else 1] += 1
        dialect = postgresql if self.dialect == "postgresql" else sqlite
        for source, (new, repeats) in sorted(tally.items()):
            statement = dialect.insert(source_counts).values(
                endpoint=source, received=new, repeats=repeats, updated_at=now
            )
            conn.execute(
                statement.on_conflict_do_update(
                    index_elements=[source_counts.c.endpoint],
                    set_={
                        "received": source_counts.c.received + new,
                        "repeats": source_counts.c.repeats + repeats,
                        "updated_at": now,
                    },
                )
            )

    def set_endpoint_health(self, endpoint: str, state: str, detail: str, worker: str) -> None:
        """Record an endpoint's circuit state as one worker sees it."""
        with self._begin() as conn:
            conn.execute(delete(endpoint_health).where(endpoint_health.c.endpoint == endpoint))
            conn.execute(
                insert(endpoint_health).values(
                    endpoint=endpoint,
                    state=state,
                    detail=detail,
                    worker=worker,
                    updated_at=utcnow(),
                )
            )

    def purge_mapping_inputs(self, before: datetime) -> int:
        """Forget the inputs kept before ``before`` (bus.mapping_inputs_days)."""
        with self._begin() as conn:
            return conn.execute(
                delete(mapping_inputs).where(mapping_inputs.c.kept_at < before)
            ).rowcount
