"""Read models: what the CLI, the metrics and the console read, with an engine and nothing else.

:class:`Reads` needs no bus: ``lienthong status``, ``dlq list``, ``dlq show``,
``trace``, ``jobs``, ``sync runs`` and ``mapping versions``/``diff`` open it
with :meth:`Reads.open`, which checks the schema and starts no adapter. The
bus's own :class:`lienthong.store.Store` reads through the same classes, and
the console's pages through it.

Stored times come back aware UTC (:class:`.schema.UtcDateTime`); an aggregate
read through raw SQL may not, and :func:`age_seconds` takes either.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.engine import Engine

from ..errors import RejectedError
from ..message import Message
from ..model import DeliveryState
from .engine import open_read_only
from .schema import (
    attempts,
    audit,
    dead_letters,
    deliveries,
    endpoint_health,
    headers_of,
    mapping_inputs,
    mapping_versions,
    messages,
    once_per,
    source_counts,
)


def age_seconds(then: datetime, now: datetime | None = None) -> float:
    """Seconds from ``then`` to ``now`` (default: now), never negative; a naive time is UTC."""
    start = then if then.tzinfo else then.replace(tzinfo=UTC)
    return max(0.0, ((now or datetime.now(UTC)) - start).total_seconds())


class Overview:
    """The state of things now: counts, backlog, circuits, dead letters (status, metrics, dlq)."""

    engine: Engine

    def counts(self) -> dict[str, int]:
        """Deliveries by state, messages parked and dead letters waiting."""
        with self.engine.connect() as conn:
            by_state: dict[str, int] = dict(
                conn.execute(
                    select(deliveries.c.state, func.count()).group_by(deliveries.c.state)
                ).all()
            )
            waiting = conn.execute(
                select(func.count())
                .select_from(dead_letters)
                .where(dead_letters.c.replayed_at.is_(None))
            ).scalar_one()
            total = conn.execute(select(func.count()).select_from(messages)).scalar_one()
        return {
            "messages": total,
            "pending": by_state.get(DeliveryState.PENDING, 0),
            "delivered": by_state.get(DeliveryState.DELIVERED, 0),
            "dead": by_state.get(DeliveryState.DEAD, 0),
            "dead_letters_waiting": waiting,
        }

    def source_counts(self) -> dict[str, dict[str, int]]:
        """Per source endpoint: new messages accepted and repeats offered, since the start."""
        with self.engine.connect() as conn:
            return {
                r.endpoint: {"received": int(r.received), "repeats": int(r.repeats)}
                for r in conn.execute(select(source_counts))
            }

    def pending_overview(self) -> dict[str, dict[str, Any]]:
        """Per endpoint: deliveries pending, how many failed before, and the oldest one's time."""
        retrying = func.count().filter(deliveries.c.attempts > 0)
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    deliveries.c.endpoint,
                    func.count(),
                    retrying,
                    func.min(deliveries.c.created_at),
                )
                .where(deliveries.c.state == DeliveryState.PENDING)
                .group_by(deliveries.c.endpoint)
            ).all()
        return {
            endpoint: {"pending": count, "retrying": int(again or 0), "oldest": oldest}
            for endpoint, count, again, oldest in rows
        }

    def dead_letters_waiting(self) -> int:
        """Dead letters neither replayed nor purged."""
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(dead_letters)
                    .where(dead_letters.c.replayed_at.is_(None))
                ).scalar_one()
            )

    def endpoint_health(self) -> dict[str, dict[str, Any]]:
        with self.engine.connect() as conn:
            return {r.endpoint: dict(r._mapping) for r in conn.execute(select(endpoint_health))}

    def waiting_by_endpoint(self) -> dict[str | None, int]:
        """Dead letters waiting, per endpoint (``None`` for those parked before routing)."""
        with self.engine.connect() as conn:
            return {
                endpoint: int(count)
                for endpoint, count in conn.execute(
                    select(dead_letters.c.endpoint, func.count())
                    .where(dead_letters.c.replayed_at.is_(None))
                    .group_by(dead_letters.c.endpoint)
                )
            }

    def message(self, message_id: str) -> Message | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(messages).where(messages.c.id == message_id)).first()
        if row is None:
            return None
        return Message(
            body=row.body,
            kind=row.kind,
            source=row.source,
            headers=headers_of(row.headers),
            id=row.id,
            correlation_id=row.correlation_id,
            source_key=row.source_key,
            created_at=row.created_at,
        )


