"""Issue 12 item 3 end to end: each signature-trust attack through a sandbox axis and a real bus.

Agency A (UBND tỉnh, 000.00.00.H15) and C (000.00.15.H51) send to B over the
sandbox axis; B's bus polls its axis endpoint, routes documents to 'out' and
budget decisions to 'acct' (only from A: the route's ``senders``). Every
hostile item must be refused with its reason, parked in B's store with its
body intact (nothing lost), and acknowledged ``fail`` on the axis, while a
good decision from A goes through both routes.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from lienthong import config
from lienthong.bus import Bus
from lienthong.errors import ConfigError, RejectedError
from lienthong.mapping import MappingLibrary
from lienthong.message import Message
from lienthong.plugins import memory
from lienthong.plugins.document_axis import edxml
from lienthong.plugins.document_axis.sandbox import SandboxAxis
from lienthong.plugins.document_axis.sandbox_ca import SandboxCA, pem
from lienthong.plugins.document_axis.signature import KeyMaterial, sign, throwaway_key
from lienthong.router import Router

NS = {"ed": edxml.NS}
FINANCIAL = (
    "normalize-space(//ed:MessageHeader/ed:DocumentType/ed:TypeName) = 'Quyết định' "
    "and contains(//ed:MessageHeader/ed:Subject, 'dự toán')"
)


@pytest.fixture(autouse=True)
def _fresh_memory() -> None:
    memory.reset()


@pytest.fixture(scope="module")
def ca() -> SandboxCA:
    return SandboxCA()


@pytest.fixture(scope="module")
def clerks(ca: SandboxCA) -> dict[str, KeyMaterial]:
    return {
        "A": ca.issue("CN=Văn thư,O=UBND tỉnh Đắk Lắk,C=VN"),
        "C": ca.issue("CN=Văn thư,O=Sở Xây dựng,C=VN"),
    }


def decision(
    samples: Any, sender: str, number: str, amount: str = "1.250.000.000", to: str = ""
) -> bytes:
    """A budget allocation decision from ``sender`` to B, allocating ``amount`` to ``to``."""
    doc = edxml.read((samples.data / "edxml/edoc_new.edxml").read_bytes())
    assert isinstance(doc, edxml.Document)
    template = doc.recipients[0]
    doc.sender.organ_id = sender
    doc.recipients = [edxml.Organization(**{**vars(template), "organ_id": samples.B})]
    doc.document_id = f"{sender},2026/01/05,{number}/QĐ-UBND"
    doc.type_name = "Quyết định"
    doc.subject = "Về việc giao dự toán ngân sách nhà nước năm 2026"
    doc.content = f"Giao dự toán chi ngân sách năm 2026: {to or samples.B}: {amount} đồng."
    doc.attachments = []
    return edxml.build(doc)


@pytest.fixture
def bus_b(lienthong_bus, axis: SandboxAxis, samples, ca: SandboxCA, tmp_path: Path):
    """B's bus; keyword arguments replace the axis endpoint's trust settings."""
    files = ca.write(tmp_path / "pki")
    secure = {
        "trust_anchors": [str(files["root"])],
        "crl_files": [str(files["root_crl"]), str(files["intermediate_crl"])],
        "signer_agencies": {
            "O=UBND tỉnh Đắk Lắk,C=VN": [samples.A],
            "O=Sở Xây dựng,C=VN": [samples.C],
        },
    }

    def build(**trust: Any) -> Bus:
        return lienthong_bus(
            endpoints={
                "axis-b": {
                    "adapter": "axis",
                    "url": axis.url,
                    "system_id": samples.system_of[samples.B],
                    "secret": samples.systems[samples.system_of[samples.B]],
                    "organ_id": samples.B,
                    "sandbox": True,
                    "timeout": 5,
                    **(trust or secure),
                },
                "out": {"adapter": "memory"},
                "acct": {"adapter": "memory"},
            },
            routes=[
                {"name": "documents-in", "from": "axis-b", "kind": "edxml.document", "to": "out"},
                {
                    "name": "budget-decisions",
                    "from": "axis-b",
                    "kind": "edxml.document",
                    "when": FINANCIAL,
                    "namespaces": NS,
                    "senders": [samples.A],
                    "to": "acct",
                },
            ],
        )

    return build


def axis_status(axis: SandboxAxis, organ: str) -> dict[str, str]:
    return {i["docId"]: i["status"] for i in axis.snapshot()["inbox"].get(organ, [])}


def refused_and_parked(
    bus: Bus, axis: SandboxAxis, samples, hostile: tuple[str, bytes], good_id: str, stage: str
) -> str:
    """One poll: the hostile item parked with its body, acked fail; the good one through both routes."""
    hostile_id, body = hostile
    assert bus.run(once=True).received == 2
    [dead] = bus.store.dead_letters()
    assert dead["stage"] == stage
    message = bus.store.message(dead["message_id"])
    assert message is not None and message.body == body  # nothing lost: replayable as it came
    assert message.source_key == hostile_id
    assert axis_status(axis, samples.B) == {hostile_id: "fail", good_id: "done"}
    assert [m.headers["axis_doc_id"] for m in memory.delivered("out")] == [good_id]
    assert [m.headers["axis_doc_id"] for m in memory.delivered("acct")] == [good_id]
    return str(dead["reason"])


def send(client_for: Callable[..., Any], samples, organ: str, body: bytes) -> tuple[str, bytes]:
    return client_for(organ).send(body, organ_id=organ), body


@pytest.fixture
def good(client_for, samples, clerks) -> Callable[[], str]:
    return lambda: send(
        client_for, samples, samples.A, sign(decision(samples, samples.A, "good"), clerks["A"])
    )[0]


def test_the_good_decision_alone_goes_through_with_its_signer(axis, samples, bus_b, good) -> None:
    good_id = good()
    bus = bus_b()
    assert bus.run(once=True).delivered == 2
    [out] = memory.delivered("out")
    assert out.headers["from"] == samples.A and out.headers["signature"] == "trusted"
    assert out.headers["signed_by"] == "CN=Văn thư,O=UBND tỉnh Đắk Lắk,C=VN"
    assert axis_status(axis, samples.B) == {good_id: "done"}


def test_empty_trust_and_a_self_signed_chairman(axis, client_for, samples, bus_b) -> None:
    """(a) no trust anchors: a self-signed 'Chủ tịch' certificate no longer passes a decision.

    Without anchors no decision can be trusted, so a genuine one waits parked too,
    while a letter (no signature required) still goes through, marked untrusted.
    """
    chairman = throwaway_key("Chủ tịch UBND tỉnh Đắk Lắk")
    forged_id, forged = send(
        client_for, samples, samples.A, sign(decision(samples, samples.A, "1"), chairman)
    )
    letter = edxml.read(decision(samples, samples.A, "2"))
    letter.type_name = "Công văn"
    letter_id, _ = send(client_for, samples, samples.A, sign(edxml.build(letter), chairman))
    bus = bus_b(signer_agencies={"O=UBND tỉnh Đắk Lắk,C=VN": [samples.A]})
    assert bus.run(once=True).received == 2
    [dead] = bus.store.dead_letters()
    assert dead["reason"] == (
        "invalid at the source: signature untrusted: a 'Quyết định' requires a signed message "
        "(signature_required_for), and signer 'CN=Chủ tịch UBND tỉnh Đắk Lắk' cannot be trusted "
        "without trust_anchors. Hint: configure the CA roots as trust_anchors"
    )
    assert bus.store.message(dead["message_id"]).body == forged
    assert axis_status(axis, samples.B) == {forged_id: "fail", letter_id: "done"}
    [out] = memory.delivered("out")
    assert out.headers["signature"] == "untrusted" and "signed_by" not in out.headers
    assert memory.delivered("acct") == []


def test_empty_trust_is_announced_loudly_at_start(bus_b, samples, caplog) -> None:
    with caplog.at_level(logging.WARNING):
        bus_b(signer_agencies={"O=UBND tỉnh Đắk Lắk,C=VN": [samples.A]})
    assert "endpoint 'axis-b': SIGNATURES NOT FULLY CHECKED: there are no trust_anchors" in (
        caplog.text
    )


def test_a_stripped_signature(axis, client_for, samples, bus_b, clerks, good) -> None:
    """(a) the default verify-if-present no longer accepts a decision whose signature was cut."""
    signed = sign(decision(samples, samples.A, "2", "9.999.000.000"), clerks["A"])
    root = edxml.root_of(signed)
    for signature in list(root.iter("{http://www.w3.org/2000/09/xmldsig#}Signature")):
        signature.getparent().remove(signature)
    hostile = send(client_for, samples, samples.A, etree.tostring(root, encoding="UTF-8"))
    good_id = good()
    reason = refused_and_parked(bus_b(), axis, samples, hostile, good_id, "accept")
    assert "signature missing: a 'Quyết định' requires a signed message" in reason


def test_a_partner_leaf_minting_a_chairman(axis, client_for, samples, bus_b, ca, clerks, good):
    """(b) C's clerk, trusted through the CA, issues itself a 'Chủ tịch UBND tỉnh' certificate."""
    minted = ca.issue("CN=Chủ tịch UBND tỉnh,O=UBND tỉnh Đắk Lắk,C=VN", issuer=clerks["C"])
    hostile = send(
        client_for,
        samples,
        samples.A,
        sign(decision(samples, samples.A, "3", "9.999.000.000"), minted),
    )
    good_id = good()
    reason = refused_and_parked(bus_b(), axis, samples, hostile, good_id, "accept")
    assert "signature untrusted: no valid chain from signer 'CN=Chủ tịch UBND tỉnh" in reason
    assert "basicConstraints.cA must be asserted in a CA certificate" in reason


