"""A route target's once_per: of the messages with one value, only the first is sent there.

Decided by the store in the accept's transaction (a row per route, endpoint and
value), on SQLite and PostgreSQL; the skip is in the message's audit trail, which
``trace`` and the console show. Two workers accepting one value at once send once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from lxml import etree
from sqlalchemy import event, select
from sqlalchemy.exc import IntegrityError

from lienthong import errors
from lienthong.message import Message
from lienthong.plugins import memory
from lienthong.router import OncePer, Route, Router, Target
from lienthong.store import Intake, Outgoing, Store, deliveries, make_engine, once_per

DOSSIER = "string(//dossierNo)"


def dossier(number: str, version: int = 1) -> bytes:
    return f"<dossier><dossierNo>{number}</dossierNo><v>{version}</v></dossier>".encode()


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    store = Store(make_engine(store_url))
    store.upgrade()
    yield store
    store.engine.dispose()


def letter(
    message: Message, value: str | None, *, route: str = "letters", endpoint: str = "axis"
) -> Outgoing:
    return Outgoing(f"{message.id}-{route}-{endpoint}", route, endpoint, b"<l/>", {}, once=value)


def routed(number: str, *, portal: bool = True) -> Intake:
    """A dossier version: a letter once per dossier, and (unlike it) every version to the portal."""
    message = Message(body=dossier(number))
    outgoing = [letter(message, number)]
    if portal:
        outgoing.append(Outgoing(f"{message.id}-portal", "versions", "portal", b"<p/>", {}))
    return Intake(message, outgoing)


def stored_deliveries(store: Store) -> list[tuple[str, str]]:
    with store.engine.connect() as conn:
        rows = conn.execute(select(deliveries.c.message_id, deliveries.c.endpoint))
        return sorted((m, e) for m, e in rows)


def audit_of(store: Store, message_id: str) -> list[tuple[str, str | None, str]]:
    found = store.trace(message_id)
    assert found is not None
    return [(h["event"], h["endpoint"], h["detail"]) for h in found["hops"]]


# --- the router finds the value ---------------------------------------------


def route_with_once(expression: str = DOSSIER) -> Router:
    once = OncePer(etree.XPath(expression))
    return Router([Route("letters", [Target("axis", once_per=once), Target("portal")])], None)


def test_the_router_gives_the_value_to_the_target_with_once_per_only() -> None:
    letters, portal = route_with_once().route(Message(body=dossier(" D-1 ")))
    assert (letters.endpoint, letters.once) == ("axis", "D-1")
    assert (portal.endpoint, portal.once) == ("portal", None)


def test_a_message_without_the_value_is_refused_naming_the_expression_and_the_fix() -> None:
    with pytest.raises(errors.RejectedError) as caught:
        route_with_once().route(Message(body=b"<dossier><dossierNo> </dossierNo></dossier>"))
    assert str(caught.value) == (
        "once_per 'string(//dossierNo)' finds nothing in this message, so whether it was sent "
        "already is unknown. Hint: fix the XPath, or route such messages by a target without "
        "once_per"
    )


def test_a_value_longer_than_the_store_keeps_is_refused_not_shortened() -> None:
    with pytest.raises(errors.RejectedError, match="a value of 201 characters; at most 200"):
        route_with_once().route(Message(body=dossier("D" * 201)))
    assert route_with_once().route(Message(body=dossier("D" * 200)))[0].once == "D" * 200


# --- the store decides, in the accept's transaction ------------------------------


def test_a_later_message_with_the_value_gets_no_delivery_there_and_its_trail_says_why(
    store: Store,
) -> None:
    first, again, other = routed("D-1"), routed("D-1"), routed("D-2")
    store.accept([first])
    results = store.accept([again, other])
    assert all(new for _, new in results)
    one, two, three = (i.message.id for i in (first, again, other))
    m = again.message
    assert stored_deliveries(store) == sorted(
        [(one, "axis"), (one, "portal"), (two, "portal"), (three, "axis"), (three, "portal")]
    )
    # What the caller sends (and logs) is what was stored.
    assert [o.endpoint for o in again.outgoing] == ["portal"]
    [skip] = again.skipped
    assert (skip.outgoing.endpoint, skip.outgoing.once, skip.first) == ("axis", "D-1", one)
    assert audit_of(store, two) == [
        ("accepted", m.source, f"{m.kind}, {len(m.body)} bytes; to portal by route versions"),
        (
            "skipped",
            "axis",
            f"no delivery to axis by route letters: message {one} had its "
            "once_per value 'D-1' first",
        ),
    ]
    assert not first.skipped and [o.endpoint for o in first.outgoing] == ["axis", "portal"]
    with store.engine.connect() as conn:
        rows = conn.execute(select(once_per).order_by(once_per.c.value)).mappings().all()
    assert [
        (r["route"], r["endpoint"], r["value"], r["message_id"], r["delivery_id"]) for r in rows
    ] == [
        ("letters", "axis", "D-1", one, first.outgoing[0].key),
        ("letters", "axis", "D-2", three, other.outgoing[0].key),
    ]


def test_in_one_batch_the_first_has_it_and_a_message_with_nothing_else_is_still_stored(
    store: Store,
) -> None:
    first, again = routed("D-1", portal=False), routed("D-1", portal=False)
    store.accept([first, again])
    assert stored_deliveries(store) == [(first.message.id, "axis")]
    assert again.outgoing == [] and again.skipped[0].first == first.message.id
    assert store.message(again.message.id) is not None
    assert [e for e, _, _ in audit_of(store, again.message.id)] == ["accepted", "skipped"]


def test_the_value_counts_per_route_and_endpoint(store: Store) -> None:
    message = Message(body=dossier("D-1"))
    store.accept([Intake(message, [letter(message, "D-1")])])
    others = []
    for route, endpoint in (("letters", "mail"), ("reminders", "axis")):
        m = Message(body=dossier("D-1"))
        others.append(Intake(m, [letter(m, "D-1", route=route, endpoint=endpoint)]))
    store.accept(others)
    assert all(not i.skipped for i in others) and len(stored_deliveries(store)) == 3


def test_a_source_offering_the_first_message_again_is_a_repeat_not_a_skip(store: Store) -> None:
    def keyed() -> Intake:
        message = Message(body=dossier("D-1"), source="desk", source_key="v1")
        return Intake(message, [letter(message, "D-1")])

    first, repeat = keyed(), keyed()
    store.accept([first])
    [(_, new)] = store.accept([repeat])
    assert not new and not repeat.skipped  # nothing decided for a message not stored again


def test_an_accept_rolled_back_claims_nothing(store: Store) -> None:
    first = routed("D-1")
    # Its portal delivery twice: the deliveries' insert fails after the claim.
    failing = Intake(first.message, first.outgoing + [first.outgoing[1]])
    with pytest.raises(IntegrityError):
        store.accept([failing])
    assert failing.skipped == [] and len(failing.outgoing) == 3
    again = routed("D-1")
    store.accept([again])
    assert not again.skipped and (again.message.id, "axis") in stored_deliveries(store)


def test_two_workers_accepting_one_value_at_once_send_it_once(pg_url: str) -> None:
    """The first holds its transaction open after claiming; the second waits, then finds it."""
    engines = [make_engine(pg_url) for _ in range(2)]
    Store(engines[0]).upgrade()
    stores = [Store(e) for e in engines]
    claimed = threading.Event()

    @event.listens_for(engines[0], "after_cursor_execute")
    def hold(conn, cursor, statement, params, context, executemany) -> None:  # noqa: ANN001
        if statement.startswith("INSERT INTO once_per"):
            claimed.set()
            threading.Event().wait(0.5)  # the second worker's INSERT meets the uncommitted row

    intakes = [routed("D-1"), routed("D-1")]
    failures: list[BaseException] = []

    def accept(i: int) -> None:
        try:
            if i == 1:
                assert claimed.wait(10)
            stores[i].accept([intakes[i]])
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=accept, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not failures, failures
    first, second = intakes
    assert [s.first for s in second.skipped] == [first.message.id] and not first.skipped
    assert [e for m, e in stored_deliveries(stores[0]) if e == "axis"] == ["axis"]
    for e in engines:
        e.dispose()


def test_many_workers_racing_for_the_same_values_send_each_once(pg_url: str) -> None:
    engine = make_engine(pg_url)
    Store(engine).upgrade()
    stores = [Store(engine) for _ in range(4)]
    start = threading.Barrier(4)
    batches = [[routed(f"D-{n}", portal=False) for n in range(20)] for _ in range(4)]
    failures: list[BaseException] = []

    def accept(i: int) -> None:
        try:
            start.wait(10)
            # Each worker in its own order: sorted claims keep them from deadlocking.
            batch = batches[i] if i % 2 else list(reversed(batches[i]))
            stores[i].accept(batch)
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=accept, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not failures, failures
    sent = [i for batch in batches for i in batch if i.outgoing]
    assert sorted(i.outgoing[0].once or "" for i in sent) == sorted(f"D-{n}" for n in range(20))
    assert len(stored_deliveries(stores[0])) == 20
    assert sum(len(i.skipped) for batch in batches for i in batch) == 60
    engine.dispose()


# --- on the bus: what is sent, what a replay does -------------------------------


@pytest.fixture
def bus_on(lienthong_bus, store_url: str):  # noqa: ANN201
    """Buses on the store; like 'lienthong db upgrade' before the first, for PostgreSQL."""
    memory.reset()
    engine = make_engine(store_url)
    Store(engine).upgrade()
    engine.dispose()

    def build(endpoints: dict[str, object], target: dict[str, object] | str = "portal"):  # noqa: ANN202
        return lienthong_bus(
            bus={"store": store_url},
            endpoints={"in": {"adapter": "memory"}, **endpoints},
            routes=[
                {
                    "name": "letters",
                    "from": "in",
                    "to": [{"endpoint": "axis", "once_per": DOSSIER}, target],
                },
            ],
        )

    return build


def test_each_dossier_is_lettered_once_whatever_its_versions(bus_on) -> None:
    bus = bus_on({"axis": {"adapter": "memory"}, "portal": {"adapter": "memory"}})
    memory.feed("in", [Message(body=dossier("D-1", 1)), Message(body=dossier("D-2", 1))])
    bus.run(once=True)
    memory.feed("in", [Message(body=dossier("D-1", 2)), Message(body=dossier("D-1", 3))])
    bus.run(once=True)
    assert [m.body for m in memory.delivered("axis")] == [dossier("D-1", 1), dossier("D-2", 1)]
    assert len(memory.delivered("portal")) == 4
    # A value the XPath does not find parks the message with the reason.
    memory.feed("in", [Message(body=b"<dossier><number>D-2</number><v>2</v></dossier>")])
    bus.run(once=True)
    [dead] = bus.store.dead_letters()
    assert "once_per 'string(//dossierNo)' finds nothing in this message" in dead["reason"]
    # The XPath fixed, the replay routes it for the first time: D-2 was lettered already.
    target = bus.router.routes[0].targets[0]
    target.once_per = OncePer(etree.XPath("string(//dossierNo | //number)"))
    first = next(m.id for m in memory.delivered("axis") if b"D-2" in m.body)
    preview = bus.replay_preview(dead["id"]).lines()
    assert preview[0] == f"#{dead['id']}: would route the message again"
    assert f"  not to axis by route letters: message {first} had its once_per value 'D-2' first" in preview
    assert any(line.startswith("  to portal by route letters: ") for line in preview)
    assert bus.replay(dead["id"]) == (
        f"routed again to portal; not to axis: message {first} had its once_per value 'D-2' first"
    )
    bus.run(once=True)
    assert len(memory.delivered("axis")) == 2 and len(memory.delivered("portal")) == 5
    hops = bus.store.trace(dead["message_id"])["hops"]
    assert [(h["event"], h["endpoint"]) for h in hops][2:] == [
        ("replayed", "portal"),
        ("skipped", "axis"),
        ("delivered", "portal"),
    ]


def test_a_dead_first_delivery_is_replayed_and_later_versions_stay_unsent(
    bus_on, lienthong_host, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whether the first delivery succeeded does not matter: its value is used."""
    from tests.core.test_bus import Refuser, TestPlugin

    lienthong_host.add(TestPlugin(), "test-adapters")
    lienthong_host.refresh()
    bus = bus_on({"axis": {"adapter": "refuser"}, "portal": {"adapter": "memory"}})
    memory.feed("in", [Message(body=dossier("D-1", 1))])
    bus.run(once=True)
    [dead] = bus.store.dead_letters()
    memory.feed("in", [Message(body=dossier("D-1", 2))])
    bus.run(once=True)
    assert len(bus.store.dead_letters()) == 1  # the second version: no delivery, no attempt
    assert len(memory.delivered("portal")) == 2
    # The axis takes it now; the replay is the same delivery, once_per does not stop it.
    sent: list[str] = []
    monkeypatch.setattr(Refuser, "send", lambda self, message, *, key: sent.append(key))
    assert bus.replay(dead["id"]) == "delivery to 'axis' queued again"
    bus.run(once=True)
    assert sent == [dead["delivery_id"]]


# --- the migration ------------------------------------------------------------


def test_migration_0010_makes_the_table_as_declared_and_takes_it_away(store_url: str) -> None:
    from alembic.command import downgrade
    from sqlalchemy import inspect

    from lienthong.migrations import alembic_config, upgrade
    from lienthong.store import metadata

    engine = make_engine(store_url)
    upgrade(engine, "0009")
    assert "once_per" not in inspect(engine).get_table_names()
    upgrade(engine)
    found = inspect(engine)
    declared = metadata.tables["once_per"]
    assert {c["name"]: c["nullable"] for c in found.get_columns("once_per")} == {
        c.name: c.nullable for c in declared.columns
    }
    assert found.get_pk_constraint("once_per")["constrained_columns"] == [
        "route",
        "endpoint",
        "value",
    ]
    downgrade(alembic_config(engine), "0009")
    assert "once_per" not in inspect(engine).get_table_names()
    engine.dispose()
