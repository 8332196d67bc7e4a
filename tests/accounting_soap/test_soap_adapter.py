"""The SOAP adapter against the sandbox accounting service, over real HTTP."""

from __future__ import annotations

import subprocess
import sys

import pytest
import requests
from lxml import etree

from lienthong.adapter import Capability
from lienthong.errors import ConfigError, FatalError, RejectedError, TransientError
from lienthong.host import PluginHost
from lienthong.message import Message
from lienthong.plugins import accounting_soap
from lienthong.plugins.accounting_soap.adapter import (
    AccountingSoapAdapter,
    SoapAuthenticationError,
    SoapRejected,
    SoapServerFault,
)
from lienthong.plugins.accounting_soap.sandbox import ACCOUNTING_WSDL
from lienthong.store import Cursors

ACC = {"acc": "urn:lienthong:sandbox:accounting:v1"}


def seed(sandbox, count: int, agency: str = "000.00.15.H41") -> list[str]:
    return [
        sandbox.add_voucher(
            kind="payment",
            date="2026-01-10",
            agencyCode=agency,
            debitAccount="6111",
            creditAccount="1121",
            amount=1000000 + i,
            description=f"Chi thử {i}",
        )
        for i in range(count)
    ]


# --- registration -------------------------------------------------------------


def test_the_plugin_registers_the_adapter() -> None:
    host = PluginHost(load_builtins=False, load_entry_points=False)
    host.add(accounting_soap, "accounting_soap", origin="built-in")
    host.refresh()
    assert host.adapter("accounting_soap") is AccountingSoapAdapter
    assert AccountingSoapAdapter.options and all(
        o.description for o in AccountingSoapAdapter.options
    )
    secret = {o.name for o in AccountingSoapAdapter.options if o.secret}
    assert secret == {"password"}


# --- receive ----------------------------------------------------------------


def test_poll_returns_vouchers_as_messages(sandbox, make_adapter, inbox) -> None:
    numbers = seed(sandbox, 2)
    adapter = make_adapter()
    assert adapter.receive(inbox) == 2
    first = inbox.messages[0]
    assert first.kind == "accounting.voucher"
    assert first.source == "acct-stc"
    assert first.source_key == f"{numbers[0]}/1"
    root = first.tree().getroot()
    assert root.tag == "{urn:lienthong:sandbox:accounting:v1}voucher"
    assert root.findtext("acc:amount", namespaces=ACC) == "1000000"


def test_cursor_survives_a_new_adapter_on_the_same_store(
    sandbox, make_adapter, inbox, engine
) -> None:
    seed(sandbox, 3)
    assert make_adapter().receive(inbox) == 3
    stored = Cursors(engine).get("acct-stc:ListVoucherChanges")
    assert stored and stored.startswith("20")

    again = make_adapter()  # a restart: new adapter, same SQLite file
    assert again.receive(inbox) == 0
    new = seed(sandbox, 1, agency="000.00.16.H41")[0]
    sandbox.amend_voucher("PC-000001", description="Chi thử 0 (sửa)")
    assert again.receive(inbox) == 2
    keys = [m.source_key for m in inbox.messages[-2:]]
    assert keys == [f"{new}/1", "PC-000001/2"], "a corrected voucher arrives again, as version 2"


def test_cursor_moves_only_after_the_bus_accepted(sandbox, make_adapter, inbox, engine) -> None:
    seed(sandbox, 2)
    adapter = make_adapter()

    class FailingInbox:
        def accept(self, messages):
            raise OSError("disk full")

    with pytest.raises(OSError):
        adapter.receive(FailingInbox())
    assert Cursors(engine).get("acct-stc:ListVoucherChanges") is None
    assert adapter.receive(inbox) == 2


def test_paging_follows_the_cursor(sandbox, make_adapter, inbox) -> None:
    seed(sandbox, 5)
    adapter = make_adapter(receive_arguments={"maxResults": 2})
    counts = [adapter.receive(inbox) for _ in range(4)]
    assert counts == [2, 2, 1, 0]
    assert len({m.source_key for m in inbox.messages}) == 5


