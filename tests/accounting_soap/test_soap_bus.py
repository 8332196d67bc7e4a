"""The SOAP adapter inside a real bus (embedded default: SQLite store, no broker).

Budget decisions dropped in a folder are mapped to PostBudgetEstimate and posted
to the sandbox; vouchers polled from the sandbox are summarised into a folder.
The bus hands the adapter its store's cursors and its own Inbox.
"""

from __future__ import annotations

from pathlib import Path

from lienthong.plugins import accounting_soap
from lienthong.store import Cursors

MAPPINGS = Path(__file__).resolve().parents[2] / "mappings"
DECISION = MAPPINGS / "accounting/budget-decision-to-post-estimate.cases/first-allocation-in-dong"
SUMMARY = "{urn:lienthong:accounting:summary:v1}"


def test_decisions_post_estimates_and_vouchers_come_back_summarised(
    lienthong_bus, lienthong_host, sandbox, credentials, tmp_path
) -> None:
    if "accounting_soap" not in lienthong_host.adapters:
        lienthong_host.add(accounting_soap, "accounting_soap")
        lienthong_host.refresh()
    user, password = credentials
    soap = {
        "adapter": "accounting_soap",
        "wsdl": sandbox.wsdl_url,
        "username": user,
        "password": password,
    }
    bus = lienthong_bus(
        mappings=MAPPINGS,
        endpoints={
            "decisions": {"adapter": "folder", "path": "decisions", "kind": "budget.decision"},
            "acct-post": {
                **soap,
                "send_operation": "PostBudgetEstimate",
                "reference_field": "estimate.externalReference",
            },
            "acct-poll": {**soap, "receive_operation": "ListVoucherChanges"},
            "reports": {"adapter": "folder", "path": "reports", "direction": "out"},
        },
        routes=[
            {
                "name": "estimates",
                "from": "decisions",
                "to": [
                    {
                        "endpoint": "acct-post",
                        "mapping": "accounting/budget-decision-to-post-estimate.xsl",
                    }
                ],
            },
            {
                "name": "summaries",
                "from": "acct-poll",
                "to": [
                    {
                        "endpoint": "reports",
                        "mapping": "accounting/voucher-list-to-summary.xsl",
                        "params": {"period": "2026-01"},
                    }
                ],
            },
        ],
    )
    sandbox.add_voucher(
        kind="receipt",
        agencyCode="000.00.15.H41",
        debitAccount="1111",
        creditAccount="5111",
        amount=125000000,
        description="Thu phí",
    )
    (tmp_path / "decisions").mkdir(exist_ok=True)
    (tmp_path / "decisions/qd-215.xml").write_bytes((DECISION / "input.xml").read_bytes())

    bus.run(once=True)

    [estimate] = sandbox.estimates()
    assert estimate["amount"] == "1250000000"
    assert estimate["externalReference"], "the delivery key went into the reference"
    [report] = list((tmp_path / "reports").glob("*.xml"))
    assert b"125000000" in report.read_bytes() and SUMMARY[1:-1].encode() in report.read_bytes()
    assert Cursors(bus.store.engine).get("acct-poll:ListVoucherChanges")

    bus.run(once=True)  # nothing new: no second estimate, no second report
    assert len(sandbox.estimates()) == 1
    assert len(list((tmp_path / "reports").glob("*.xml"))) == 1
