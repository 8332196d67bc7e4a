"""Provenance: the sender the axis reported, the signature required, trusted and bound to it.

Pure decisions on real signed edXML; the same attacks through a sandbox axis
and a real bus are in test_trust_intake.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lienthong.errors import ConfigError
from lienthong.plugins.document_axis import edxml
from lienthong.plugins.document_axis.binding import Binding
from lienthong.plugins.document_axis.provenance import Provenance
from lienthong.plugins.document_axis.sandbox_ca import SandboxCA
from lienthong.plugins.document_axis.signature import sign, throwaway_key
from lienthong.plugins.document_axis.trust import Trust

SAMPLE = Path(__file__).parent / "data" / "edxml" / "edoc_new.edxml"
UBND, SYT, SGD = "000.00.00.H15", "000.00.15.H15", "000.00.16.H15"


def document(sender: str, type_name: str = "Công văn", number: str = "1") -> bytes:
    doc = edxml.read(SAMPLE.read_bytes())
    assert isinstance(doc, edxml.Document)
    doc.sender.organ_id = sender
    doc.recipients = [edxml.Organization(organ_id=SGD, organ_name="Sở Giáo dục và Đào tạo")]
    doc.document_id = f"{sender},2026/01/05,{number}/QĐ-UBND"
    doc.type_name = type_name
    doc.subject = "Về việc giao dự toán ngân sách nhà nước năm 2026"
    return edxml.build(doc)


@pytest.fixture(scope="module")
def ca() -> SandboxCA:
    return SandboxCA()


@pytest.fixture(scope="module")
def clerks(ca: SandboxCA):
    return {
        UBND: ca.issue("CN=Văn thư,O=UBND tỉnh Đắk Lắk,C=VN"),
        SYT: ca.issue("CN=Văn thư,O=Sở Y tế,C=VN"),
    }


@pytest.fixture
def secure(ca: SandboxCA) -> Provenance:
    return Provenance(
        trust=Trust([ca.root.certificate]),
        binding=Binding({"O=UBND tỉnh Đắk Lắk,C=VN": [UBND], "O=Sở Y tế,C=VN": [SYT]}),
    )


def check(provenance: Provenance, body: bytes, axis_sender: str, document_sender: str):
    tree = edxml.read(body)
    type_name = tree.type_name if isinstance(tree, edxml.Document) else None
    return provenance.check(
        body, axis_sender=axis_sender, document_sender=document_sender, type_name=type_name
    )


def test_a_decision_signed_by_its_senders_clerk_passes(secure, clerks) -> None:
    body = sign(document(UBND, "Quyết định"), clerks[UBND])
    verdict = check(secure, body, UBND, UBND)
    assert verdict.problems == []
    assert verdict.headers() == {
        "from": UBND,
        "signature": "trusted",
        "signed_by": "CN=Văn thư,O=UBND tỉnh Đắk Lắk,C=VN",
    }


def test_empty_trust_and_a_self_signed_certificate(clerks) -> None:
    """Attack (a): with no anchors a self-signed 'Chủ tịch' proves nothing, and is not shown."""
    body = sign(document(UBND, "Quyết định"), throwaway_key("Chủ tịch UBND tỉnh Đắk Lắk"))
    verdict = check(Provenance(), body, UBND, UBND)
    assert len(verdict.problems) == 1
    assert verdict.problems[0].startswith(
        "signature untrusted: a 'Quyết định' requires a signed message (signature_required_for),"
        " and signer 'CN=Chủ tịch UBND tỉnh Đắk Lắk' cannot be trusted without trust_anchors."
    )
    assert "signed_by" not in verdict.headers()
    letter = sign(document(UBND, "Công văn"), throwaway_key("Chủ tịch UBND tỉnh Đắk Lắk"))
    verdict = check(Provenance(), letter, UBND, UBND)
    assert verdict.problems == []  # a letter needs no signature: intact, marked untrusted
    assert verdict.headers() == {"from": UBND, "signature": "untrusted"}


def test_a_stripped_signature_is_refused_where_one_is_required(secure) -> None:
    """Attack (a): verify-if-present no longer lets a decision through without its signature."""
    verdict = check(secure, document(UBND, "Quyết định"), UBND, UBND)
    assert verdict.problems == [
        "signature missing: a 'Quyết định' requires a signed message (signature_required_for) "
        "and this one carries none. Hint: ask the sender to sign and re-send; a signature "
        "stripped on the way is refused the same"
    ]
    assert check(secure, document(UBND, " quyết   ĐỊNH "), UBND, UBND).problems  # same type
    assert check(secure, document(UBND, "Công văn"), UBND, UBND).problems == []
    required_all = Provenance(policy="require", trust=secure.trust, binding=secure.binding)
    [problem] = check(required_all, document(UBND, "Công văn"), UBND, UBND).problems
    assert problem.startswith("signature missing: the endpoint's policy requires a signed message")


def test_one_agencys_clerk_cannot_sign_another_agencys_document(secure, clerks) -> None:
    """Attack (c): Sở Y tế's clerk signs a decision 'From' the province, sent from the province."""
    body = sign(document(UBND, "Quyết định"), clerks[SYT])
    [problem] = check(secure, body, UBND, UBND).problems
    assert problem.startswith(
        "signature not bound: signer 'CN=Văn thư,O=Sở Y tế,C=VN' signs for 000.00.15.H15, not for "
        "the sender '000.00.00.H15'"
    )
    letter = sign(document(UBND, "Công văn"), clerks[SYT])
    assert check(secure, letter, UBND, UBND).problems  # bound whenever there is a binding


