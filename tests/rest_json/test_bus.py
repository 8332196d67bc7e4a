"""A new JSON/REST system connected by config and mappings alone, through a whole bus.

The one-stop-shop sandbox is polled (a time cursor with page numbers; an opaque
cursor page to page), each dossier and step goes through the shipped mapping to
the national portal sandbox; then the outcomes: a post made once across a
crash, a token renewed after a 401, a 429 retried no sooner than its
Retry-After, an error_code failure dead-lettered with the code.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from lienthong import jsonxml
from lienthong.bus import Bus
from lienthong.message import Message
from lienthong.plugins.rest_json.onestop_sandbox import OneStopSandbox
from lienthong.plugins.rest_json.portal_sandbox import PortalSandbox
from lienthong.store import attempts, deliveries
from tests.busproject import REPO
from tests.rest_json import configs


def until(
    condition: Callable[[], bool], what: str, step: Callable[[], Any], timeout: float = 30
) -> None:
    """Run ``step`` (a bus cycle) until ``condition`` holds, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        step()


def flow(
    lienthong_bus: Any, onestop: OneStopSandbox, portal: PortalSandbox, **portal_more: Any
) -> Bus:
    return lienthong_bus(
        mappings=REPO / "mappings",
        endpoints={
            "onestop-dossiers": configs.onestop_dossiers(onestop, page_size=20, max_pages=2),
            "onestop-steps": configs.onestop_steps(onestop, page_size=20, max_pages=2),
            "portal": configs.portal(portal, **portal_more),
        },
        routes=configs.ROUTES,
    )


def unordered(route: dict[str, Any]) -> dict[str, Any]:
    """The route without its targets' order_by: each delivery on its own."""
    targets = [{k: v for k, v in t.items() if k != "order_by"} for t in route["to"]]
    return {**route, "to": targets}


def seed(onestop: OneStopSandbox, dossiers: int, steps: int) -> list[str]:
    numbers = []
    for _ in range(dossiers):
        number = onestop.add_dossier()["dossierNo"]
        for n in range(steps):
            onestop.add_step(
                number, stepStatus=("received", "processing", "releasing", "done")[min(n, 3)]
            )
        numbers.append(number)
    return numbers


def test_the_one_stop_system_reaches_the_portal_by_config_and_mappings_alone(
    lienthong_bus: Any, onestop: OneStopSandbox, portal: PortalSandbox
) -> None:
    numbers = seed(onestop, 30, 5)
    bus = flow(lienthong_bus, onestop, portal)
    until(
        lambda: len(portal.dossiers) == 30 and portal.steps_recorded == 150,
        "every dossier and step at the portal",
        lambda: bus.run(once=True),
    )
    assert onestop.calls["dossiers"] >= 2 and onestop.calls["steps"] >= 8, "several pages and polls"
    assert bus.store.dead_letters() == []

    first = onestop.dossiers[numbers[0]]
    at_portal = portal.dossiers[numbers[0]]
    assert at_portal["ChuHoSo"] == first["applicantName"]
    assert at_portal["NgayTiepNhan"] == first["receiveDate"][:19].replace("-", "").replace(
        "T", ""
    ).replace(":", "")
    assert at_portal["TrangThaiHoSo"] == "10", "the last step ('done') set the portal's status"
    progress = portal.progress[numbers[0]]
    assert [p["TrangThai"] for p in progress] == ["2", "4", "9", "10", "10"]
    assert all(len(p["ThoiDiemXuLy"]) == 14 for p in progress)

    onestop.update_dossier(numbers[3], applicantName="Trần Thị Bình (cập nhật)")
    until(
        lambda: portal.dossiers[numbers[3]]["ChuHoSo"] == "Trần Thị Bình (cập nhật)",
        "the new version at the portal",
        lambda: bus.run(once=True),
    )
    assert len(portal.dossiers) == 30
    assert bus.run(once=True).received == 0, "nothing new: 'run --once' ends"


def test_a_post_repeated_after_a_crash_takes_effect_once(
    lienthong_bus: Any, onestop: OneStopSandbox
) -> None:
    number = onestop.add_dossier()["dossierNo"]
    bus = lienthong_bus(
        endpoints={"onestop": configs.onestop_opinions(onestop), "inbox": {"adapter": "memory"}},
        routes=[
            {
                "name": "opinions",
                "from": "inbox",
                "to": [{"endpoint": "onestop", "kind": "onestop.opinion"}],
            }
        ],
    )
    opinion = {
        "dossierNo": number,
        "actionUser": "Sở Tài chính",
        "actionNote": "Đồng ý",
        "stepStatus": "processing",
    }
    bus.accept([Message(body=jsonxml.json_to_xml(jsonxml.to_json(opinion)), source="inbox")])
    bus.run(once=True)
    assert len(onestop.steps) == 1
    # The worker died after the call but before it recorded the outcome: the delivery is
    # pending again and goes out again, with the same key.
    with bus.store.engine.begin() as conn:
        conn.execute(
            sa.update(deliveries).values(state="pending", claimed_by=None, claimed_until=None)
        )
    bus.run(once=True)
    with bus.store.engine.connect() as conn:
        sent = conn.execute(sa.select(sa.func.count()).select_from(attempts)).scalar_one()
    assert sent == 2, "it was sent twice..."
    assert len(onestop.steps) == 1, "...and the system recorded it once (Idempotency-Key)"