def test_cursor_start_skips_older_changes(sandbox, make_adapter, inbox) -> None:
    seed(sandbox, 2)
    adapter = make_adapter(cursor_start="2999-01-01T00:00:00Z")
    assert adapter.receive(inbox) == 0


# --- send ---------------------------------------------------------------------


def test_post_voucher_puts_the_key_in_the_reference(sandbox, make_adapter, voucher_body) -> None:
    adapter = make_adapter()
    adapter.send(Message(body=voucher_body()), key="msg-0001")
    [voucher] = sandbox.vouchers()
    assert voucher["externalReference"] == "msg-0001"
    assert voucher["amount"] == "2500000"
    assert voucher["number"] == "PT-000001"


def test_a_redelivery_posts_no_second_voucher(sandbox, make_adapter, voucher_body) -> None:
    adapter = make_adapter()
    message = Message(body=voucher_body())
    adapter.send(message, key=message.id)
    adapter.send(message, key=message.id)
    make_adapter().send(Message(body=voucher_body()), key=message.id)
    assert len(sandbox.vouchers()) == 1
    assert sandbox.calls["PostVoucher"] == 3


def test_a_key_overrides_a_reference_set_by_the_mapping(
    sandbox, make_adapter, voucher_body
) -> None:
    make_adapter().send(Message(body=voucher_body(externalReference="from-mapping")), key="k-1")
    assert sandbox.vouchers()[0]["externalReference"] == "k-1"


def test_business_rule_fault_is_rejected_with_its_code(sandbox, make_adapter, voucher_body) -> None:
    adapter = make_adapter()
    with pytest.raises(SoapRejected) as caught:
        adapter.send(Message(body=voucher_body(debitAccount="6111")), key="k-2")
    error = caught.value
    assert isinstance(error, RejectedError)
    assert not adapter.is_transient(error)
    assert error.fault_code == "soapenv:Client"
    assert error.detail_code == "ACC-CASH-ACCOUNT"
    assert "cash or bank account" in error.fault_string
    assert "ACC-CASH-ACCOUNT" in str(error)
    assert sandbox.vouchers() == []


def test_body_breaking_the_wsdl_types_is_rejected_before_calling(
    sandbox, make_adapter, voucher_body
) -> None:
    adapter = make_adapter()
    for bad in ({"amount": "abc"}, {"amount": "-5"}, {"agencyCode": "not a code"}):
        with pytest.raises(RejectedError, match="does not match the WSDL types") as caught:
            adapter.send(Message(body=voucher_body(**bad)), key="k-3")
        assert "line 1" in str(caught.value)
    assert "PostVoucher" not in sandbox.calls


def test_body_of_another_operation_is_rejected(make_adapter) -> None:
    body = (
        b'<acc:GetBudgetEstimates xmlns:acc="urn:lienthong:sandbox:accounting:v1">'
        b"<acc:agencyCode>000.00.15.H41</acc:agencyCode></acc:GetBudgetEstimates>"
    )
    with pytest.raises(RejectedError, match="takes <.*PostVoucher>.*Hint: check the route"):
        make_adapter().send(Message(body=body), key="k-4")


def test_budget_estimate_posting_by_options_alone(sandbox, make_adapter) -> None:
    adapter = make_adapter(
        send_operation="PostBudgetEstimate", reference_field="estimate.externalReference"
    )
    body = (
        b'<acc:PostBudgetEstimate xmlns:acc="urn:lienthong:sandbox:accounting:v1"><acc:estimate>'
        b"<acc:agencyCode>000.00.15.H41</acc:agencyCode><acc:fiscalYear>2026</acc:fiscalYear>"
        b"<acc:chapter>418</acc:chapter><acc:item>6000</acc:item>"
        b"<acc:amount>1250000000</acc:amount></acc:estimate></acc:PostBudgetEstimate>"
    )
    adapter.send(Message(body=body), key="dt-1")
    adapter.send(Message(body=body), key="dt-1")
    [estimate] = sandbox.estimates()
    assert estimate["externalReference"] == "dt-1"
    assert estimate["amount"] == "1250000000"


# --- transient failures ---------------------------------------------------------


