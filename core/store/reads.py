"""Read models: what the CLI, the metrics and the console read, with an engine and nothing else.

:class:`Reads` needs no bus: ``lienthong status``, ``dlq list``, ``dlq show``,
``trace`` and ``mapping versions``/``diff`` open it with :meth:`Reads.open`,
which checks the schema and starts no adapter. The bus's own
:class:`lienthong.store.Store` reads through the same classes.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.engine import Engine

from ..errors import RejectedError
from ..message import Message
from ..model import DeliveryState
from .engine import make_engine, prepare_schema
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
    source_counts,
)


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
        query = (
            select(dead_letters, messages.c.kind, messages.c.source)
            .join(messages, messages.c.id == dead_letters.c.message_id)
            .order_by(dead_letters.c.id.desc())
            .limit(limit)
        )
        if not include_replayed:
            query = query.where(dead_letters.c.replayed_at.is_(None))
        if endpoint:
            query = query.where(dead_letters.c.endpoint == endpoint)
        if stage:
            query = query.where(dead_letters.c.stage == stage)
        if reason:
            query = query.where(dead_letters.c.reason.contains(reason))
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

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
            created_at=row.created_at.replace(tzinfo=UTC),
        )


class History:
    """What happened to messages: trace, correlation, mapping versions and their kept inputs."""

    engine: Engine

    def trace(self, message_id: str) -> dict[str, Any] | None:
        """Every hop of a message and of the messages correlated with it."""
        with self.engine.connect() as conn:
            msg = conn.execute(
                select(messages)
                .where(or_(messages.c.id == message_id, messages.c.id.startswith(message_id)))
                .limit(2)
            ).all()
            if len(msg) != 1:
                return None
            m = msg[0]
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
            for d in dlv:
                d["mapping_params"] = headers_of(d["mapping_params"] or "")
                d["attempt_log"] = [
                    dict(a._mapping)
                    for a in conn.execute(
                        select(attempts)
                        .where(attempts.c.delivery_id == d["id"])
                        .order_by(attempts.c.number)
                    )
                ]
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
        rows at a time so ten thousand bodies are never all in memory.
        """
        query = (
            select(
                deliveries.c.id,
                deliveries.c.mapping_hash,
                deliveries.c.mapping_params,
                mapping_inputs.c.body,
            )
            .join(mapping_inputs, mapping_inputs.c.message_id == deliveries.c.message_id)
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


class Reads(Overview, History):
    """Every read model over one engine; what a read-only command opens instead of a bus."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str) -> Reads:
        """The read models of the store at ``url``, once its schema is the one this code needs.

        No adapter is built and no broker is called. A PostgreSQL store not
        upgraded is refused with the hint to run ``lienthong db upgrade``; the
        embedded SQLite file is brought up to date, as every embedded process does.
        """
        engine = make_engine(url)
        try:
            prepare_schema(engine)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine)

    def close(self) -> None:
        """Give back the engine's connections."""
        self.engine.dispose()
