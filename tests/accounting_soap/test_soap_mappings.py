"""The accounting mappings: their cases, and their output accepted by the sandbox service."""

from __future__ import annotations

from pathlib import Path

import pytest

from lienthong.mapping import MappingLibrary, format_results, run_cases
from lienthong.message import Message

MAPPINGS = Path(__file__).resolve().parents[2] / "mappings"
CASES = MAPPINGS / "accounting" / "budget-decision-to-post-estimate.cases"


@pytest.fixture
def library() -> MappingLibrary:
    return MappingLibrary(MAPPINGS)


def test_every_accounting_mapping_passes_its_cases(library: MappingLibrary) -> None:
    results = run_cases(library, MAPPINGS / "accounting")
    assert len(results) >= 7
    assert all(r.ok for r in results), format_results(results)


def test_a_budget_decision_becomes_an_estimate_in_the_accounting_service(
    library, sandbox, make_adapter
) -> None:
    mapping = library.get("accounting/budget-decision-to-post-estimate.xsl")
    decision = (CASES / "chosen-agency-in-millions" / "input.xml").read_bytes()
    request = Message(body=mapping.apply_bytes(decision, {"agency": "000.00.16.H41"}))
    adapter = make_adapter(
        send_operation="PostBudgetEstimate", reference_field="estimate.externalReference"
    )
    adapter.send(request, key=request.id)
    [estimate] = sandbox.estimates()
    assert estimate["agencyCode"] == "000.00.16.H41"
    assert estimate["amount"] == "2500500000"
    assert estimate["decisionNumber"] == "215/QĐ-UBND"
    assert estimate["externalReference"] == request.id


def test_polled_vouchers_summarise(library, sandbox, make_adapter, inbox) -> None:
    sandbox.add_voucher(
        kind="receipt",
        agencyCode="000.00.15.H41",
        debitAccount="1111",
        creditAccount="5111",
        amount=700,
        description="a",
    )
    sandbox.add_voucher(
        kind="payment",
        agencyCode="000.00.15.H41",
        debitAccount="6111",
        creditAccount="1111",
        amount=200,
        description="b",
    )
    make_adapter().receive(inbox)
    summarise = library.get("accounting/voucher-list-to-summary.xsl")
    net = []
    for message in inbox.messages:
        tree = summarise.apply(message.tree())
        net.append(
            int(
                tree.findtext(
                    "{urn:lienthong:accounting:summary:v1}total/"
                    "{urn:lienthong:accounting:summary:v1}net"
                )
            )
        )
    assert net == [700, -200]
