"""Access rules: who may send to whom."""

from __future__ import annotations

from lienthong.access import AccessPolicy, Rule, from_config


def where(*keys) -> str:
    return ".".join(map(str, keys))


def test_no_access_section_allows_everything() -> None:
    assert AccessPolicy().refusal("anyone", ["anywhere"]) is None


def test_what_no_rule_allows_is_denied() -> None:
    policy = AccessPolicy([Rule("onestop-in", frozenset({"docs"})), Rule("*", frozenset({"log"}))])
    assert policy.refusal("onestop-in", ["docs", "log"]) is None
    refusal = policy.refusal("onestop-in", ["docs", "acct-stc"])
    assert refusal and "'onestop-in' may not send to 'acct-stc'" in refusal


def test_rules_from_config_name_unknown_endpoints() -> None:
    policy, problems = from_config(
        [{"from": "in", "to": ["out", "nope"]}, {"from": "in"}], {"in", "out"}, where
    )
    assert [str(p) for p in problems] == [
        "access.0.to: no endpoint named 'nope'",
        "access.1: each rule is {from: SOURCE, to: [TARGET, ...]}",
    ]
    assert policy.refusal("in", ["out"]) is None


def test_a_message_that_breaks_a_rule_is_refused_audited_and_parked(lienthong_bus) -> None:
    from lienthong.message import Message
    from lienthong.plugins import memory

    memory.reset()
    bus = lienthong_bus(
        endpoints={n: {"adapter": "memory"} for n in ("onestop", "docs", "acct")},
        routes=[
            {"name": "to-docs", "kind": "receipt", "to": "docs"},
            {"name": "fan-out", "kind": "voucher", "to": ["docs", "acct"]},
        ],
    )
    bus.config.access = AccessPolicy([Rule("onestop", frozenset({"docs"}))])
    memory.feed(
        "onestop", [Message(body=b"<r/>", kind="receipt"), Message(body=b"<v/>", kind="voucher")]
    )
    bus.run(once=True)
    assert len(memory.delivered("docs")) == 1, "the allowed message goes through"
    assert memory.delivered("acct") == [], "nothing of the refused message is delivered"
    [dead] = bus.store.dead_letters()
    assert dead["stage"] == "access"
    assert "'onestop' may not send to 'acct'" in dead["reason"]
    trace = bus.store.trace(dead["message_id"])
    assert [h["event"] for h in trace["hops"]] == ["accepted", "dead-lettered"]
    assert trace["deliveries"] == []


def test_access_rules_come_from_config(tmp_path) -> None:
    import pytest

    from lienthong import config
    from lienthong.errors import ConfigError

    data = {
        "endpoints": {"a": {"adapter": "memory"}, "b": {"adapter": "memory"}},
        "access": [{"from": "a", "to": ["b"]}],
    }
    cfg = config.from_dict(data, base_dir=tmp_path)
    assert cfg.access.refusal("a", ["b"]) is None and cfg.access.refusal("b", ["a"])
    data["access"] = [{"from": "a", "to": ["c"]}]
    with pytest.raises(ConfigError, match="access.0.to: no endpoint named 'c'"):
        config.from_dict(data, base_dir=tmp_path)


def test_a_rule_added_after_acceptance_is_checked_at_send_and_at_replay(
    lienthong_bus, lienthong_host
) -> None:
    import pytest

    from lienthong.adapter import Adapter, Capability
    from lienthong.errors import RejectedError
    from lienthong.hookspecs import hookimpl
    from lienthong.message import Message
    from lienthong.plugins import memory

    class Picky(Adapter):
        """Refuses the first message sent to it, takes the rest."""

        name = "picky"
        summary = "test target"
        capabilities = frozenset({Capability.SEND})
        refused = 0

        def send(self, message: Message, *, key: str) -> None:
            if not Picky.refused:
                Picky.refused += 1
                raise RejectedError("voucher refused: amount must be positive")

    class Plugin:
        @hookimpl
        def lienthong_register_adapters(self, register):
            register(Picky)

    lienthong_host.add(Plugin(), "picky")
    lienthong_host.refresh()
    memory.reset()
    bus = lienthong_bus(
        endpoints={
            "in": {"adapter": "memory"},
            "docs": {"adapter": "memory"},
            "acct": {"adapter": "picky"},
        },
        routes=[{"name": "fan-out", "to": ["docs", "acct"]}],
    )
    memory.feed("in", [Message(body=b"<v n='1'/>")])
    bus.run(once=True)
    [refused] = bus.store.dead_letters()  # dead-lettered while acct was still allowed
    assert refused["stage"] == "deliver" and refused["endpoint"] == "acct"
    memory.feed("in", [Message(body=b"<v n='2'/>")])
    assert bus.poll() == 1  # accepted: its deliveries are pending

    bus.config.access = AccessPolicy([Rule("in", frozenset({"docs"}))])  # acct is now forbidden
    bus.run(once=True)
    assert len(memory.delivered("docs")) == 2, "what the rules allow still goes"
    assert Picky.refused == 1, "nothing more was sent to acct"
    parked = [d for d in bus.store.dead_letters() if d["id"] != refused["id"]]
    assert [(d["stage"], d["endpoint"]) for d in parked] == [("access", "acct")]
    assert "access denied: endpoint 'in' may not send to 'acct'" in parked[0]["reason"]
    assert bus.store.counts()["pending"] == 0

    for dead in (refused, parked[0]):
        with pytest.raises(RejectedError) as caught:
            bus.replay(dead["id"])
        assert f"dead letter #{dead['id']} cannot be replayed: access denied" in str(caught.value)
        assert "Hint: add a rule under 'access'" in str(caught.value)
    assert len(bus.store.dead_letters()) == 2, "refused replays stay dead letters"