def test_a_token_refused_with_401_is_renewed_and_the_flow_goes_on(
    lienthong_bus: Any, onestop: OneStopSandbox, portal: PortalSandbox
) -> None:
    seed(onestop, 2, 1)
    bus = flow(lienthong_bus, onestop, portal)
    until(lambda: len(portal.dossiers) == 2, "the first dossiers", lambda: bus.run(once=True))
    onestop.expire_tokens()
    seed(onestop, 2, 1)
    until(lambda: len(portal.dossiers) == 4, "the next dossiers", lambda: bus.run(once=True))
    # Two endpoints (dossiers, steps), each with its token: each refused once, renewed once.
    assert onestop.tokens_issued == 4
    assert sorted(onestop.refused) == ["/api/v1/dossiers", "/api/v1/steps"]
    assert bus.store.dead_letters() == []


def test_a_429_is_retried_no_sooner_than_its_retry_after(
    lienthong_bus: Any, onestop: OneStopSandbox, portal: PortalSandbox
) -> None:
    seed(onestop, 1, 0)
    portal.inject(
        429, {"message": "quá nhiều yêu cầu"}, headers={"Retry-After": "2"}, path="/integration"
    )
    bus = flow(lienthong_bus, onestop, portal)  # its retry policy alone would wait 0.05 s
    until(
        lambda: len(portal.dossiers) == 1,
        "the dossier after the wait",
        lambda: bus.run(once=True),
        20,
    )
    with bus.store.engine.connect() as conn:
        tries = conn.execute(
            sa.select(attempts.c.at, attempts.c.outcome).order_by(attempts.c.id)
        ).all()
    assert [t.outcome for t in tries] == ["transient", "ok"]
    assert (tries[1].at - tries[0].at).total_seconds() >= 2.0


def test_an_error_code_failure_is_dead_lettered_with_the_code(
    lienthong_bus: Any, onestop: OneStopSandbox, portal: PortalSandbox
) -> None:
    good = onestop.add_dossier()["dossierNo"]
    onestop.add_dossier(
        dossierNo="HS-2026-0001"
    )  # not the circular's pattern: the portal refuses it
    bus = flow(lienthong_bus, onestop, portal)
    until(lambda: bool(bus.store.dead_letters()), "the dead letter", lambda: bus.run(once=True))
    [dead] = bus.store.dead_letters()
    assert dead["endpoint"] == "portal"
    assert "error_code -2" in dead["reason"]
    assert "MaHoSo 'HS-2026-0001' không đúng mẫu" in dead["reason"]
    assert list(portal.dossiers) == [good]


def test_steps_before_their_dossier_wait_without_opening_the_portals_circuit(
    lienthong_bus: Any, onestop: OneStopSandbox, portal: PortalSandbox
) -> None:
    # Without order_by (or with several sources) steps can reach the portal before their
    # dossier. The portal answers -4 ("no such dossier"); that message waits, but the
    # portal is up, so its circuit must stay closed for everything else.
    number = onestop.add_dossier()["dossierNo"]
    for status in ("received", "processing", "done"):
        onestop.add_step(number, stepStatus=status)
    bus = lienthong_bus(
        mappings=REPO / "mappings",
        bus={"breaker_failures": 2},
        endpoints={
            "onestop-steps": configs.onestop_steps(onestop),
            "portal": configs.portal(portal),
        },
        routes=[unordered(route) for route in configs.ROUTES[1:]],
    )
    bus.run(once=True)
    assert portal.refusals.get("-4", 0) >= 3 and portal.steps_recorded == 0
    assert bus.breakers["portal"].state.value == "closed"
    dossiers = lienthong_bus(
        mappings=REPO / "mappings",
        endpoints={
            "onestop-dossiers": configs.onestop_dossiers(onestop),
            "portal": configs.portal(portal),
        },
        routes=configs.ROUTES[:1],
    )
    until(lambda: number in portal.dossiers, "the dossier", lambda: dossiers.run(once=True))
    until(lambda: portal.steps_recorded == 3, "the steps, retried", lambda: bus.run(once=True), 20)