@dataclass(frozen=True)
class DeadLetterQuery:
    """Which dead letters a list means: those matching every field given.

    ``reason`` is a substring taken literally; ``since`` and ``until`` bound
    when they were parked (at or after, before), in UTC. Replayed or purged
    ones are left out unless ``include_replayed``.
    """

    endpoint: str | None = None
    stage: str | None = None
    reason: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    include_replayed: bool = False

    def conditions(self) -> list[Any]:
        found: list[Any] = []
        if not self.include_replayed:
            found.append(dead_letters.c.replayed_at.is_(None))
        if self.endpoint:
            found.append(dead_letters.c.endpoint == self.endpoint)
        if self.stage:
            found.append(dead_letters.c.stage == self.stage)
        if self.reason:
            found.append(dead_letters.c.reason.contains(self.reason, autoescape=True))
        if self.since:
            found.append(dead_letters.c.created_at >= self.since)
        if self.until:
            found.append(dead_letters.c.created_at < self.until)
        return found


class DeadLetterLists:
    """Dead letters: filtered lists and pages, counts, the ids an action means, one in full."""

    engine: Engine

    def dead_letters(
        self,
        *,
        endpoint: str | None = None,
        stage: str | None = None,
        reason: str | None = None,
        include_replayed: bool = False,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        """Dead letters, newest first, filtered by endpoint, stage or a reason substring."""
        chosen = DeadLetterQuery(endpoint, stage, reason, include_replayed=include_replayed)
        return self.dead_letter_page(chosen, limit=limit)[0]

    def dead_letter_page(
        self, chosen: DeadLetterQuery, *, before: int | None = None, limit: int = 50
    ) -> tuple[list[dict[str, Any]], bool]:
        """Up to ``limit`` dead letters older than id ``before``, newest first; whether more follow.

        Each has the dead letter's columns and its message's ``kind`` and ``source``.
        """
        conditions = chosen.conditions()
        if before is not None:
            conditions.append(dead_letters.c.id < before)
        query = (
            select(dead_letters, messages.c.kind, messages.c.source)
            .join(messages, messages.c.id == dead_letters.c.message_id)
            .where(and_(*conditions))
            .order_by(dead_letters.c.id.desc())
            .limit(limit + 1)
        )
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
        return rows[:limit], len(rows) > limit

    def count_dead_letters(self, chosen: DeadLetterQuery) -> tuple[int, int | None]:
        """How many dead letters match, and the newest one's id (an action's upper bound)."""
        with self.engine.connect() as conn:
            count, newest = conn.execute(
                select(func.count(), func.max(dead_letters.c.id)).where(and_(*chosen.conditions()))
            ).one()
        return int(count), newest

    def dead_letter_ids(self, chosen: DeadLetterQuery, upto: int) -> list[int]:
        """The ids an action on a filter means: those matching, up to the one counted last."""
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    select(dead_letters.c.id)
                    .where(and_(*chosen.conditions(), dead_letters.c.id <= upto))
                    .order_by(dead_letters.c.id)
                ).scalars()
            )

    def waiting_among(self, ids: list[int]) -> list[int]:
        """Which of ``ids`` are dead letters still waiting (a selection posted from a page)."""
        if not ids:
            return []
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    select(dead_letters.c.id)
                    .where(dead_letters.c.id.in_(ids), dead_letters.c.replayed_at.is_(None))
                    .order_by(dead_letters.c.id)
                ).scalars()
            )

    def dead_letter_refs(self, ids: list[int]) -> dict[int, tuple[str, str | None]]:
        """Each dead letter's message id and endpoint, for the audit records of an action."""
        if not ids:
            return {}
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(dead_letters.c.id, dead_letters.c.message_id, dead_letters.c.endpoint).where(
                    dead_letters.c.id.in_(ids)
                )
            )
            return {r.id: (r.message_id, r.endpoint) for r in rows}

    def dead_letter_endpoints(self) -> list[str]:
        """The endpoints that have dead letters waiting, by name."""
        with self.engine.connect() as conn:
            return sorted(
                e
                for e in conn.execute(
                    select(dead_letters.c.endpoint)
                    .where(
                        dead_letters.c.replayed_at.is_(None), dead_letters.c.endpoint.is_not(None)
                    )
                    .distinct()
                ).scalars()
                if e
            )

    def dead_letter(self, dead_id: int) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(
                    dead_letters,
                    messages.c.kind,
                    messages.c.source,
                    messages.c.body,
                    messages.c.headers,
                    messages.c.correlation_id,
                )
                .join(messages, messages.c.id == dead_letters.c.message_id)
                .where(dead_letters.c.id == dead_id)
            ).first()
            if row is None:
                return None
            result = dict(row._mapping)
            result["headers"] = headers_of(result["headers"])
            result["attempts"] = (
                [
                    dict(a._mapping)
                    for a in conn.execute(
                        select(attempts)
                        .where(attempts.c.delivery_id == row.delivery_id)
                        .order_by(attempts.c.number)
                    )
                ]
                if row.delivery_id
                else []
            )
            return result


