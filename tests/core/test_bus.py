"""The bus on the embedded default: folder → route with an XSLT mapping → folder, and what goes wrong."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from lienthong import errors
from lienthong.adapter import Adapter, Capability
from lienthong.config import RetryPolicy
from lienthong.disposition import retry_delay
from lienthong.hookspecs import hookimpl
from lienthong.message import Message
from lienthong.plugins import memory

REPO = Path(__file__).resolve().parents[2]
MAPPINGS = REPO / "mappings"
APPLICATION = (MAPPINGS / "onestop/application-to-receipt.cases/basic/input.xml").read_bytes()


@pytest.fixture(autouse=True)
def _fresh_memory() -> None:
    memory.reset()


def test_folder_to_folder_through_an_xslt_mapping(folder_bus, tmp_path: Path) -> None:
    bus = folder_bus()
    (tmp_path / "in/a.xml").write_bytes(APPLICATION)
    total = bus.run(once=True)
    assert (total.received, total.delivered, total.dead) == (1, 1, 0)
    receipt = (tmp_path / "out/receipt-a.xml").read_text(encoding="utf-8")
    assert "<issuer>000.00.00.H41</issuer>" in receipt
    assert "<applicant>Nguyễn Thị Hoà</applicant>" in receipt
    assert (tmp_path / "in/.processed/a.xml").exists()
    assert not (tmp_path / "in/a.xml").exists()


HOSTILE = {
    "xxe": b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><a>&x;</a>',
    "billion-laughs": (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
        b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
        b"<lolz>&lol3;</lolz>"
    ),
    "external-dtd": b'<?xml version="1.0"?><!DOCTYPE a SYSTEM "http://127.0.0.1:9/evil.dtd"><a/>',
    "oversized": b"<a>" + b"x" * 5000 + b"</a>",
    "malformed": b"<application><applicant></application>",
    "deep": b"<a>" * 300 + b"</a>" * 300,
}

HOSTILE_REASONS = {
    "xxe": "DTD",
    "billion-laughs": "DTD",
    "external-dtd": "DTD",
    "oversized": "over the limit",
    "malformed": "not well-formed",
    "deep": "depth",
}


def test_hostile_input_is_parked_with_its_reason_and_the_bus_goes_on(
    folder_bus, tmp_path: Path
) -> None:
    bus = folder_bus(max_message_bytes=4096)
    for name, body in HOSTILE.items():
        (tmp_path / f"in/{name}.xml").write_bytes(body)
    (tmp_path / "in/good.xml").write_bytes(APPLICATION)
    total = bus.run(once=True)
    assert total.delivered == 1, "the good message still goes through"
    assert len(bus.store.dead_letters()) == len(HOSTILE)
    for name, expected in HOSTILE_REASONS.items():
        reason = (tmp_path / f"in/.error/{name}.xml.reason.txt").read_text()
        assert expected in reason, (name, reason)
        assert (tmp_path / f"in/.error/{name}.xml").read_bytes() == HOSTILE[name]
    assert not (tmp_path / "out/receipt-xxe.xml").exists()


HOSTILE_MAPPINGS = {
    "reads-a-file.xsl": """<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:template match="/"><out><xsl:copy-of select="document('/etc/passwd')"/></out></xsl:template>
</xsl:stylesheet>""",
    "writes-a-file.xsl": """<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:exsl="http://exslt.org/common" extension-element-prefixes="exsl">
  <xsl:template match="/"><exsl:document href="{OUT}"><pwned/></exsl:document><out/></xsl:template>
</xsl:stylesheet>""",
    "includes-outside.xsl": """<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:include href="../outside.xsl"/>