def test_a_clerk_of_one_agency_signing_for_another(axis, client_for, samples, bus_b, clerks, good):
    """(c) C's clerk signs a decision 'From' A, sent by A's system: the signer is not A's."""
    hostile = send(
        client_for,
        samples,
        samples.A,
        sign(decision(samples, samples.A, "4", "9.999.000.000"), clerks["C"]),
    )
    good_id = good()
    reason = refused_and_parked(bus_b(), axis, samples, hostile, good_id, "accept")
    assert (
        f"signature not bound: signer 'CN=Văn thư,O=Sở Xây dựng,C=VN' signs for {samples.C}, "
        f"not for the sender '{samples.A}'"
    ) in reason


def test_a_document_from_claiming_another_sender(axis, samples, bus_b, clerks, good) -> None:
    """(c) the axis says C sent it; its From says A: the axis's word is kept and it is refused."""
    body = sign(decision(samples, samples.A, "5", "9.999.000.000"), clerks["A"])
    hostile = (axis.deliver(samples.C, [samples.B], body), body)
    good_id = good()
    reason = refused_and_parked(bus_b(), axis, samples, hostile, good_id, "accept")
    assert (
        f"sender mismatch: the document's From/OrganId is '{samples.A}' but the axis reports the "
        f"sender '{samples.C}'"
    ) in reason


