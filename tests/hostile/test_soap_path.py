"""Hostile SOAP answers to the accounting adapter's poll, from the real sandbox SOAP server.

The adapter starts against the sandbox (its WSDL loaded), then the sandbox
answers the poll with the hostile bytes (``faults.raw_answer``). Each answer
must be refused with its reason, nothing accepted, the cursor left where it
was, the bus still delivering other endpoints' messages, and the next honest
answer read normally.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lienthong.bus import Bus
from lienthong.errors import FatalError, LienthongError, TransientError
from lienthong.message import Message
from lienthong.plugins import memory
from lienthong.plugins.accounting_soap.sandbox import AccountingSandbox
from lienthong.store import Cursors
from lienthong.xml import DEFAULT_MAX_BYTES
from tests.hostile.cases import CORPUS, MAX_BYTES, Case, assert_reason, params

USER, PASSWORD = "ketoan-stc", "mat-khau-sandbox-01"
CURSOR = "acct-poll:ListVoucherChanges"
SOAP_DTD = ("DTD or entity declaration", "refuses", "Hint:")
NOT_SOAP = ("without a SOAP answer", "not well-formed XML")

_HEAD = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>'
    b'<acc:ListVoucherChangesResponse xmlns:acc="urn:lienthong:sandbox:accounting:v1">'
)
_TAIL = (
    b"<acc:nextCursor>2099-01-01T00:00:00Z</acc:nextCursor>"
    b"</acc:ListVoucherChangesResponse></soapenv:Body></soapenv:Envelope>"
)


def _doctype_after_a_long_comment() -> bytes:
    # Past the adapter's quick look at the first 4 KiB: the hardened parser must still refuse it.
    return (
        b'<?xml version="1.0"?><!--'
        + b"x" * 5000
        + b'--><!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        + _HEAD
        + b"<acc:vouchers><acc:voucher><acc:number>&x;</acc:number></acc:voucher></acc:vouchers>"
        + _TAIL
    )


def _oversized() -> bytes:
    filler = b"<acc:vouchers><acc:voucher><acc:description>"
    end = b"</acc:description></acc:voucher></acc:vouchers>"
    size = DEFAULT_MAX_BYTES + 1 - len(_HEAD) - len(_TAIL) - len(filler) - len(end)
    return _HEAD + filler + b"x" * size + end + _TAIL


def _deep() -> bytes:
    return _HEAD + b"<acc:vouchers>" + b"<a>" * 300 + b"</a>" * 300 + b"</acc:vouchers>" + _TAIL


_FILES = {
    "xxe-envelope.xml": SOAP_DTD,
    "billion-laughs-envelope.xml": SOAP_DTD,
    "html-error-page.html": SOAP_DTD,
    "malformed-utf8-envelope.xml": (*NOT_SOAP, "Invalid bytes in character encoding"),
    "truncated-envelope.xml": (*NOT_SOAP, "Premature end of data"),
    "json-instead-of-xml.json": (*NOT_SOAP, "Start tag expected"),
    "not-a-soap-envelope.xml": ("without a SOAP answer", "{urn:not-soap}Envelope"),
    "empty-body.xml": ("the SOAP Body of the answer is empty",),
}


def soap_cases() -> list[Case]:
    found = sorted(p.name for p in (CORPUS / "soap").iterdir())
    assert found == sorted(_FILES), "corpus/soap and its expected reasons differ"
    cases = [Case(name, (CORPUS / "soap" / name).read_bytes, _FILES[name]) for name in found]
    return [
        *cases,
        Case("doctype-after-4k-comment", _doctype_after_a_long_comment, ("declares a DTD",)),
        Case("oversized-answer", _oversized, ("over the limit", f"{DEFAULT_MAX_BYTES:,}")),
        Case("deep-answer", _deep, ("not well-formed XML", "Excessive depth")),
    ]


@pytest.fixture
def sandbox() -> Iterator[AccountingSandbox]:
    with AccountingSandbox(username=USER, password=PASSWORD) as server:
        server.add_voucher(
            kind="receipt",
            agencyCode="000.00.15.H41",
            debitAccount="1111",
            creditAccount="5111",
            amount=2500000,
            description="Thu phí cấp bản sao",
        )
        yield server


@pytest.fixture
def soap_bus(lienthong_bus, sandbox: AccountingSandbox) -> Bus:
    """A bus polling the sandbox into memory 'vouchers', and relaying memory 'in' to 'out'."""
    return lienthong_bus(
        bus={"max_message_bytes": MAX_BYTES},
        endpoints={
            "acct-poll": {
                "adapter": "accounting_soap",
                "wsdl": sandbox.wsdl_url,
                "username": USER,
                "password": PASSWORD,
                "receive_operation": "ListVoucherChanges",
                "timeout": 5,
            },
            "vouchers": {"adapter": "memory"},
            "in": {"adapter": "memory"},
            "out": {"adapter": "memory"},
        },
        routes=[
            {"name": "vouchers", "from": "acct-poll", "to": "vouchers"},
            {"name": "relay", "from": "in", "to": "out"},
        ],
    )


@pytest.mark.parametrize("case", params(soap_cases()))
def test_hostile_answer_is_refused_the_cursor_kept_and_the_bus_goes_on(
    soap_bus: Bus, sandbox: AccountingSandbox, caplog, case: Case
) -> None:
    sandbox.faults.raw_answer = case.body
    adapter = soap_bus.adapters["acct-poll"]
    with pytest.raises(LienthongError) as caught:
        adapter.receive(soap_bus)
    assert_reason(str(caught.value), case.reason, case.name)
    assert "endpoint 'acct-poll' ListVoucherChanges" in str(caught.value)

    memory.feed("in", [Message(body=b"<ok/>")])
    with caplog.at_level(logging.WARNING, logger="lienthong.bus"):
        total = soap_bus.run(once=True)
    assert total.delivered == 1 and len(memory.delivered("out")) == 1, "other endpoints go on"
    assert any("acct-poll" in r.getMessage() for r in caplog.records), "the refusal is logged"
    assert memory.delivered("vouchers") == []
    assert Cursors(soap_bus.store.engine).get(CURSOR) is None, "the cursor did not move"
    assert soap_bus.store.counts()["messages"] == 1

    sandbox.faults.raw_answer = None
    assert soap_bus.run(once=True).delivered == 1, "the next honest answer is read"
    [voucher] = memory.delivered("vouchers")
    assert "Thu phí cấp bản sao" in voucher.body.decode("utf-8")
    assert Cursors(soap_bus.store.engine).get(CURSOR)


def test_an_oversized_item_is_parked_alone(soap_bus: Bus, sandbox: AccountingSandbox) -> None:
    sandbox.add_voucher(
        kind="payment",
        agencyCode="000.00.15.H41",
        debitAccount="6111",
        creditAccount="1111",
        amount=1,
        description="x" * (MAX_BYTES + 1),
    )
    total = soap_bus.run(once=True)
    assert (total.received, total.delivered, total.dead) == (2, 1, 1)
    [dead] = soap_bus.store.dead_letters()
    assert "over the limit" in dead["reason"] and dead["stage"] == "accept"
    assert Cursors(soap_bus.store.engine).get(CURSOR), "a parked item is stored: the cursor moves"


def test_markup_inside_a_value_stays_text(soap_bus: Bus, sandbox: AccountingSandbox) -> None:
    sandbox.add_voucher(
        kind="receipt",
        agencyCode="000.00.15.H41",
        debitAccount="1111",
        creditAccount="5111",
        amount=3,
        description='<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>&e;]]><x/>',
    )
    assert soap_bus.run(once=True).delivered == 2
    bodies = [m.body for m in memory.delivered("vouchers")]
    assert any(b"&lt;!DOCTYPE x [&lt;!ENTITY e" in b for b in bodies)
    assert not any(b"root:" in b for b in bodies)


APACHE_503 = (
    b'<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">\n<html><head>'
    b"<title>503 Service Unavailable</title></head><body><h1>Service Unavailable</h1>"
    b"</body></html>\n"
)


class _FailingProxy(BaseHTTPRequestHandler):
    """A proxy in front of the service answering 503 with an Apache error page."""

    def do_POST(self) -> None:  # noqa: N802 (the stdlib's naming)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(503)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(APACHE_503)))
        self.end_headers()
        self.wfile.write(APACHE_503)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        """Quiet."""


@pytest.fixture
def failing_proxy() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FailingProxy)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/AccountingService"
    server.shutdown()
    server.server_close()


def test_a_proxy_error_page_with_a_doctype_is_transient_not_an_attack(
    lienthong_bus, sandbox: AccountingSandbox, failing_proxy: str
) -> None:
    bus = lienthong_bus(
        endpoints={
            "acct-poll": {
                "adapter": "accounting_soap",
                "wsdl": sandbox.wsdl_url,
                "address": failing_proxy,
                "username": USER,
                "password": PASSWORD,
                "receive_operation": "ListVoucherChanges",
            },
        },
    )
    with pytest.raises(TransientError, match="HTTP 503 without a SOAP answer .*declares a DTD"):
        bus.adapters["acct-poll"].receive(bus)


class _EndlessAnswer(BaseHTTPRequestHandler):
    """A service (or a man in the middle) that answers with a SOAP envelope that never ends."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 (the stdlib's naming)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "text/xml; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunk = (
            b"<acc:vouchers>" + b"<acc:voucher><acc:number>PT-1</acc:number></acc:voucher>" * 1000
        )
        try:
            for part in (_HEAD, *[chunk] * 1_000_000):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
        except OSError:
            pass  # the client hung up: what it should do

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        """Quiet."""