def test_server_down_is_transient_then_recovers(sandbox, make_adapter, voucher_body) -> None:
    adapter = make_adapter()
    sandbox.stop()
    with pytest.raises(TransientError, match="cannot connect") as caught:
        adapter.send(Message(body=voucher_body()), key="k-5")
    assert adapter.is_transient(caught.value)
    sandbox.start()
    adapter.send(Message(body=voucher_body()), key="k-5")
    assert len(sandbox.vouchers()) == 1


@pytest.mark.parametrize(
    ("switch", "value", "match"),
    [
        ("http_500", True, "HTTP 500 without a SOAP answer"),
        ("server_fault", True, "server fault soapenv:Server"),
        ("down", True, "cannot connect"),
    ],
)
def test_service_failures_are_transient(sandbox, make_adapter, voucher_body, switch, value, match):
    adapter = make_adapter()
    setattr(sandbox.faults, switch, value)
    with pytest.raises(TransientError, match=match) as caught:
        adapter.send(Message(body=voucher_body()), key="k-6")
    assert adapter.is_transient(caught.value)
    if switch == "server_fault":
        assert isinstance(caught.value, SoapServerFault)
    setattr(sandbox.faults, switch, False)
    adapter.send(Message(body=voucher_body()), key="k-6")
    assert len(sandbox.vouchers()) == 1


def test_a_slow_service_times_out_as_transient(sandbox, make_adapter, inbox) -> None:
    adapter = make_adapter(timeout=0.2)
    sandbox.faults.slow_s = 0.6
    with pytest.raises(TransientError, match="no answer within 0.2 s"):
        adapter.receive(inbox)


# --- WS-Security and configuration ------------------------------------------------


def test_wrong_password_is_a_clear_fatal_error(make_adapter, voucher_body, credentials) -> None:
    adapter = make_adapter(password="not-the-password")
    with pytest.raises(SoapAuthenticationError) as caught:
        adapter.send(Message(body=voucher_body()), key="k-7")
    assert isinstance(caught.value, FatalError)
    assert not adapter.is_transient(caught.value)
    text = str(caught.value)
    assert (
        "FailedAuthentication" in text
        and "Hint: check the endpoint's username and password" in text
    )
    assert "not-the-password" not in text and credentials[1] not in text


def test_missing_token_is_refused(make_adapter, voucher_body) -> None:
    adapter = make_adapter(username=None, password=None)
    with pytest.raises(SoapAuthenticationError, match="InvalidSecurity"):
        adapter.send(Message(body=voucher_body()), key="k-8")


def test_password_digest_is_accepted(sandbox, make_adapter, voucher_body) -> None:
    make_adapter(password_digest=True).send(Message(body=voucher_body()), key="k-9")
    assert len(sandbox.vouchers()) == 1


def test_offline_wsdl_file_with_address(sandbox, make_adapter, voucher_body, inbox) -> None:
    adapter = make_adapter(wsdl=str(ACCOUNTING_WSDL), address=sandbox.url)
    adapter.send(Message(body=voucher_body()), key="k-10")
    assert adapter.receive(inbox) == 1
    assert "?wsdl" not in sandbox.calls


def test_wsdl_is_cached_under_var_dir(sandbox, make_adapter, tmp_path) -> None:
    make_adapter()
    make_adapter()
    assert sandbox.calls["?wsdl"] == 1
    assert (tmp_path / "var" / "zeep-cache.sqlite").is_file()


def test_the_served_wsdl_names_the_sandbox_address(sandbox) -> None:
    answer = requests.get(sandbox.wsdl_url, timeout=5)
    tree = etree.fromstring(answer.content)
    [address] = tree.xpath(
        "//soap:address/@location", namespaces={"soap": "http://schemas.xmlsoap.org/wsdl/soap/"}
    )
    assert address == sandbox.url
    assert b"SANDBOX" in answer.content


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"send_operation": "PostVouchers"}, "send_operation 'PostVouchers' is not an operation"),
        ({"reference_field": "voucher.extRef"}, "has no 'extRef'"),
        ({"service": "Nope"}, "service 'Nope' is not in the WSDL"),
        ({"wsdl": "missing.wsdl"}, "does not exist"),
    ],
)
def test_bad_options_are_config_errors(make_adapter, options, match) -> None:
    with pytest.raises(ConfigError, match=match):
        make_adapter(**options)