def test_a_revoked_signer(axis, client_for, samples, lienthong_bus, bus_b, good, tmp_path):
    ca = SandboxCA()
    clerk = ca.issue("CN=Văn thư,O=UBND tỉnh Đắk Lắk,C=VN")
    ca.revoke(clerk.certificate)
    files = ca.write(tmp_path / "revoking")
    hostile = send(client_for, samples, samples.A, sign(decision(samples, samples.A, "6"), clerk))
    good_id = good()  # signed under the module's CA: the bus trusts both

    bus = bus_b(
        trust_anchors=[str(files["root"]), str(tmp_path / "pki/root.pem")],
        crl_files=[
            str(files["root_crl"]),
            str(files["intermediate_crl"]),
            str(tmp_path / "pki/root.crl"),
            str(tmp_path / "pki/intermediate.crl"),
        ],
        signer_agencies={"O=UBND tỉnh Đắk Lắk,C=VN": [samples.A]},
    )
    reason = refused_and_parked(bus, axis, samples, hostile, good_id, "accept")
    assert "certificate of 'CN=Văn thư,O=UBND tỉnh Đắk Lắk,C=VN'" in reason
    assert "was revoked on" in reason and "(keyCompromise)" in reason


def test_a_stale_crl_makes_documents_wait_on_the_axis(
    axis, samples, bus_b, ca, good, tmp_path, caplog
):
    """Not the document's fault: it stays unacknowledged until the CRL file is refreshed."""
    good_id = good()
    bus = bus_b()
    crl_file = tmp_path / "pki/intermediate.crl"
    stale = ca.crl(ca.intermediate, last_update=datetime.now(UTC) - timedelta(days=10), days=7)
    crl_file.write_bytes(pem(stale))
    os.utime(crl_file, ns=(0, 10**9))
    with caplog.at_level(logging.WARNING):
        assert bus.run(once=True).received == 0
    assert (
        "endpoint axis-b could not be polled: cannot check revocation under 'CN=SANDBOX Signing CA"
        in caplog.text
    )
    assert f"its CRL '{crl_file}' (valid until" in caplog.text and "is out of date" in caplog.text
    assert axis_status(axis, samples.B) == {good_id: "pending"}
    assert bus.store.dead_letters() == []
    crl_file.write_bytes(pem(ca.crl(ca.intermediate)))
    os.utime(crl_file, ns=(0, 2 * 10**9))
    assert bus.run(once=True).delivered == 2
    assert axis_status(axis, samples.B) == {good_id: "done"}


