"""The hostile corpus through the document axis: a real sandbox axis over HTTP, a real bus polling it.

Another agency (A) puts the hostile item on the axis for agency B; B's bus polls
its axis endpoint. Every hostile item must be stored parked with its reason and
acknowledged ``fail`` on the axis, while a good document sent alongside is
delivered and acknowledged ``done``. Stale and replayed axis requests are
refused by the sandbox axis itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives.serialization import Encoding

from lienthong.adapter import Secret
from lienthong.bus import Bus
from lienthong.errors import RejectedError
from lienthong.plugins import memory
from lienthong.plugins.document_axis.client import AxisAuthError, AxisClient, sign
from lienthong.plugins.document_axis.correlation import correlation_id
from lienthong.plugins.document_axis.sandbox import SandboxAxis
from lienthong.plugins.document_axis.signature import KeyMaterial, verify
from lienthong.plugins.document_axis.signature import sign as sign_xml
from tests.hostile import edxml_cases as ed
from tests.hostile.cases import MAX_BYTES, Case, assert_reason, params, xml_cases


@pytest.fixture
def axis() -> Iterator[SandboxAxis]:
    with SandboxAxis(ed.BOUND, [ed.A, ed.B, ed.C]) as sandbox:
        yield sandbox


@pytest.fixture
def client_for(axis: SandboxAxis) -> Iterator[Callable[..., AxisClient]]:
    clients: list[AxisClient] = []

    def make(organ: str, **kwargs: Any) -> AxisClient:
        system = ed.SYSTEM_OF[organ]
        client = AxisClient(axis.url, system, Secret(ed.SYSTEMS[system]), **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.session.close()


@pytest.fixture
def axis_bus(lienthong_bus, axis: SandboxAxis) -> Callable[..., Bus]:
    """B's bus: its axis endpoint routes everything it receives to the memory endpoint 'out'."""

    def build(**endpoint: Any) -> Bus:
        return lienthong_bus(
            bus={"max_message_bytes": MAX_BYTES},
            endpoints={
                "axis-b": {
                    "adapter": "axis",
                    "url": axis.url,
                    "system_id": "dms-b",
                    "secret": ed.SYSTEMS["dms-b"],
                    "organ_id": ed.B,
                    "sandbox": True,
                    "timeout": 5,
                    **endpoint,
                },
                "out": {"adapter": "memory"},
            },
            routes=[{"name": "to-dms", "from": "axis-b", "to": "out"}],
        )

    return build


def axis_status(axis: SandboxAxis, organ: str = ed.B) -> dict[str, str]:
    return {i["docId"]: i["status"] for i in axis.snapshot()["inbox"].get(organ, [])}


def run_and_check(
    bus: Bus,
    axis: SandboxAxis,
    ids: tuple[str, str],
    send_later: Callable[[], str],
    reason: tuple[str, ...],
    name: str,
) -> str:
    """Poll once: the hostile item parked with its reason and acked fail, the good one delivered.

    Then a good document sent afterwards is delivered too: the endpoint still serves.
    """
    hostile_id, good_id = ids
    total = bus.run(once=True)
    assert total.received == 2, total
    dead = bus.store.dead_letters()
    assert len(dead) == 1, dead
    assert dead[0]["stage"] == "accept"
    assert_reason(dead[0]["reason"], reason, name)
    assert axis_status(axis) == {hostile_id: "fail", good_id: "done"}
    [delivered] = memory.delivered("out")
    assert delivered.headers["axis_doc_id"] == good_id
    assert "invalid" not in delivered.headers
    later_id = send_later()
    assert bus.run(once=True).delivered == 1
    assert axis_status(axis)[later_id] == "done" and len(memory.delivered("out")) == 2
    return dead[0]["reason"]


def later(sender: AxisClient, body: bytes | None = None) -> Callable[[], str]:
    """Send a good document from A when called; returns its axis docId."""
    return lambda: sender.send(body or ed.document(number="later"), organ_id=ed.A)


# --- XML-level attacks: the axis itself refuses them, a careless relay does not ---


@pytest.mark.parametrize("case", params(xml_cases()))
def test_hostile_xml_from_another_agency_is_parked_and_acked_fail(
    axis, client_for, axis_bus, case: Case
) -> None:
    body = case.body
    sender = client_for(ed.A)
    with pytest.raises(RejectedError, match=r"rejected the request \(HTTP 400\)"):
        sender.send(body, organ_id=ed.A)
    # Another axis relays what this one refused: the receiving bus must still defend itself.
    hostile_id = axis.deliver(ed.A, [ed.B], body)
    good_id = sender.send(ed.document(number="good"), organ_id=ed.A)
    bus = axis_bus()
    reason = run_and_check(bus, axis, (hostile_id, good_id), later(sender), case.reason, case.name)
    assert reason.startswith("invalid at the source: ")