</xsl:stylesheet>""",
}


@pytest.mark.parametrize("mapping", sorted(HOSTILE_MAPPINGS))
def test_hostile_mapping_is_refused_and_the_message_parked(
    lienthong_bus, tmp_path: Path, mapping: str
) -> None:
    mappings = tmp_path / "mappings"
    mappings.mkdir()
    written = tmp_path / "pwned.xml"
    (mappings / mapping).write_text(HOSTILE_MAPPINGS[mapping].replace("{OUT}", str(written)))
    (tmp_path / "outside.xsl").write_text(
        '<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform"/>'
    )
    bus = lienthong_bus(
        mappings=mappings,
        endpoints={"in": {"adapter": "memory"}, "out": {"adapter": "memory"}},
        routes=[{"name": "r", "from": "in", "to": [{"endpoint": "out", "mapping": mapping}]}],
    )
    memory.feed("in", [Message(body=b"<a/>"), Message(body=b"<b/>")])
    total = bus.run(once=True)
    assert total.delivered == 0 and memory.delivered("out") == []
    dead = bus.store.dead_letters()
    assert len(dead) == 2 and all(d["stage"] == "route" for d in dead)
    assert mapping in dead[0]["reason"]
    assert not written.exists()


def test_a_message_no_route_matches_is_parked_not_dropped(lienthong_bus) -> None:
    bus = lienthong_bus(
        endpoints={"in": {"adapter": "memory"}, "out": {"adapter": "memory"}},
        routes=[{"name": "only-orders", "kind": "order", "to": "out"}],
    )
    memory.feed("in", [Message(body=b"<invoice/>", kind="invoice")])
    bus.run(once=True)
    [dead] = bus.store.dead_letters()
    assert "no route matches" in dead["reason"] and "invoice" in dead["reason"]


def test_routes_match_on_kind_headers_and_xpath_and_fan_out(lienthong_bus) -> None:
    bus = lienthong_bus(
        endpoints={n: {"adapter": "memory"} for n in ("in", "a", "b", "c")},
        routes=[
            {"name": "urgent", "when": "/doc/@priority > 2", "to": ["a", "b"]},
            {"name": "hanoi", "kind": "doc", "headers": {"region": "HN"}, "to": "c"},
        ],
    )
    memory.feed(
        "in",
        [
            Message(body=b'<doc priority="3"/>', kind="doc", headers={"region": "HN"}),
            Message(body=b'<doc priority="1"/>', kind="doc", headers={"region": "HN"}),
            Message(body=b'<doc priority="4"/>', kind="doc", headers={"region": "HCM"}),
        ],
    )
    bus.run(once=True)
    assert len(memory.delivered("a")) == len(memory.delivered("b")) == 2
    assert len(memory.delivered("c")) == 2


def test_a_recipient_list_computed_from_the_content(lienthong_bus) -> None:
    bus = lienthong_bus(
        endpoints={n: {"adapter": "memory"} for n in ("in", "so-tc", "so-yt", "other")},
        routes=[
            {
                "name": "by-organisation",
                "namespaces": {"e": "urn:example"},
                "to": [
                    {
                        "endpoint_from": {
                            "xpath": "//e:To/e:OrganId",
                            "map": {"000.00.01.H41": "so-tc", "000.00.02.H41": "so-yt"},
                        }
                    }
                ],
            }
        ],
    )
    memory.feed(
        "in",
        [
            Message(
                body=b'<d xmlns="urn:example"><To><OrganId>000.00.01.H41</OrganId></To>'
                b"<To><OrganId>000.00.02.H41</OrganId></To></d>"
            ),
            Message(body=b'<d xmlns="urn:example"><To><OrganId>999.99.99.X00</OrganId></To></d>'),
        ],
    )
    bus.run(once=True)
    assert len(memory.delivered("so-tc")) == len(memory.delivered("so-yt")) == 1
    [dead] = bus.store.dead_letters()
    assert "no endpoint serves '999.99.99.X00'" in dead["reason"]


class Flaky(Adapter):
    """Fails the first ``failures`` sends with a declared transient error."""

    name = "flaky"
    summary = "test adapter"
    capabilities = frozenset({Capability.SEND})
    transient_errors = (ConnectionError,)
    failures = 2
    sent: list[str] = []

    def send(self, message: Message, *, key: str) -> None:
        if Flaky.failures > 0:
            Flaky.failures -= 1
            raise ConnectionError("accounting server not answering")
        Flaky.sent.append(key)


class Refuser(Adapter):
    """Rejects everything: the receiving system says the input is invalid."""

    name = "refuser"
    summary = "test adapter"
    capabilities = frozenset({Capability.SEND})

    def send(self, message: Message, *, key: str) -> None:
        raise errors.RejectedError("voucher refused: amount must be positive")


class TestPlugin:
    @hookimpl
    def lienthong_register_adapters(self, register):
        register(Flaky)
        register(Refuser)


def test_transient_errors_are_retried_with_back_off_then_delivered(
    lienthong_bus, lienthong_host
) -> None:
    lienthong_host.add(TestPlugin(), "test-adapters")
    lienthong_host.refresh()
    Flaky.failures, Flaky.sent = 2, []
    bus = lienthong_bus(
        endpoints={"in": {"adapter": "memory"}, "acct": {"adapter": "flaky"}},
        routes=[{"name": "r", "to": "acct"}],
        bus={"retry": {"initial_delay": 0.01, "max_delay": 0.05, "max_attempts": 5}},
    )
    memory.feed("in", [Message(body=b"<v/>")])
    for _ in range(200):
        bus.run(once=True)
        if Flaky.sent:
            break
    assert len(Flaky.sent) == 1
    trace = bus.store.trace(_only_message_id(bus))
    [delivery] = trace["deliveries"]
    assert [a["outcome"] for a in delivery["attempt_log"]] == ["transient", "transient", "ok"]
    assert "accounting server not answering" in delivery["attempt_log"][0]["error"]


def _only_message_id(bus) -> str:
    import sqlalchemy as sa

    from lienthong.store import messages

    with bus.store.engine.connect() as conn:
        return conn.execute(sa.select(messages.c.id)).scalar_one()


def test_out_of_attempts_and_rejections_become_replayable_dead_letters(
    lienthong_bus, lienthong_host
) -> None:
    lienthong_host.add(TestPlugin(), "test-adapters")
    lienthong_host.refresh()
    Flaky.failures, Flaky.sent = 100, []
    bus = lienthong_bus(
        endpoints={
            "in": {"adapter": "memory"},
            "acct": {"adapter": "flaky"},
            "strict": {"adapter": "refuser"},
        },
        routes=[{"name": "r", "to": ["acct", "strict"]}],
        bus={"retry": {"initial_delay": 0, "max_delay": 0, "jitter": 0, "max_attempts": 3}},
    )
    memory.feed("in", [Message(body=b"<v/>")])
    bus.run(once=True)
    dead = {d["endpoint"]: d for d in bus.store.dead_letters()}
    assert "gave up after 3 attempts" in dead["acct"]["reason"]
    assert "amount must be positive" in dead["strict"]["reason"]
    assert len(bus.store.dead_letter(dead["acct"]["id"])["attempts"]) == 3

    Flaky.failures = 0
    assert "queued again" in bus.replay(dead["acct"]["id"])
    bus.run(once=True)
    assert len(Flaky.sent) == 1
    assert [d["endpoint"] for d in bus.store.dead_letters()] == ["strict"]
    with pytest.raises(errors.RejectedError, match="already replayed"):
        bus.replay(dead["acct"]["id"])


def test_a_parked_message_is_routed_again_on_replay_after_the_fix(lienthong_bus) -> None:
    bus = lienthong_bus(
        endpoints={"in": {"adapter": "memory"}, "out": {"adapter": "memory"}},
        routes=[{"name": "r", "kind": "order", "to": "out"}],
    )
    memory.feed("in", [Message(body=b"<invoice/>", kind="invoice")])
    bus.run(once=True)
    [dead] = bus.store.dead_letters()
    with pytest.raises(errors.RejectedError, match="still fails"):
        bus.replay(dead["id"])
    bus.router.routes[0].kinds = frozenset({"invoice"})
    assert "routed again to out" in bus.replay(dead["id"])
    bus.run(once=True)
    assert len(memory.delivered("out")) == 1


def test_a_source_redelivering_the_same_file_creates_no_second_message(
    folder_bus, tmp_path: Path
) -> None:
    bus = folder_bus()
    first = bus.accept([Message(body=APPLICATION, source="inbox", source_key="a.xml:1f2e")])
    again = bus.accept([Message(body=APPLICATION, source="inbox", source_key="a.xml:1f2e")])
    assert not first[0].duplicate and again[0].duplicate
    assert bus.store.counts()["messages"] == 1
    assert bus.store.counts()["pending"] == 1


def test_an_observer_plugin_sees_the_lifecycle_and_its_bug_loses_nothing(
    lienthong_bus, lienthong_host
) -> None:
    seen: list[str] = []

    class Observer:
        @hookimpl
        def lienthong_after_accept(self, message, parked):
            seen.append("accept")
            raise RuntimeError("observer bug")

        @hookimpl
        def lienthong_after_route(self, message, targets):
            seen.append(f"route:{','.join(targets)}")

        @hookimpl
        def lienthong_after_deliver(self, message, endpoint, attempts):
            seen.append(f"deliver:{endpoint}:{attempts}")

        @hookimpl
        def lienthong_after_dead_letter(self, message, endpoint, reason):
            seen.append("dead")

        @hookimpl
        def lienthong_after_start(self, adapters, config):
            seen.append(f"start:{len(adapters)}")

    lienthong_host.add(Observer(), "observer")
    lienthong_host.refresh()
    bus = lienthong_bus(
        endpoints={"in": {"adapter": "memory"}, "out": {"adapter": "memory"}},
        routes=[{"name": "r", "kind": "x", "to": "out"}],
    )
    memory.feed("in", [Message(body=b"<a/>", kind="x"), Message(body=b"<a/>", kind="y")])
    bus.run(once=True)
    assert seen[0] == "start:2"
    assert "accept" in seen and "route:out" in seen and "deliver:out:1" in seen
    assert "dead" in seen
    assert len(memory.delivered("out")) == 1


def test_retry_delay_grows_exponentially_is_capped_and_jittered() -> None:
    policy = RetryPolicy(initial_delay=2, multiplier=2, max_delay=60, jitter=0.2)
    import random

    rng = random.Random(7)
    delays = [retry_delay(policy, n, rng) for n in range(1, 10)]
    assert 1.6 <= delays[0] <= 2.4 and 3.2 <= delays[1] <= 4.8
    assert all(d <= 72 for d in delays) and delays[-1] >= 48
    assert len({round(d, 3) for d in delays}) == len(delays)


def test_run_stops_cleanly_when_asked(lienthong_bus) -> None:
    bus = lienthong_bus(
        endpoints={"in": {"adapter": "memory"}, "out": {"adapter": "memory"}},
        routes=[{"name": "r", "to": "out"}],
    )
    thread = threading.Thread(target=bus.run)
    thread.start()
    memory.feed("in", [Message(body=b"<a/>")])
    for _ in range(100):
        if memory.delivered("out"):
            break
        threading.Event().wait(0.05)
    bus.stop()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert len(memory.delivered("out")) == 1


def test_an_endpoint_that_keeps_failing_trips_its_circuit_and_is_left_alone(
    lienthong_bus, lienthong_host
) -> None:
    lienthong_host.add(TestPlugin(), "test-adapters")
    lienthong_host.refresh()
    Flaky.failures, Flaky.sent = 1000, []
    bus = lienthong_bus(
        endpoints={"in": {"adapter": "memory"}, "acct": {"adapter": "flaky"}},
        routes=[{"name": "r", "to": "acct"}],
        bus={
            "breaker_failures": 3,
            "breaker_reset_seconds": 30,
            "retry": {"initial_delay": 0, "max_delay": 0, "jitter": 0, "max_attempts": 50},
        },
    )
    memory.feed("in", [Message(body=f"<v n='{n}'/>".encode()) for n in range(5)])
    bus.run(once=True)
    attempts = sum(
        d["attempts"] for m in _only_message_ids(bus) for d in bus.store.trace(m)["deliveries"]
    )
    assert attempts == 3
    assert Flaky.failures == 1000 - 3, "after 3 failures the endpoint is not called at all"
    health = bus.store.endpoint_health()["acct"]
    assert health["state"] == "open" and "next try in" in health["detail"]
    assert bus.store.counts()["pending"] == 5 and bus.store.dead_letters() == []


def _only_message_ids(bus) -> list[str]:
    import sqlalchemy as sa

    from lienthong.store import messages

    with bus.store.engine.connect() as conn:
        return list(conn.execute(sa.select(messages.c.id)).scalars())


def test_a_target_can_require_the_mapped_output_to_match_a_schema(
    lienthong_bus, tmp_path: Path
) -> None:
    mappings = tmp_path / "mappings"
    (mappings / "schemas").mkdir(parents=True)
    (mappings / "copy.xsl").write_text(
        '<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">'
        '<xsl:template match="/"><receipt><xsl:copy-of select="/*/@amount"/></receipt>'
        "</xsl:template></xsl:stylesheet>"
    )
    (mappings / "schemas/receipt.xsd").write_text(
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"><xs:element name="receipt">'
        '<xs:complexType><xs:attribute name="amount" type="xs:positiveInteger" use="required"/>'
        "</xs:complexType></xs:element></xs:schema>"
    )
    bus = lienthong_bus(
        mappings=mappings,
        endpoints={"in": {"adapter": "memory"}, "out": {"adapter": "memory"}},
        routes=[
            {
                "name": "r",
                "to": [
                    {"endpoint": "out", "mapping": "copy.xsl", "validate": "schemas/receipt.xsd"}
                ],
            }
        ],
    )
    memory.feed("in", [Message(body=b'<v amount="150000"/>'), Message(body=b'<v amount="-5"/>')])
    bus.run(once=True)
    assert [m.body for m in memory.delivered("out")] == [
        b"<?xml version='1.0' encoding='UTF-8'?>\n<receipt amount=\"150000\"/>"
    ]
    [dead] = bus.store.dead_letters()
    assert "does not match schema 'receipt.xsd'" in dead["reason"] and "line 1" in dead["reason"]


def test_a_plugin_prepares_messages_before_routing(lienthong_bus, lienthong_host) -> None:
    class Correlate:
        @hookimpl
        def lienthong_prepare_message(self, message):
            document = message.tree().getroot().get("document")
            if document is None:
                raise errors.RejectedError("no document attribute")
            message.correlation_id = f"doc-{document}"
            message.headers["document"] = document

    lienthong_host.add(Correlate(), "correlate")
    lienthong_host.refresh()
    bus = lienthong_bus(
        endpoints={"in": {"adapter": "memory"}, "out": {"adapter": "memory"}},
        routes=[{"name": "r", "headers": {"document": "D1"}, "to": "out"}],
    )
    memory.feed("in", [Message(body=b'<status document="D1"/>'), Message(body=b"<other/>")])
    bus.run(once=True)
    [delivered] = memory.delivered("out")
    assert delivered.correlation_id == "doc-D1"
    [dead] = bus.store.dead_letters()
    assert dead["stage"] == "accept" and "no document attribute" in dead["reason"]


def test_a_clean_stop_gives_back_what_was_accepted_but_not_sent(lienthong_bus) -> None:
    from datetime import timedelta

    bus = lienthong_bus(
        endpoints={"in": {"adapter": "memory"}, "out": {"adapter": "memory"}},
        routes=[{"name": "r", "to": "out"}],
    )
    memory.feed("in", [Message(body=b"<a/>"), Message(body=b"<b/>")])
    assert bus.poll() == 2  # stored and claimed by this process, not sent yet
    bus.close()
    again = bus.store.claim_due("next-worker", limit=10, lease=timedelta(seconds=60))
    assert len(again) == 2, "another worker may take them at once, not after the claim runs out"
