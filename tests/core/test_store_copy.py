"""The store's bulk writes: COPY on PostgreSQL, executemany on SQLite, the same rows either way.

A batch's deliveries, audit records and attempts go in with PostgreSQL's COPY,
and a page of messages through a temporary table (lienthong.store.base): COPY's
text format has escapes of its own, so bodies and headers that need them are
checked byte for byte; its errors must be the ones every other statement
raises; and a role that may not create temporary tables is told the grant.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa

from lienthong.audit import verify
from lienthong.errors import StoreUnavailable
from lienthong.message import Message
from lienthong.model import Outcome, Result
from lienthong.store import Intake, Outgoing, Store, make_engine
from lienthong.store.base import _copy
from lienthong.store.schema import audit

LEASE = timedelta(seconds=60)
# Every byte, and the ones COPY's text format escapes in particular.
AWKWARD_BODY = bytes(range(256)) + b"\\N\\.\t\r\n\\\\x00"
AWKWARD_HEADERS = {"Tiêu đề": "Sở Y tế\tĐắk Lắk\\n\r\n\\N", "empty": ""}


def accepted(store: Store, body: bytes, headers: dict[str, str], key: str) -> Intake:
    intake = Intake(Message(body=body, source="in", headers=headers))
    intake.outgoing = [Outgoing(key, "r", "out", body, headers)]
    store.accept([intake], enqueued_by="w")
    return intake


def test_bodies_and_headers_come_back_byte_for_byte(store_url: str) -> None:
    store = Store(make_engine(store_url))
    store.upgrade()
    intake = accepted(store, AWKWARD_BODY, AWKWARD_HEADERS, "k-awkward")
    [delivery] = store.claim(["k-awkward"], "w", lease=LEASE)
    assert delivery.body == AWKWARD_BODY
    assert delivery.headers == AWKWARD_HEADERS
    message = store.message(intake.message.id)
    assert message is not None
    assert (message.body, message.headers) == (AWKWARD_BODY, AWKWARD_HEADERS)
    store.finish([Outcome(delivery, Result.OK)], "w")
    trail = store.trace(intake.message.id)
    assert trail is not None
    assert [h["event"] for h in trail["hops"]] == ["accepted", "delivered"]
    assert [a["outcome"] for a in trail["deliveries"][0]["attempt_log"]] == ["ok"]
    assert verify(store.engine, audit).ok  # the chain's hashes cover the copied rows
    store.engine.dispose()


def test_a_failed_copy_raises_sqlalchemys_error_and_stores_nothing(store_url: str) -> None:
    store = Store(make_engine(store_url))
    store.upgrade()
    accepted(store, b"<a/>", {}, "k-taken")
    second = Intake(Message(body=b"<b/>", source="in"))
    second.outgoing = [Outgoing("k-taken", "r", "out", b"<b/>", {})]  # a key already stored
    with pytest.raises(sa.exc.IntegrityError):
        store.accept([second], enqueued_by="w")
    with store.engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT count(*) FROM messages").scalar_one()
    assert stored == 1  # the second message went with its transaction
    store.engine.dispose()


def test_a_connection_lost_before_a_copy_is_an_operational_error_and_the_pool_recovers(
    pg_url: str,
) -> None:
    engine = make_engine(pg_url)
    Store(engine).upgrade()
    admin = sa.create_engine(pg_url)
    with pytest.raises(sa.exc.OperationalError) as raised, engine.begin() as conn:
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        with admin.begin() as other:
            other.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")
        _copy(conn, "cursors", ["name", "value", "updated_at"], [["c", "v", None]])
    assert raised.value.connection_invalidated
    with engine.connect() as conn:  # a fresh connection, not the dead one
        assert conn.exec_driver_sql("SELECT 1").scalar_one() == 1
    admin.dispose()
    engine.dispose()


def test_a_role_without_temporary_is_told_the_grant_and_keeps_its_messages(pg_url: str) -> None:
    name = f"lt_notemp_{uuid.uuid4().hex[:8]}"
    server = sa.engine.make_url(pg_url).set(query={})
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE ROLE {name} LOGIN")
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
        conn.exec_driver_sql(f"REVOKE TEMPORARY ON DATABASE {name} FROM PUBLIC")
    owner = make_engine(str(server.set(database=name)))
    restricted = make_engine(str(server.set(database=name, username=name)))
    try:
        Store(owner).upgrade()
        with owner.begin() as conn:
            conn.exec_driver_sql(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {name}")
            conn.exec_driver_sql(f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {name}")
        store = Store(restricted)
        keyed = Intake(Message(body=b"<a/>", source="in", source_key="k1"))
        with pytest.raises(StoreUnavailable, match=f"GRANT TEMPORARY ON DATABASE {name} TO {name}"):
            store.accept([keyed])
        with owner.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM messages").scalar_one() == 0
        with owner.begin() as conn:
            conn.exec_driver_sql(f"GRANT TEMPORARY ON DATABASE {name} TO {name}")
        assert [new for _, new in store.accept([keyed])] == [True]  # read again, stored now
    finally:
        owner.dispose()
        restricted.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.exec_driver_sql(f"DROP ROLE IF EXISTS {name}")
        admin.dispose()