# --- edXML-level attacks: well-formed XML, hostile attachments ---


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in ed.ATTACHMENT_CASES])
def test_hostile_attachment_is_parked_and_acked_fail(
    axis, client_for, axis_bus, case: ed.AttachmentCase
) -> None:
    sender = client_for(ed.A)
    hostile_id = sender.send(case.make(), organ_id=ed.A)
    good_id = sender.send(ed.document(number="good"), organ_id=ed.A)
    run_and_check(axis_bus(), axis, (hostile_id, good_id), later(sender), case.reason, case.name)


# --- signatures, with signature_policy: require, trust anchors and signer binding ---


@pytest.fixture(scope="module")
def keys() -> dict[str, KeyMaterial]:
    ca = ed.key("CA Chinh phu (sandbox)", ca=True)
    clerk = ed.key("Van thu UBND tinh", issuer=ca)
    minted = ed.key("Chu tich UBND tinh", issuer=clerk)
    return {
        "ca": ca,
        "clerk": clerk,
        "colleague": ed.key("Van thu So Tai chinh", issuer=ca),
        "stranger": ed.key("Ke mao danh"),
        # The clerk's key issued it, and the signature carries the clerk's certificate.
        "minted": KeyMaterial(minted.private_key, minted.certificate, (clerk.certificate,)),
    }


#: Whom each signer signs for: the clerk for A, the colleague for C.
SIGNERS = {"CN=Van thu UBND tinh": [ed.A], "CN=Van thu So Tai chinh": [ed.C]}


def _signed(keys: dict[str, KeyMaterial], who: str = "clerk", number: str = "1") -> bytes:
    return sign_xml(ed.document(number=number), keys[who])


SIGNATURE_CASES: dict[str, tuple[Callable[[dict[str, KeyMaterial]], bytes], tuple[str, ...]]] = {
    "forged-content": (
        lambda k: ed.forged(_signed(k)),
        ("signature invalid", "digest mismatch", "Hint:"),
    ),
    "stripped-signature": (
        lambda k: ed.stripped(_signed(k)),
        ("signature missing", "requires a signed message", "Hint:"),
    ),
    "untrusted-signer": (
        lambda k: _signed(k, "stranger"),
        ("signature untrusted", "Ke mao danh", "no valid chain"),
    ),
    "leaf-minted-chairman": (
        lambda k: _signed(k, "minted"),
        ("signature untrusted", "Chu tich UBND tinh", "basicConstraints.cA must be asserted"),
    ),
    "another-agencys-signer": (
        lambda k: _signed(k, "colleague"),
        ("signature not bound", "Van thu So Tai chinh", f"not for the sender '{ed.A}'"),
    ),
    "wrapped-second-signature": (
        lambda k: ed.wrapped(_signed(k)),
        ("signature invalid", "holds 2 signatures"),
    ),
    "signature-moved-out-of-header": (
        lambda k: ed.moved(_signed(k)),
        ("signature invalid", "not in edXMLEnvelope/edXMLHeader"),
    ),
    "certificate-swapped": (
        lambda k: ed.swapped_certificate(_signed(k), k["colleague"]),
        ("signature invalid", "SignatureValue does not match"),
    ),
}


