"""A real sync adapter backed by a database table, for the sync and scheduler tests.

Each endpoint keeps its records in its own table (``key``, ``fields`` as JSON,
``disabled``, ``seq``). ``seq`` rises on every write, so a delta read returns
the records written after a cursor, disabled ones included. Every effect of
``sync_apply`` is logged in ``<table>_effects`` in the same transaction, so a
test can count duplicate effects.

Options: ``table`` (required), ``apply_delay`` (seconds per apply, to be killed
midway), ``reject_keys`` (comma-separated keys whose apply raises
``RejectedError``), ``fail_after`` (raise ``TransientError`` once this many
applies succeeded; -1 never).
"""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine

from lienthong.adapter import Adapter, Capability, Change, Option, Record, Services, SyncBatch
from lienthong.errors import RejectedError, TransientError


def tables(name: str) -> tuple[MetaData, Table, Table]:
    meta = MetaData()
    records = Table(
        name, meta,
        Column("key", String(200), primary_key=True),
        Column("fields", Text, nullable=False),
        Column("disabled", Boolean, nullable=False, default=False),
        Column("seq", Integer, nullable=False),
    )
    effects = Table(
        f"{name}_effects", meta,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("key", String(200), nullable=False),
        Column("action", String(20), nullable=False),
    )
    return meta, records, effects


class TableAdapter(Adapter):
    """Sync adapter over one table of the engine the core hands in."""

    name = "sync-table"
    summary = "Records in a database table (test adapter)."
    capabilities = frozenset({Capability.SYNC})
    options = (
        Option("table", "table name"),
        Option("apply_delay", "seconds slept per apply", default=0.0, type=float),
        Option("reject_keys", "keys whose apply is rejected", default=""),
        Option("fail_after", "transient error after this many applies", default=-1, type=int),
    )

    def __init__(self, endpoint: str, settings: dict[str, Any], services: Services) -> None:
        super().__init__(endpoint, settings, services)
        assert services.engine is not None
        self.engine: Engine = services.engine
        self.meta, self.records, self.effects = tables(self.settings["table"])
        self.applied = 0

    def start(self) -> None:
        self.meta.create_all(self.engine)

    # --- what a test does to the system directly ---

    def _next_seq(self, conn: Connection) -> int:
        return int(conn.execute(select(func.coalesce(func.max(self.records.c.seq), 0))).scalar_one()) + 1

    def put(self, key: str, fields: dict[str, Any], disabled: bool = False) -> None:
        with self.engine.begin() as conn:
            self._write(conn, key, fields, disabled)

    def put_many(self, rows: dict[str, dict[str, Any]]) -> None:
        with self.engine.begin() as conn:
            for key, fields in rows.items():
                self._write(conn, key, fields, False)

    def _write(self, conn: Connection, key: str, fields: dict[str, Any], disabled: bool) -> None:
        seq = self._next_seq(conn)
        values = {"fields": json.dumps(fields, sort_keys=True), "disabled": disabled, "seq": seq}
        if not conn.execute(update(self.records).where(self.records.c.key == key)
                            .values(**values)).rowcount:
            conn.execute(insert(self.records).values(key=key, **values))

    def remove(self, key: str) -> None:
        """Mark a record gone, as a delta shows a deletion."""
        with self.engine.begin() as conn:
            conn.execute(update(self.records).where(self.records.c.key == key)
                         .values(disabled=True, seq=self._next_seq(conn)))

    def state(self) -> dict[str, tuple[dict[str, Any], bool]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(self.records)).all()
        return {r.key: (json.loads(r.fields), bool(r.disabled)) for r in rows}

    def effect_counts(self) -> dict[tuple[str, str], int]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(self.effects.c.key, self.effects.c.action,
                                       func.count()).group_by(self.effects.c.key,
                                                              self.effects.c.action)).all()
        return {(k, a): n for k, a, n in rows}

    # --- the adapter contract ---

    def sync_read(self, entity: str, since: str | None) -> SyncBatch:
        query = select(self.records).order_by(self.records.c.seq)
        if since is not None:
            query = query.where(self.records.c.seq > int(since))
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
            top = conn.execute(select(func.max(self.records.c.seq))).scalar_one()
        records = []
        for row in rows:
            fields = json.loads(row.fields)
            if row.disabled:
                fields["disabled"] = True
            records.append(Record(row.key, fields))
        return SyncBatch(records, complete=since is None, cursor=str(top or since or 0))

    def sync_apply(self, entity: str, change: Change) -> None:
        if change.key in {k for k in self.settings["reject_keys"].split(",") if k}:
            raise RejectedError(f"{self.endpoint}: key '{change.key}' is not allowed here")
        if self.settings["fail_after"] >= 0 and self.applied >= self.settings["fail_after"]:
            raise TransientError(f"{self.endpoint}: the server went away")
        if self.settings["apply_delay"]:
            time.sleep(self.settings["apply_delay"])
        with self.engine.begin() as conn:
            row = conn.execute(select(self.records).where(self.records.c.key == change.key)).first()
            if change.action == "create":
                self._write(conn, change.key, dict(change.fields), False)
            elif change.action == "update":
                if row is None:
                    raise RejectedError(f"{self.endpoint}: no record '{change.key}' to update")
                fields = json.loads(row.fields)
                fields.update({k: v for k, v in change.fields.items() if k != "disabled"})
                disabled = bool(change.fields.get("disabled", row.disabled))
                self._write(conn, change.key, fields, disabled)
            elif change.action == "disable":
                if row is None:
                    raise RejectedError(f"{self.endpoint}: no record '{change.key}' to disable")
                self._write(conn, change.key, json.loads(row.fields), True)
            else:
                raise RejectedError(f"{self.endpoint}: unknown action {change.action!r}")
            conn.execute(insert(self.effects).values(key=change.key, action=change.action))
        self.applied += 1


def make(engine: Engine, endpoint: str, table: str, **settings: Any) -> TableAdapter:
    """A started adapter for ``endpoint`` over ``table``."""
    adapter = TableAdapter(endpoint, {"apply_delay": 0.0, "reject_keys": "", "fail_after": -1,
                                      "table": table, **settings}, Services(engine=engine))
    adapter.start()
    return adapter
