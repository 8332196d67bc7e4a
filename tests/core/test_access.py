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
        routes=[{"name": "to-docs", "kind": "receipt", "to": "docs"},
                {"name": "fan-out", "kind": "voucher", "to": ["docs", "acct"]}],
    )
    bus.config.access = AccessPolicy([Rule("onestop", frozenset({"docs"}))])
    memory.feed("onestop", [Message(body=b"<r/>", kind="receipt"),
                            Message(body=b"<v/>", kind="voucher")])
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

    data = {"endpoints": {"a": {"adapter": "memory"}, "b": {"adapter": "memory"}},
            "access": [{"from": "a", "to": ["b"]}]}
    cfg = config.from_dict(data, base_dir=tmp_path)
    assert cfg.access.refusal("a", ["b"]) is None and cfg.access.refusal("b", ["a"])
    data["access"] = [{"from": "a", "to": ["c"]}]
    with pytest.raises(ConfigError, match="access.0.to: no endpoint named 'c'"):
        config.from_dict(data, base_dir=tmp_path)