def test_unreachable_wsdl_is_transient_at_start(sandbox, make_adapter) -> None:
    url = sandbox.wsdl_url
    sandbox.stop()
    with pytest.raises(TransientError, match="did not answer"):
        make_adapter(wsdl=url)


# --- hostile answers ------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>
<acc:PostVoucherResponse xmlns:acc="urn:lienthong:sandbox:accounting:v1">
<acc:number>&lol2;</acc:number><acc:duplicate>false</acc:duplicate></acc:PostVoucherResponse>
</soapenv:Body></soapenv:Envelope>"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>
<acc:ListVoucherChangesResponse xmlns:acc="urn:lienthong:sandbox:accounting:v1">
<acc:vouchers/><acc:nextCursor>&xxe;</acc:nextCursor><acc:more>false</acc:more>
</acc:ListVoucherChangesResponse></soapenv:Body></soapenv:Envelope>"""


def test_a_response_with_entities_is_refused(sandbox, make_adapter, voucher_body) -> None:
    adapter = make_adapter()
    sandbox.faults.raw_answer = BILLION_LAUGHS
    with pytest.raises(FatalError, match="DTD or entity declaration"):
        adapter.send(Message(body=voucher_body()), key="k-11")


def test_a_poll_answer_with_xxe_is_refused_and_the_cursor_kept(
    sandbox, make_adapter, inbox, engine
) -> None:
    adapter = make_adapter()
    sandbox.faults.raw_answer = XXE
    with pytest.raises(FatalError, match="DTD or entity declaration"):
        adapter.receive(inbox)
    assert Cursors(engine).get("acct-stc:ListVoucherChanges") is None
    assert inbox.messages == []


def test_a_wsdl_with_a_doctype_is_refused(sandbox, make_adapter) -> None:
    sandbox.faults.raw_answer = XXE
    with pytest.raises(ConfigError, match="DTD or entities"):
        make_adapter()


def test_a_message_body_with_a_doctype_is_rejected(make_adapter) -> None:
    with pytest.raises(RejectedError, match="DTD"):
        make_adapter().send(Message(body=XXE), key="k-12")


def test_the_sandbox_runs_as_a_module() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lienthong.plugins.accounting_soap.sandbox",
            "--port",
            "0",
            "--seed",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("SANDBOX accounting service at http://127.0.0.1:")
        wsdl_url = line.rsplit("WSDL: ", 1)[1].rstrip(")\n")
        assert requests.get(wsdl_url, timeout=5).status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=5)
        process.stdout.close()


def test_an_endpoint_offers_what_its_operations_configure(make_adapter) -> None:
    assert make_adapter(receive_operation="").capabilities == {Capability.SEND}
    assert make_adapter(send_operation="", reference_field="").capabilities == {Capability.RECEIVE}
    assert AccountingSoapAdapter.capabilities == {Capability.SEND, Capability.RECEIVE}


@pytest.mark.parametrize(
    ("request_body", "code"),
    [
        (BILLION_LAUGHS, "MALFORMED"),
        (b"<not-soap/>", None),
        (
            b"<soapenv:Envelope xmlns:soapenv='http://schemas.xmlsoap.org/soap/envelope/'>"
            b"<soapenv:Body><acc:Nope xmlns:acc='urn:lienthong:sandbox:accounting:v1'/>"
            b"</soapenv:Body></soapenv:Envelope>",
            None,
        ),
    ],
)
def test_the_sandbox_answers_hostile_requests_with_faults(sandbox, request_body, code) -> None:
    answer = requests.post(
        sandbox.url, data=request_body, timeout=5, headers={"Content-Type": "text/xml"}
    )
    assert answer.status_code == 500
    fault = etree.fromstring(answer.content).find(".//faultcode")
    assert fault is not None and fault.text.split(":")[1] in (
        "Client",
        "VersionMismatch",
        "InvalidSecurity",
    )
    if code:
        assert code.encode() in answer.content
    assert sandbox.vouchers() == []