@pytest.fixture
def endless_answer() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EndlessAnswer)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/AccountingService"
    server.shutdown()
    server.server_close()


def test_an_endless_answer_is_cut_at_the_cap_not_read_forever(
    lienthong_bus, sandbox: AccountingSandbox, endless_answer: str
) -> None:
    bus = lienthong_bus(
        endpoints={
            "acct-poll": {
                "adapter": "accounting_soap",
                "wsdl": sandbox.wsdl_url,
                "address": endless_answer,
                "username": USER,
                "password": PASSWORD,
                "receive_operation": "ListVoucherChanges",
            },
        },
    )
    outcome: list[BaseException] = []

    def poll() -> None:
        try:
            bus.adapters["acct-poll"].receive(bus)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "the answer was still being read after 30 s"
    [error] = outcome
    assert isinstance(error, FatalError)
    assert f"went past {DEFAULT_MAX_BYTES:,} bytes, over the limit" in str(error)
    assert "the rest was not read" in str(error) and "max_answer_bytes" in str(error)
    assert Cursors(bus.store.engine).get(CURSOR) is None


def test_an_answer_declared_over_the_cap_is_not_read(
    lienthong_bus, sandbox: AccountingSandbox
) -> None:
    bus = lienthong_bus(
        endpoints={
            "acct-poll": {
                "adapter": "accounting_soap",
                "wsdl": sandbox.wsdl_url,
                "username": USER,
                "password": PASSWORD,
                "receive_operation": "ListVoucherChanges",
                "max_answer_bytes": 100_000,
            },
        },
    )
    sandbox.faults.raw_answer = _HEAD + b"<acc:vouchers/>" + b" " * 200_000 + _TAIL
    with pytest.raises(FatalError, match=r"declares 200,\d+ bytes, over the limit of 100,000"):
        bus.adapters["acct-poll"].receive(bus)
    sandbox.faults.raw_answer = None
    assert bus.adapters["acct-poll"].receive(bus) == 1, "an answer within the cap is read"