def test_the_axis_sender_wins_over_the_documents_from(secure, clerks) -> None:
    """Attack (c): Sở Y tế's system sends a document whose From claims the province."""
    body = sign(document(UBND, "Quyết định"), clerks[UBND])
    verdict = check(secure, body, SYT, UBND)
    assert verdict.sender == SYT and verdict.headers()["from"] == SYT
    assert verdict.problems[0].startswith(
        "sender mismatch: the document's From/OrganId is '000.00.00.H15' but the axis reports "
        "the sender '000.00.15.H15'; the axis's word is kept."
    )
    assert "signs for 000.00.00.H15, not for the sender '000.00.15.H15'" in verdict.problems[1]
    assert check(secure, body, "", UBND).sender == UBND  # no word from the axis: the document's


def test_without_a_binding_a_required_signature_cannot_be_tied_to_its_sender(ca, clerks) -> None:
    unbound = Provenance(trust=Trust([ca.root.certificate]))
    decision = sign(document(UBND, "Quyết định"), clerks[SYT])
    [problem] = check(unbound, decision, UBND, UBND).problems
    assert "signature not bound" in problem and "signer_agencies is empty" in problem
    letter = sign(document(UBND, "Công văn"), clerks[SYT])
    assert check(unbound, letter, UBND, UBND).problems == []


def test_policy_off_still_keeps_the_axis_sender(clerks) -> None:
    off = Provenance(policy="off")
    verdict = check(off, document(UBND, "Quyết định"), SYT, UBND)
    assert verdict.sender == SYT and verdict.problems[0].startswith("sender mismatch")
    assert off.warnings()[0].startswith("signature_policy is 'off'")


def test_require_without_anchors_or_binding_refuses_to_start(ca) -> None:
    with pytest.raises(ConfigError) as caught:
        Provenance(policy="require")
    assert "needs trust_anchors" in str(caught.value) and "needs signer_agencies" in str(
        caught.value
    )
    with pytest.raises(ConfigError, match="needs signer_agencies"):
        Provenance(policy="require", trust=Trust([ca.root.certificate]))


def test_start_warnings_name_each_missing_defence(ca, secure) -> None:
    warnings = Provenance().warnings()
    assert warnings[0].startswith("there are no trust_anchors: a signature proves only that")
    assert "Quyết định, Nghị quyết, Chỉ thị, Hợp đồng" in warnings[0]
    assert warnings[1].startswith("signer_agencies is empty")
    assert secure.warnings() == [
        "there are no crl_files: a revoked signing certificate is still trusted. Hint: fetch the "
        "CAs' CRLs regularly and list them under crl_files"
    ]