@pytest.fixture
def trust_ca(keys, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    path.write_bytes(keys["ca"].certificate.public_bytes(Encoding.PEM))
    return str(path)


@pytest.mark.parametrize("name", sorted(SIGNATURE_CASES))
def test_forged_or_stripped_signature_is_parked_under_policy_require(
    axis, client_for, axis_bus, keys, trust_ca, name: str
) -> None:
    make, reason = SIGNATURE_CASES[name]
    sender = client_for(ed.A)
    hostile_id = sender.send(make(keys), organ_id=ed.A)
    good_id = sender.send(_signed(keys, number="good"), organ_id=ed.A)
    bus = axis_bus(signature_policy="require", trust_anchors=[trust_ca], signer_agencies=SIGNERS)
    signed_later = later(sender, sign_xml(ed.document(number="later"), keys["clerk"]))
    run_and_check(bus, axis, (hostile_id, good_id), signed_later, reason, name)
    assert all("Van thu UBND tinh" in m.headers["signed_by"] for m in memory.delivered("out"))


# --- stale and replayed axis requests ---


def test_a_request_with_an_old_timestamp_is_refused_by_the_axis(axis, client_for) -> None:
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    late = client_for(ed.B, clock=lambda: an_hour_ago)
    with pytest.raises(
        AxisAuthError, match=r"replayed or stale request: timestamp is 36\d\d s off"
    ):
        late.received()
    with pytest.raises(AxisAuthError, match="check .* that this host's clock is right"):
        late.received()


def test_a_replayed_request_is_refused_by_the_axis(axis, client_for, axis_bus) -> None:
    client_for(ed.A).send(ed.document(number="7"), organ_id=ed.A)
    params = {
        "systemid": "dms-b",
        "servicetype": "eDoc",
        "messagetype": "edoc",
        "timestamp": str(int(time.time() * 1000)),
        "nonce": "0123456789abcdef",
        "Content-Type": "application/json",
    }
    headers = sign(params, ed.SYSTEMS["dms-b"])
    url = axis.url + "/getReceivedEdocList"
    first = requests.post(url, headers=headers, timeout=5)
    assert first.status_code == 200 and len(first.json()["data"]) == 1
    again = requests.post(url, headers=headers, timeout=5)
    assert again.status_code == 401
    assert again.json()["ErrorDesc"] == "replayed or stale request: this signature was already used"

    bus = axis_bus()
    assert bus.run(once=True).delivered == 1, "the replay changed nothing: B still gets it once"
    assert len(memory.delivered("out")) == 1


# --- comments: what the checks read is what a receiver reads (issue 12, items 1 and 2) ---


@pytest.mark.parametrize(
    "name", ["comment-hidden-attachment-name.edxml", "comment-split-attachment.edxml"]
)
def test_a_comment_hides_nothing_even_signed_by_a_trusted_clerk(
    axis, client_for, axis_bus, keys, trust_ca, name: str
) -> None:
    sender = client_for(ed.A)
    hostile = sign_xml(ed.corpus_edxml(name), keys["clerk"])
    hostile_id = sender.send(hostile, organ_id=ed.A)
    good_id = sender.send(_signed(keys, number="good"), organ_id=ed.A)
    bus = axis_bus(signature_policy="require", trust_anchors=[trust_ca], signer_agencies=SIGNERS)
    signed_later = later(sender, sign_xml(ed.document(number="later"), keys["clerk"]))
    run_and_check(bus, axis, (hostile_id, good_id), signed_later, ed.CORPUS_EDXML[name], name)


def _commented(signed: bytes) -> bytes:
    """What a relay can do to a signed document without breaking its signature: add comments."""
    for old, new in (
        (
            f"<edXML:OrganId>{ed.B}</edXML:OrganId>",
            "<edXML:OrganId>000.00.<!---->00.G22</edXML:OrganId>",
        ),
        ("<edXML:DocumentId>", "<edXML:DocumentId><!---->"),
        (
            f"<edXML:OrganId>{ed.A}</edXML:OrganId>",
            "<edXML:OrganId>000<!---->.00.00.H41</edXML:OrganId>",
        ),
    ):
        assert old.encode() in signed, old
        signed = signed.replace(old.encode(), new.encode(), 1)
    return signed


def test_a_relay_adding_comments_changes_nothing_the_bus_acts_on(
    axis, client_for, axis_bus, keys, trust_ca
) -> None:
    signed = _signed(keys, number="relay")
    relayed = _commented(signed)
    assert verify(relayed).subject == verify(signed).subject  # the signature still holds
    document_id = f"{ed.A},2019/01/16,relay/VPCP-TTĐT"
    hostile_id = axis.deliver(ed.A, [ed.B], relayed)
    bus = axis_bus(signature_policy="require", trust_anchors=[trust_ca], signer_agencies=SIGNERS)
    assert bus.run(once=True).delivered == 1
    [delivered] = memory.delivered("out")
    assert delivered.headers["axis_doc_id"] == hostile_id
    # Each value is the signed one: routing, correlation and history see the document.
    assert delivered.headers["to"] == ed.B
    assert delivered.headers["from"] == ed.A
    assert delivered.headers["document_id"] == document_id
    assert delivered.headers["edxml_document_id"] == document_id
    assert delivered.correlation_id == correlation_id(document_id)
    assert "Van thu UBND tinh" in delivered.headers["signed_by"]
