"""A target's order_by: a dossier's steps reach the portal in the order they happened.

The portal takes a step only once it has the dossier (it answers -4 otherwise,
which the bus retries). The steps are accepted before their dossier here; with
order_by only the first is tried while the dossier is missing, the later ones
wait behind it, and once the dossier is there they land in order: on the
embedded default and in production mode (PostgreSQL + RabbitMQ, keys from the
queue, the relay queueing the waiting ones again).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from lienthong.bus import Bus
from lienthong.plugins.rest_json.onestop_sandbox import OneStopSandbox
from lienthong.plugins.rest_json.portal_sandbox import PortalSandbox
from tests.busproject import REPO
from tests.rest_json import configs

GROUP = "string(//*[@key='dossierNo'])"


def until(condition: Callable[[], bool], what: str, step: Callable[[], Any]) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        step()


@pytest.fixture
def bus_settings(bus_settings: dict[str, Any]) -> dict[str, Any]:
    """In production, the waiting ones must come back sooner than the default requeue."""
    return {**bus_settings, "requeue_seconds": 30} if bus_settings else bus_settings


def builder(
    lienthong_bus: Any, onestop: OneStopSandbox, portal: PortalSandbox, bus_settings: dict[str, Any]
) -> Callable[[str], Bus]:
    """``build("steps")`` (ordered per dossier) or ``build("dossiers")``: buses on one store.

    One at a time: a bus left open would keep consuming its endpoint's queue.
    """
    name = f"portal-{uuid.uuid4().hex[:8]}"
    sources = {
        "steps": (
            configs.onestop_steps(onestop),
            "onestop/step-to-portal-progress.xsl",
            "portal.progress",
            {"order_by": {"group": GROUP}},
        ),
        "dossiers": (
            configs.onestop_dossiers(onestop),
            "onestop/dossier-to-portal.xsl",
            "portal.dossier",
            {},
        ),
    }

    def build(which: str) -> Bus:
        config, mapping, kind, more = sources[which]
        return lienthong_bus(
            mappings=REPO / "mappings",
            # A retry later than one cycle: 'run --once' ends while the first step waits.
            bus={
                "poll_interval": 0.2,
                "retry": {"initial_delay": 1, "max_delay": 1},
                **bus_settings,
            },
            endpoints={f"onestop-{which}": config, name: configs.portal(portal)},
            routes=[
                {
                    "name": which,
                    "from": f"onestop-{which}",
                    "to": [{"endpoint": name, "mapping": mapping, "kind": kind, **more}],
                }
            ],
        )

    return build


def test_steps_wait_for_their_turn_and_land_in_order(
    lienthong_bus: Any,
    onestop: OneStopSandbox,
    portal: PortalSandbox,
    bus_settings: dict[str, Any],
) -> None:
    first = onestop.add_dossier()["dossierNo"]
    for status in ("received", "processing", "releasing", "done"):
        onestop.add_step(first, stepStatus=status)
    build = builder(lienthong_bus, onestop, portal, bus_settings)

    steps = build("steps")
    steps.run(once=True)
    assert portal.refusals.get("-4", 0) >= 1 and portal.steps_recorded == 0
    tried = portal.refusals["-4"]
    steps.run(once=True)
    assert portal.refusals["-4"] - tried <= 1, "only the first step is tried: the others wait"
    steps.close()

    dossiers = build("dossiers")
    until(lambda: first in portal.dossiers, "the dossier", lambda: dossiers.run(once=True))
    dossiers.close()

    steps = build("steps")
    until(lambda: portal.steps_recorded == 4, "the four steps", lambda: steps.run(once=True))
    assert [p["TrangThai"] for p in portal.progress[first]] == ["2", "4", "9", "10"]
    assert steps.store.dead_letters() == []


def test_a_message_without_its_group_is_parked_with_the_reason(
    lienthong_bus: Any, onestop: OneStopSandbox, portal: PortalSandbox
) -> None:
    number = onestop.add_dossier()["dossierNo"]
    onestop.add_step(number, stepStatus="received")
    bus = lienthong_bus(
        mappings=REPO / "mappings",
        endpoints={
            "onestop-steps": configs.onestop_steps(onestop),
            "portal": configs.portal(portal),
        },
        routes=[
            {
                "name": "steps",
                "from": "onestop-steps",
                "to": [
                    {
                        "endpoint": "portal",
                        "mapping": "onestop/step-to-portal-progress.xsl",
                        "kind": "portal.progress",
                        "order_by": {"group": "string(//*[@key='hoSo'])"},
                    }
                ],
            }
        ],
    )
    bus.run(once=True)
    [dead] = bus.store.dead_letters()
    assert "order_by group" in dead["reason"] and "finds nothing" in dead["reason"]
    assert portal.steps_recorded == 0
