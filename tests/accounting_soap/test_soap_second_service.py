"""A second, unrelated SOAP service connected by adapter options and a mapping alone.

The treasury desk has its own namespace, operation and type names, cursor shape
and fault detail; it is served by the sandbox's generic SOAP server machinery and
reached by the same adapter class, configured differently.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree
from lxml.builder import ElementMaker

from lienthong.mapping import MappingLibrary
from lienthong.message import Message
from lienthong.plugins.accounting_soap.adapter import SoapRejected
from lienthong.plugins.accounting_soap.sandbox import SoapFault, SoapServer

TR = "urn:lienthong:test:treasury:v2"
LIMIT = 500_000_000


class TreasuryDesk:
    """The test's stand-in for a treasury system: payment orders, idempotent by clientRef."""

    def __init__(self, wsdl: Path) -> None:
        self.orders: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._e = ElementMaker(namespace=TR, nsmap={"tr": TR})
        self.server = SoapServer(
            wsdl,
            {"SubmitPaymentOrder": self.submit, "FetchPaymentOrders": self.fetch},
            detail_element="rejection",
        )

    def submit(self, request: etree._Element) -> etree._Element:
        order = {etree.QName(c).localname: c.text or "" for c in request[0]}
        if int(order["amountDong"]) > LIMIT:
            raise SoapFault(
                "Client", f"amount {order['amountDong']} over the desk limit", "TR-LIMIT"
            )
        with self._lock:
            found = [o for o in self.orders if o.get("clientRef") == order.get("clientRef")]
            if not found:
                order["seq"] = str(len(self.orders) + 1)
                order["orderId"] = f"UNC-{order['seq']:0>5}"
                self.orders.append(order)
                found = [order]
        return self._e.SubmitPaymentOrderResult(self._e.orderId(found[0]["orderId"]))

    def fetch(self, request: etree._Element) -> etree._Element:
        after = int(request.findtext(f"{{{TR}}}afterSeq"))
        with self._lock:
            new = [o for o in self.orders if int(o["seq"]) > after]
        e = self._e
        fields = (
            "orderId",
            "payer",
            "beneficiaryAccount",
            "amountDong",
            "purpose",
            "clientRef",
            "seq",
        )
        return e.FetchPaymentOrdersResult(
            *(e.order(*(getattr(e, f)(o[f]) for f in fields)) for o in new),
            e.lastSeq(new[-1]["seq"] if new else str(after)),
        )


@pytest.fixture
def desk(data_dir: Path) -> Iterator[TreasuryDesk]:
    desk = TreasuryDesk(data_dir / "treasury.wsdl")
    with desk.server:
        yield desk


@pytest.fixture
def treasury_options(desk: TreasuryDesk) -> dict[str, object]:
    """Everything that tells the generic adapter about the treasury desk."""
    return {
        "wsdl": desk.server.wsdl_url,
        "username": None,
        "password": None,
        "send_operation": "SubmitPaymentOrder",
        "reference_field": "order.clientRef",
        "receive_operation": "FetchPaymentOrders",
        "cursor_argument": "afterSeq",
        "cursor_start": "0",
        "receive_arguments": {"desk": "KBNN-H41"},
        "item_element": "order",
        "item_key": "orderId",
        "next_cursor_element": "lastSeq",
        "message_kind": "treasury.payment-order",
    }


def test_vouchers_flow_to_a_second_soap_service(
    sandbox, desk, make_adapter, inbox, data_dir, treasury_options
) -> None:
    sandbox.add_voucher(
        kind="payment",
        date="2026-03-02",
        agencyCode="000.00.15.H41",
        debitAccount="3311",
        creditAccount="1121",
        amount=75_000_000,
        description="Trả tiền sửa chữa trụ sở",
    )
    accounting = make_adapter("acct-stc")
    treasury = make_adapter("kbnn", **treasury_options)
    mapping = MappingLibrary(data_dir).get("voucher-to-payment-order.xsl")

    assert accounting.receive(inbox) == 1
    voucher = inbox.messages[0]
    order_message = voucher.derive(mapping.apply_bytes(voucher.body), kind="treasury.order")
    treasury.send(order_message, key=order_message.id)
    treasury.send(order_message, key=order_message.id)  # a redelivery

    [order] = desk.orders
    assert order["clientRef"] == order_message.id
    assert order["amountDong"] == "75000000"
    assert order["purpose"] == "PC-000001: Trả tiền sửa chữa trụ sở"

    assert treasury.receive(inbox) == 1
    received = inbox.messages[-1]
    assert received.kind == "treasury.payment-order"
    assert received.source == "kbnn"
    assert received.source_key == "UNC-00001"
    assert treasury.receive(inbox) == 0, "the cursor (lastSeq) moved past the order"


def test_the_second_service_faults_carry_its_own_code(
    desk, make_adapter, data_dir, treasury_options
) -> None:
    treasury = make_adapter("kbnn", **treasury_options)
    body = (
        f'<tr:SubmitPaymentOrder xmlns:tr="{TR}"><tr:order><tr:payer>000.00.15.H41</tr:payer>'
        "<tr:beneficiaryAccount>3311</tr:beneficiaryAccount>"
        f"<tr:amountDong>{LIMIT + 1}</tr:amountDong><tr:purpose>x</tr:purpose>"
        "</tr:order></tr:SubmitPaymentOrder>"
    ).encode()
    with pytest.raises(SoapRejected) as caught:
        treasury.send(Message(body=body), key="big-1")
    assert caught.value.detail_code == "TR-LIMIT"
    assert desk.orders == []
