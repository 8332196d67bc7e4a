"""A route's ``senders``: a matching message from anyone else is refused whole, parked, replayable."""

from __future__ import annotations

from pathlib import Path

import pytest

from lienthong import config
from lienthong.errors import ConfigError
from lienthong.message import Message
from lienthong.plugins import memory

UBND, STC = "000.00.00.H41", "000.00.01.H41"


def routes(*senders: str) -> list[dict]:
    return [
        {"name": "letters", "from": "axis", "to": "dms"},
        {
            "name": "estimates",
            "from": "axis",
            "kind": "decision",
            "senders": list(senders),
            "to": "acct",
        },
    ]


ENDPOINTS = {n: {"adapter": "memory"} for n in ("axis", "dms", "acct")}


def test_a_money_route_takes_only_its_senders_and_parks_the_rest(lienthong_bus) -> None:
    memory.reset()
    bus = lienthong_bus(endpoints=ENDPOINTS, routes=routes(UBND))
    memory.feed(
        "axis",
        [
            Message(body=b"<d n='1'/>", kind="decision", headers={"from": UBND}),
            Message(body=b"<d n='2'/>", kind="decision", headers={"from": STC}),
            Message(body=b"<d n='3'/>", kind="decision"),
            Message(body=b"<l/>", kind="letter", headers={"from": STC}),
        ],
    )
    bus.run(once=True)
    assert [m.body for m in memory.delivered("acct")] == [b"<d n='1'/>"]
    assert [m.body for m in memory.delivered("dms")] == [b"<d n='1'/>", b"<l/>"]
    reasons = sorted(d["reason"] for d in bus.store.dead_letters(stage="route"))
    assert reasons == [
        f"route 'estimates' takes this message only from {UBND}, and it comes from "
        f"'{STC}'. Hint: if this sender is entitled, add it to the route's senders, then replay "
        "it with 'lienthong dlq replay'",
        f"route 'estimates' takes this message only from {UBND}, and it comes from 'no sender'. "
        "Hint: if this sender is entitled, add it to the route's senders, then replay it with "
        "'lienthong dlq replay'",
    ]


def test_a_refused_message_is_replayed_once_its_sender_is_entitled(
    lienthong_bus, tmp_path: Path
) -> None:
    memory.reset()
    strict = lienthong_bus(endpoints=ENDPOINTS, routes=routes(UBND))
    memory.feed("axis", [Message(body=b"<d/>", kind="decision", headers={"from": STC})])
    strict.run(once=True)
    [dead] = strict.store.dead_letters()
    strict.close()
    entitled = lienthong_bus(endpoints=ENDPOINTS, routes=routes(UBND, STC))
    assert entitled.replay(dead["id"]) == "routed again to dms, acct"
    entitled.run(once=True)
    assert [m.body for m in memory.delivered("acct")] == [b"<d/>"]


def test_empty_senders_is_a_config_error(tmp_path: Path) -> None:
    data = {"endpoints": ENDPOINTS, "routes": routes()}
    with pytest.raises(ConfigError, match="routes.1.senders: list the agency codes"):
        config.from_dict(data, base_dir=tmp_path)
    cfg = config.from_dict({"endpoints": ENDPOINTS, "routes": routes(UBND)}, base_dir=tmp_path)
    assert cfg.routes[1].senders == {UBND} and cfg.routes[0].senders == frozenset()