def test_an_estimate_from_an_unexpected_sender(axis, client_for, samples, bus_b, clerks, good):
    """(d) C, properly signed and bound, sends a budget decision: the money route refuses it."""
    hostile = send(
        client_for,
        samples,
        samples.C,
        sign(decision(samples, samples.C, "7", "9.999.000.000"), clerks["C"]),
    )
    good_id = good()
    bus = bus_b()
    reason = refused_and_parked(bus, axis, samples, hostile, good_id, "route")
    assert reason == (
        f"route 'budget-decisions' takes this message only from {samples.A}, and it comes from "
        f"'{samples.C}'. Hint: if this sender is entitled, add it to the route's senders, then "
        "replay it with 'lienthong dlq replay'"
    )


def test_bad_trust_settings_refuse_to_start_naming_each_option(bus_b, samples, tmp_path) -> None:
    with pytest.raises(ConfigError) as caught:
        bus_b(signature_policy="require", trusted_certs=["old.pem"])
    text = str(caught.value)
    assert "endpoints.axis-b.trusted_certs: unknown option" in text
    assert "Did you mean 'trust_anchors'?" in text
    with pytest.raises(ConfigError) as caught:
        bus_b(
            trust_anchors=["missing-root.pem", str(tmp_path / "pki/root.pem")],
            crl_files=["missing.crl"],
            signer_agencies={"Sở Y tế": [samples.C]},
        )
    assert [line.strip().split(": ")[0] for line in str(caught.value).splitlines()[1:]] == [
        "endpoints.axis-b.trust_anchors",
        "endpoints.axis-b.crl_files",
        "endpoints.axis-b.signer_agencies",
    ]
    with pytest.raises(ConfigError) as caught:
        bus_b(signature_policy="require", trust_anchors=[str(tmp_path / "pki/root.pem")])
    assert (
        "endpoints.axis-b.signature_policy: signature_policy 'require' needs signer_agencies"
        in (str(caught.value))
    )


# --- the shipped configs: the routes that move money check the sender ---

REPO = Path(__file__).resolve().parents[2]
UBND = "000.00.00.H15"


@pytest.mark.parametrize("name", ["reference-flows.yaml", "production.example.yaml"])
def test_every_shipped_route_that_posts_an_estimate_takes_it_only_from_ubnd(name: str) -> None:
    text = (REPO / "config" / name).read_text(encoding="utf-8")
    environ = {
        **dict.fromkeys(re.findall(r"\{env: (\w+)\}", text), "x"),
        "LIENTHONG_BROKER": "amqp://mq",
    }
    cfg = config.load(REPO / "config" / name, environ=environ)
    posting = {
        n
        for n, ep in cfg.endpoints.items()
        if ep.settings.get("send_operation") == "PostBudgetEstimate"
    }
    money = [r for r in cfg.routes if {t.endpoint for t in r.targets} & posting]
    assert len(money) == 2
    assert all(r.senders == {UBND} for r in money), [(r.name, r.senders) for r in money]


def test_the_reference_flows_park_an_estimate_from_another_sender(samples, clerks) -> None:
    """(d) on the shipped routes: Sở Xây dựng's budget decision is refused before any posting."""
    cfg = config.load(REPO / "config/reference-flows.yaml")
    router = Router(cfg.routes, MappingLibrary(cfg.bus.mappings))
    body = sign(decision(samples, samples.C, "8", "9.999.000.000", "000.00.15.H15"), clerks["C"])
    message = Message(
        body=body, kind="edxml.document", source="axis-syt", headers={"from": samples.C}
    )
    with pytest.raises(
        RejectedError,
        match=(
            f"route 'budget-decisions-syt' takes this message only from {UBND}, and it comes from "
            f"'{samples.C}'"
        ),
    ):
        router.route(message)
    message.headers["from"] = UBND
    assert {o.endpoint for o in router.route(message)} >= {"acct-syt", "dms-syt"}