class History:
    """What happened to messages: trace, correlation, mapping versions and their kept inputs."""

    engine: Engine

    def trace(
        self, message_id: str, *, correlated_limit: int | None = None
    ) -> dict[str, Any] | None:
        """Every hop of a message (its id, or its unique end or beginning) and its correlated ones.

        ``correlated_limit`` caps the correlated messages listed (a page needs
        no thousands); ``None`` lists them all.
        """
        found = self.full_id(message_id)
        if found is None:
            return None
        with self.engine.connect() as conn:
            m = conn.execute(select(messages).where(messages.c.id == found)).one()
            related = [
                dict(r._mapping)
                for r in conn.execute(
                    select(
                        messages.c.id,
                        messages.c.kind,
                        messages.c.source,
                        messages.c.accepted_at,
                        messages.c.state,
                        messages.c.headers,
                    )
                    .where(messages.c.correlation_id == m.correlation_id, messages.c.id != m.id)
                    .order_by(messages.c.accepted_at)
                    .limit(correlated_limit)
                )
            ]
            hops = [
                dict(r._mapping)
                for r in conn.execute(
                    select(audit).where(audit.c.message_id == m.id).order_by(audit.c.id)
                )
            ]
            dlv = [
                dict(r._mapping)
                for r in conn.execute(
                    select(
                        deliveries.c.id,
                        deliveries.c.route,
                        deliveries.c.endpoint,
                        deliveries.c.state,
                        deliveries.c.attempts,
                        deliveries.c.last_error,
                        deliveries.c.mapping,
                        deliveries.c.mapping_hash,
                        deliveries.c.mapping_params,
                    ).where(deliveries.c.message_id == m.id)
                )
            ]
            by_id = {}
            for d in dlv:
                d["mapping_params"] = headers_of(d["mapping_params"] or "")
                d["attempt_log"] = []
                by_id[d["id"]] = d
            if by_id:
                for a in conn.execute(
                    select(attempts)
                    .where(attempts.c.delivery_id.in_(list(by_id)))
                    .order_by(attempts.c.number)
                ):
                    by_id[a.delivery_id]["attempt_log"].append(dict(a._mapping))
        return {
            "id": m.id,
            "correlation_id": m.correlation_id,
            "kind": m.kind,
            "source": m.source,
            "source_key": m.source_key,
            "state": m.state,
            "accepted_at": m.accepted_at,
            "headers": headers_of(m.headers),
            "hops": hops,
            "deliveries": dlv,
            "correlated": [{**r, "headers": headers_of(r["headers"])} for r in related],
        }

    def full_id(self, part: str) -> str | None:
        """The one message id that is ``part``, starts with it, or ends with it.

        A whole id is quickest. Ids begin with their time (lienthong.message.new_id),
        so messages of the same minute share a beginning and the short form of an
        id is its end, which is random; that lookup reads the whole index.
        """
        if not part:
            return None
        with self.engine.connect() as conn:
            exact = conn.execute(
                select(messages.c.id).where(messages.c.id == part)
            ).scalar_one_or_none()
            if exact is not None:
                return str(exact)
            for condition in (
                self._starts(messages.c.id, part),
                messages.c.id.endswith(part, autoescape=True),
            ):
                ids = list(conn.execute(select(messages.c.id).where(condition).limit(2)).scalars())
                if ids:
                    return ids[0] if len(ids) == 1 else None
        return None

    def _starts(self, column: Any, prefix: str) -> Any:
        """``column`` starts with ``prefix``, in the form each database answers from its index.

        SQLite compares text byte by byte, so a range uses the index (its LIKE
        ignores case and cannot); PostgreSQL's collation may order punctuation
        otherwise, so there it is LIKE.
        """
        if self.engine.dialect.name == "sqlite":
            upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
            return and_(column >= prefix, column < upper)
        return column.startswith(prefix, autoescape=True)

    def messages_by_correlation(self, correlation_id: str) -> list[dict[str, Any]]:
        """Every message sharing ``correlation_id``, oldest first, with its hops and dead letters.

        Each is a dict of the message's columns but the body (``headers``
        decoded), plus ``hops`` (its audit rows in order) and ``dead_letters``.
        """
        with self.engine.connect() as conn:
            found = [
                dict(r._mapping)
                for r in conn.execute(
                    select(*[c for c in messages.columns if c.name != "body"])
                    .where(messages.c.correlation_id == correlation_id)
                    .order_by(messages.c.accepted_at, messages.c.created_at)
                )
            ]
            ids = [m["id"] for m in found]
            hops: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
            dead: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
            if ids:
                for r in conn.execute(
                    select(audit).where(audit.c.message_id.in_(ids)).order_by(audit.c.id)
                ):
                    hops[r.message_id].append(dict(r._mapping))
                for r in conn.execute(
                    select(dead_letters)
                    .where(dead_letters.c.message_id.in_(ids))
                    .order_by(dead_letters.c.id)
                ):
                    dead[r.message_id].append(dict(r._mapping))
        for m in found:
            m["headers"] = headers_of(m["headers"])
            m["hops"] = hops[m["id"]]
            m["dead_letters"] = dead[m["id"]]
        return found

    def recent_correlations(
        self, prefix: str, name_header: str, limit: int = 30
    ) -> list[dict[str, Any]]:
        """The correlations starting with ``prefix`` most recently active, newest first.

        Each has its ``correlation_id``, ``messages``, ``last`` activity and, as
        ``document_id``, the first ``name_header`` header its messages carry.
        """
        last = func.max(messages.c.accepted_at).label("last")
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(messages.c.correlation_id, func.count().label("count"), last)
                .where(self._starts(messages.c.correlation_id, prefix))
                .group_by(messages.c.correlation_id)
                .order_by(last.desc())
                .limit(limit)
            ).all()
            ids = [r.correlation_id for r in rows]
            names: dict[str, str] = {}
            for cid, headers in conn.execute(
                select(messages.c.correlation_id, messages.c.headers).where(
                    messages.c.correlation_id.in_(ids)
                )
            ):
                document = headers_of(headers).get(name_header)
                if document:
                    names.setdefault(cid, document)
        return [
            {
                "correlation_id": r.correlation_id,
                "document_id": names.get(r.correlation_id, ""),
                "messages": r.count,
                "last": r.last,
            }
            for r in rows
        ]

    def delivery(self, delivery_id: str) -> dict[str, Any] | None:
        """One delivery's route, endpoint, body as attempted, and the mapping that made it."""
        with self.engine.connect() as conn:
            row = conn.execute(select(deliveries).where(deliveries.c.id == delivery_id)).first()
        if row is None:
            return None
        found = dict(row._mapping)
        found["headers"] = headers_of(found["headers"])
        found["mapping_params"] = headers_of(found["mapping_params"] or "")
        return found

    def once_per_first(self, route: str, endpoint: str, value: str) -> str | None:
        """The message that had a target's once_per ``value`` first, if any had it."""
        with self.engine.connect() as conn:
            return conn.execute(
                select(once_per.c.message_id).where(
                    once_per.c.route == route,
                    once_per.c.endpoint == endpoint,
                    once_per.c.value == value,
                )
            ).scalar_one_or_none()


class MappingHistory:
    """The versions of each mapping the store has seen, and the inputs kept to try them again."""

    engine: Engine

    def mapping_versions(self, mapping: str) -> list[dict[str, Any]]:
        """The versions of ``mapping`` the store knows, oldest first.

        Each: ``hash``, ``first_used``, ``last_used`` (its latest delivery, else
        when it was last taken up) and ``deliveries`` (how many it made).
        """
        with self.engine.connect() as conn:
            used = {
                r.mapping_hash: r
                for r in conn.execute(
                    select(
                        deliveries.c.mapping_hash,
                        func.count().label("made"),
                        func.min(deliveries.c.created_at).label("first"),
                        func.max(deliveries.c.created_at).label("last"),
                    )
                    .where(deliveries.c.mapping == mapping)
                    .group_by(deliveries.c.mapping_hash)
                )
            }
            rows = conn.execute(
                select(
                    mapping_versions.c.hash,
                    mapping_versions.c.first_used,
                    mapping_versions.c.last_used,
                ).where(mapping_versions.c.mapping == mapping)
            ).all()
        found = []
        for r in rows:
            u = used.get(r.hash)
            found.append(
                {
                    "hash": r.hash,
                    "first_used": min(r.first_used, u.first) if u else r.first_used,
                    "last_used": u.last if u else r.last_used,
                    "deliveries": int(u.made) if u else 0,
                }
            )
        return sorted(found, key=lambda v: (v["first_used"], v["hash"]))

    def mapping_version_text(self, mapping: str, hash_prefix: str) -> tuple[str, str]:
        """The full hash and text of the version of ``mapping`` whose hash starts so.

        Raises ``RejectedError`` naming the versions there are when none or several match.
        """
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(mapping_versions.c.hash, mapping_versions.c.text)
                .where(
                    mapping_versions.c.mapping == mapping,
                    mapping_versions.c.hash.startswith(hash_prefix.lower(), autoescape=True),
                )
                .limit(2)
            ).all()
        if len(rows) == 1:
            return rows[0].hash, rows[0].text
        known = ", ".join(v["hash"][:12] for v in self.mapping_versions(mapping)) or "none"
        what = "several versions" if rows else "no version"
        raise RejectedError(
            f"mapping '{mapping}': {what} in the store with a hash starting {hash_prefix!r} "
            f"(known: {known}). Hint: 'lienthong mapping versions {mapping}'"
        )

    def mapping_inputs(
        self,
        mapping: str,
        *,
        version: str | None = None,
        endpoint: str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
        chunk: int = 500,
    ) -> Iterator[tuple[str, str, dict[str, str], bytes]]:
        """The kept inputs of deliveries ``mapping`` made, newest first.

        Yields (delivery id, version hash, params, input body), read ``chunk``
        rows at a time so ten thousand bodies are never all in memory. The
        input is the message's body, read from ``messages``: ``mapping_inputs``
        only marks which are kept.
        """
        query = (
            select(
                deliveries.c.id,
                deliveries.c.mapping_hash,
                deliveries.c.mapping_params,
                messages.c.body,
            )
            .join(mapping_inputs, mapping_inputs.c.message_id == deliveries.c.message_id)
            .join(messages, messages.c.id == deliveries.c.message_id)
            .where(deliveries.c.mapping == mapping)
            .order_by(deliveries.c.created_at.desc(), deliveries.c.id.desc())
        )
        if version is not None:
            query = query.where(deliveries.c.mapping_hash == version)
        if endpoint is not None:
            query = query.where(deliveries.c.endpoint == endpoint)
        if since is not None:
            query = query.where(deliveries.c.created_at >= since)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=chunk).execute(query)
            for rows in result.partitions(chunk):
                for r in rows:
                    yield r.id, r.mapping_hash, headers_of(r.mapping_params or ""), r.body


class Reads(Overview, DeadLetterLists, History, MappingHistory):
    """Every read model over one engine; what a read-only command opens instead of a bus."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str) -> Reads:
        """The read models of the store at ``url``, once its schema is the one this code needs.

        No adapter is built, no broker called, nothing migrated or created
        (:func:`.engine.open_read_only`): a store behind is refused with the hint
        to run ``lienthong db upgrade``; an SQLite file not there has nothing yet.
        """
        return cls(open_read_only(url))

    def close(self) -> None:
        """Give back the engine's connections."""
        self.engine.dispose()
