"""SANDBOX accounting service: a real SOAP 1.1 server standing in for an accounting package.

For tests and demos only; never configure it as a production endpoint.

Two parts:

- :class:`SoapServer`, a small generic SOAP 1.1 document/literal server on the
  standard library's ``ThreadingHTTPServer``: it serves any WSDL with one embedded
  schema, parses requests with the bus's hardened parser, validates each body
  against that schema, checks a WS-Security UsernameToken (text or digest) when
  credentials are set, answers SOAP faults (``Client`` for bad input or a broken
  business rule, ``Server`` for internal errors), serves its WSDL at ``?wsdl`` with
  the address rewritten to its own URL, and has fault-injection switches. Given
  ``tls_cert``/``tls_key`` it serves HTTPS; given ``client_ca`` too, it requires
  a client certificate signed by that CA (mutual TLS).
- :class:`AccountingSandbox`, the accounting service on top of it
  (``urn:lienthong:sandbox:accounting:v1``): receipts and payments vouchers,
  budget estimates, change polling with a cursor, and idempotent posting by
  external reference.

Run it by hand: ``python -m lienthong.plugins.accounting_soap.sandbox --port 8089 --seed``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import hmac
import logging
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from lxml import etree
from lxml.builder import ElementMaker

from lienthong import xml

from . import wsdl as wsdl_doc

log = logging.getLogger(__name__)

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
WSSE_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
PASSWORD_DIGEST = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest"
ACCOUNTING_NS = "urn:lienthong:sandbox:accounting:v1"
ACCOUNTING_WSDL = Path(__file__).with_name("wsdl") / "accounting.wsdl"
MAX_REQUEST_BYTES = 1024 * 1024

Handler = Callable[[etree._Element], etree._Element]


class SoapFault(Exception):
    """A fault to answer; ``code`` is ``Client``, ``Server`` or qualified (``wsse:...``)."""

    def __init__(self, code: str, message: str, detail_code: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.detail_code = detail_code


@dataclass
class FaultSwitches:
    """Fault injection for tests.

    ``down`` drops every connection unanswered; ``slow_s`` delays every answer;
    ``http_500`` answers an HTML error page, as a failing proxy would;
    ``server_fault`` answers every call with a SOAP ``Server`` fault; ``raw_answer``
    answers every request (WSDL included) with exactly these bytes (hostile tests).
    """

    down: bool = False
    slow_s: float = 0.0
    http_500: bool = False
    server_fault: bool = False
    raw_answer: bytes | None = None


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    ssl_context: ssl.SSLContext | None = None

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        if self.ssl_context is not None:
            # The handshake runs on the first read, in the request's own thread, so a
            # client that never finishes it does not block the accept loop.
            connection = self.ssl_context.wrap_socket(
                connection, server_side=True, do_handshake_on_connect=False
            )
        return connection, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (a timeout test, a cut connection) or failed the TLS
        # handshake (untrusted certificate, no client certificate) is not a server error.
        if isinstance(sys.exc_info()[1], ConnectionError | ssl.SSLError):
            log.debug("client %s went away", client_address)
        else:
            log.exception("sandbox SOAP server failed on a request from %s", client_address)


class SoapServer:
    """A generic SOAP 1.1 document/literal server for one WSDL and a handler per operation."""

    def __init__(
        self,
        wsdl_path: Path,
        handlers: Mapping[str, Handler],
        *,
        username: str | None = None,
        password: str | None = None,
        port: int = 0,
        detail_element: str | None = None,
        tls_cert: Path | str | None = None,
        tls_key: Path | str | None = None,
        client_ca: Path | str | None = None,
    ) -> None:
        self.wsdl = wsdl_doc.load(wsdl_path)
        self.namespace = wsdl_doc.target_namespace(self.wsdl)
        self.schema = wsdl_doc.embedded_schema(self.wsdl)
        self.path = wsdl_doc.address_path(self.wsdl)
        self.handlers = {f"{{{self.namespace}}}{name}": fn for name, fn in handlers.items()}
        self.username = username
        self.password = password
        self.detail_element = detail_element
        self.faults = FaultSwitches()
        self.calls: dict[str, int] = {}
        self._port = port
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._ssl_context = _server_context(tls_cert, tls_key, client_ca)

    # --- lifecycle ---

    def start(self) -> SoapServer:
        """Listen on 127.0.0.1 (a free port the first time, the same port after a restart)."""
        httpd = _HTTPServer(("127.0.0.1", self._port), _make_handler(self))
        self._port = httpd.server_address[1]
        httpd.ssl_context = self._ssl_context
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, args=(0.05,), name="soap-sandbox", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening; :meth:`start` listens again on the same port."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        # Kept-alive connections would go on being served by their threads: cut them,
        # so a stopped sandbox is as unreachable as a crashed service.
        with self._lock:
            connections, self._connections = self._connections, set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> SoapServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Where the service answers SOAP calls."""
        scheme = "https" if self._ssl_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self._port}{self.path}"

    @property
    def wsdl_url(self) -> str:
        return f"{self.url}?wsdl"

    # --- request handling ---

    def handle(self, data: bytes) -> tuple[int, bytes]:
        """Answer one SOAP request: (HTTP status, envelope bytes)."""
        try:
            body = self._body(data)
            self._count(etree.QName(body).localname)
            response = self.handlers[body.tag](body)
            return 200, _envelope(response)
        except SoapFault as fault:
            return 500, self._fault(fault)
        except Exception:
            log.exception("sandbox SOAP handler failed")
            return 500, self._fault(SoapFault("Server", "internal error in the sandbox service"))

    def _body(self, data: bytes) -> etree._Element:
        try:
            envelope = xml.parse(data, max_bytes=MAX_REQUEST_BYTES, what="SOAP request").getroot()
        except xml.XmlRejected as exc:
            raise SoapFault("Client", str(exc), "MALFORMED") from exc
        if envelope.tag != f"{{{SOAP_ENV}}}Envelope":
            raise SoapFault("VersionMismatch", f"expected a SOAP 1.1 Envelope, got {envelope.tag}")
        if self.username is not None:
            self._authenticate(envelope.find(f"{{{SOAP_ENV}}}Header"))
        body = envelope.find(f"{{{SOAP_ENV}}}Body")
        children = [c for c in body if isinstance(c.tag, str)] if body is not None else []
        if len(children) != 1:
            raise SoapFault("Client", f"the SOAP Body must hold one element, found {len(children)}")
        child = children[0]
        if child.tag not in self.handlers:
            raise SoapFault("Client", f"unknown operation element {child.tag}", "UNKNOWN_OPERATION")
        if not self.schema.validate(child):
            problems = "; ".join(e.message for e in self.schema.error_log)  # type: ignore[attr-defined]
            raise SoapFault(
                "Client", f"request does not match the WSDL schema: {problems}", "SCHEMA"
            )
        return child

    def _authenticate(self, header: etree._Element | None) -> None:
        token = None
        if header is not None:
            token = header.find(f"{{{WSSE_NS}}}Security/{{{WSSE_NS}}}UsernameToken")
        if token is None:
            raise SoapFault("wsse:InvalidSecurity", "a WS-Security UsernameToken is required")
        user = token.findtext(f"{{{WSSE_NS}}}Username") or ""
        password_el = token.find(f"{{{WSSE_NS}}}Password")
        given = (password_el.text or "") if password_el is not None else ""
        expected = self.password or ""
        if password_el is not None and password_el.get("Type") == PASSWORD_DIGEST:
            try:
                nonce = base64.b64decode(token.findtext(f"{{{WSSE_NS}}}Nonce") or "")
            except ValueError:
                nonce = b""
            created = token.findtext(f"{{{WSU_NS}}}Created") or ""
            digest = hashlib.sha1(nonce + created.encode() + expected.encode()).digest()
            expected = base64.b64encode(digest).decode()
        same_user = hmac.compare_digest(user.encode(), (self.username or "").encode())
        if not (same_user and hmac.compare_digest(given.encode(), expected.encode())):
            raise SoapFault(
                "wsse:FailedAuthentication",
                "The security token could not be authenticated or authorized",
            )

    def _fault(self, fault: SoapFault) -> bytes:
        nsmap = {"soapenv": SOAP_ENV, "wsse": WSSE_NS}
        root = etree.Element(f"{{{SOAP_ENV}}}Fault", nsmap=nsmap)
        code = fault.code if ":" in fault.code else f"soapenv:{fault.code}"
        etree.SubElement(root, "faultcode").text = code
        etree.SubElement(root, "faultstring").text = fault.message
        if fault.detail_code and self.detail_element:
            detail = etree.SubElement(root, "detail")
            holder = etree.SubElement(detail, f"{{{self.namespace}}}{self.detail_element}")
            etree.SubElement(holder, f"{{{self.namespace}}}code").text = fault.detail_code
        return _envelope(root)

    def _count(self, operation: str) -> None:
        with self._lock:
            self.calls[operation] = self.calls.get(operation, 0) + 1


def _server_context(
    cert: Path | str | None, key: Path | str | None, client_ca: Path | str | None
) -> ssl.SSLContext | None:
    """The HTTPS context for ``cert``/``key`` (None: plain HTTP), asking for client certificates."""
    if cert is None:
        if client_ca is not None:
            raise ValueError("client_ca needs tls_cert (client certificates only exist over HTTPS)")
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    if client_ca is not None:
        context.load_verify_locations(client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def _envelope(content: etree._Element) -> bytes:
    envelope = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap={"soapenv": SOAP_ENV})
    etree.SubElement(envelope, f"{{{SOAP_ENV}}}Body").append(content)
    return xml.serialize(envelope)


def _make_handler(server: SoapServer) -> type[BaseHTTPRequestHandler]:
    class RequestHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes; with Nagle on, a kept-alive client
        # waits ~40 ms for the delayed ACK on every call.
        disable_nagle_algorithm = True
        server_version = "lienthong-sandbox-soap"

        def setup(self) -> None:
            super().setup()
            with server._lock:
                server._connections.add(self.connection)

        def finish(self) -> None:
            with server._lock:
                server._connections.discard(self.connection)
            super().finish()

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s " + format, self.address_string(), *args)

        def _inject(self) -> bool:
            if server.faults.slow_s:
                time.sleep(server.faults.slow_s)
            if server.faults.down:
                self.close_connection = True
                return True
            if server.faults.raw_answer is not None:
                self._reply(200, server.faults.raw_answer, "text/xml; charset=utf-8")
                return True
            if server.faults.http_500:
                self._reply(500, b"<html><body>Service Unavailable</body></html>", "text/html")
                return True
            return False

        def _reply(self, status: int, payload: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            if self._inject():
                return
            path, _, query = self.path.partition("?")
            if path != server.path or query.lower() != "wsdl":
                self._reply(404, b"not found; the WSDL is at ?wsdl", "text/plain")
                return
            server._count("?wsdl")
            self._reply(
                200, wsdl_doc.with_address(server.wsdl, server.url), "text/xml; charset=utf-8"
            )

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_REQUEST_BYTES:
                self.close_connection = True
                self._reply(413, b"request too large", "text/plain")
                return
            data = self.rfile.read(length)
            if self._inject():
                return
            if self.path.partition("?")[0] != server.path:
                self._reply(404, f"no SOAP service at {self.path}".encode(), "text/plain")
                return
            if server.faults.server_fault:
                fault = SoapFault("Server", "the ledger database is not available (injected)")
                self._reply(500, server._fault(fault), "text/xml; charset=utf-8")
                return
            status, payload = server.handle(data)
            self._reply(status, payload, "text/xml; charset=utf-8")

    return RequestHandler


# --- the accounting service -------------------------------------------------

CASH_ACCOUNTS = ("111", "112")  # cash on hand, cash at bank (Circular 107/2017 chart)
VOUCHER_FIELDS = (
    "number",
    "kind",
    "date",
    "agencyCode",
    "debitAccount",
    "creditAccount",
    "amount",
    "description",
    "externalReference",
    "version",
    "changedAt",
)
ESTIMATE_FIELDS = (
    "id",
    "agencyCode",
    "fiscalYear",
    "chapter",
    "item",
    "amount",
    "decisionNumber",
    "externalReference",
)


@dataclass
class AccountingState:
    """What the sandbox holds; tests read it to check effects happened once."""

    vouchers: dict[str, dict[str, str]] = field(default_factory=dict)
    voucher_refs: dict[str, str] = field(default_factory=dict)
    estimates: dict[str, dict[str, str]] = field(default_factory=dict)
    estimate_refs: dict[str, str] = field(default_factory=dict)
    last_change: datetime = datetime(2000, 1, 1, tzinfo=UTC)


class AccountingSandbox(SoapServer):
    """The SANDBOX accounting service: vouchers, budget estimates, polling, idempotent posts."""

    def __init__(
        self,
        *,
        username: str | None = None,
        password: str | None = None,
        port: int = 0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        tls_cert: Path | str | None = None,
        tls_key: Path | str | None = None,
        client_ca: Path | str | None = None,
    ) -> None:
        super().__init__(
            ACCOUNTING_WSDL,
            {
                "ListVoucherChanges": self._list_changes,
                "PostVoucher": self._post_voucher,
                "PostBudgetEstimate": self._post_estimate,
                "GetBudgetEstimates": self._get_estimates,
            },
            username=username,
            password=password,
            port=port,
            detail_element="faultDetail",
            tls_cert=tls_cert,
            tls_key=tls_key,
            client_ca=client_ca,
        )
        self.state = AccountingState()
        self.clock = clock
        self._state_lock = threading.Lock()
        self._e = ElementMaker(namespace=ACCOUNTING_NS, nsmap={"acc": ACCOUNTING_NS})

    # --- state inspection and seeding for tests ---

    def add_voucher(self, **fields: Any) -> str:
        """Enter a voucher as an accountant would at the package itself; returns its number."""
        with self._state_lock:
            return self._insert_voucher({k: str(v) for k, v in fields.items()})

    def amend_voucher(self, number: str, **fields: Any) -> None:
        """Change a voucher (new version, new change time), as a correction at the package would."""
        with self._state_lock:
            voucher = self.state.vouchers[number]
            voucher.update({k: str(v) for k, v in fields.items()})
            voucher["version"] = str(int(voucher["version"]) + 1)
            voucher["changedAt"] = self._next_change()

    def vouchers(self) -> list[dict[str, str]]:
        with self._state_lock:
            return [dict(v) for v in self.state.vouchers.values()]

    def estimates(self) -> list[dict[str, str]]:
        with self._state_lock:
            return [dict(e) for e in self.state.estimates.values()]

    # --- operations ---

    def _list_changes(self, request: etree._Element) -> etree._Element:
        since_text = _text(request, "since")
        limit = int(_text(request, "maxResults") or 100)
        if limit < 1:
            raise SoapFault("Client", f"maxResults must be 1 or more, got {limit}", "BAD_LIMIT")
        since = _parse_time(since_text) if since_text else datetime.min.replace(tzinfo=UTC)
        with self._state_lock:
            changed = sorted(
                (v for v in self.state.vouchers.values() if _parse_time(v["changedAt"]) > since),
                key=lambda v: v["changedAt"],
            )
            page = [dict(v) for v in changed[:limit]]
        e = self._e
        cursor = page[-1]["changedAt"] if page else since_text
        return e.ListVoucherChangesResponse(
            e.vouchers(*(self._voucher_element(v) for v in page)),
            e.nextCursor(cursor),
            e.more("true" if len(changed) > limit else "false"),
        )

    def _post_voucher(self, request: etree._Element) -> etree._Element:
        voucher = {
            name: _text(request, f"voucher/acc:{name}")
            for name in VOUCHER_FIELDS
            if _text(request, f"voucher/acc:{name}")
        }
        if voucher["debitAccount"] == voucher["creditAccount"]:
            raise SoapFault(
                "Client",
                f"debit and credit account are both {voucher['debitAccount']}",
                "ACC-SAME-ACCOUNT",
            )
        cash_side = (
            voucher["debitAccount"] if voucher["kind"] == "receipt" else voucher["creditAccount"]
        )
        if not cash_side.startswith(CASH_ACCOUNTS):
            side = "debit" if voucher["kind"] == "receipt" else "credit"
            raise SoapFault(
                "Client",
                f"a {voucher['kind']} voucher must {side} a cash or bank account (111/112), "
                f"got {cash_side}",
                "ACC-CASH-ACCOUNT",
            )
        reference = voucher.get("externalReference")
        with self._state_lock:
            existing = self.state.voucher_refs.get(reference or "")
            number = existing or self._insert_voucher(voucher)
        return self._e.PostVoucherResponse(
            self._e.number(number), self._e.duplicate("true" if existing else "false")
        )

    def _post_estimate(self, request: etree._Element) -> etree._Element:
        estimate = {
            name: _text(request, f"estimate/acc:{name}")
            for name in ESTIMATE_FIELDS
            if _text(request, f"estimate/acc:{name}")
        }
        reference = estimate.get("externalReference")
        with self._state_lock:
            existing = self.state.estimate_refs.get(reference or "")
            if existing is None:
                estimate["id"] = f"DT-{len(self.state.estimates) + 1:06d}"
                self.state.estimates[estimate["id"]] = estimate
                if reference:
                    self.state.estimate_refs[reference] = estimate["id"]
            estimate_id = existing or estimate["id"]
        return self._e.PostBudgetEstimateResponse(
            self._e.id(estimate_id), self._e.duplicate("true" if existing else "false")
        )

    def _get_estimates(self, request: etree._Element) -> etree._Element:
        agency = _text(request, "agencyCode")
        year = _text(request, "fiscalYear")
        with self._state_lock:
            found = [
                dict(e)
                for e in self.state.estimates.values()
                if e["agencyCode"] == agency and (not year or e["fiscalYear"] == year)
            ]
        e = self._e
        return e.GetBudgetEstimatesResponse(
            *(
                e.estimate(*(getattr(e, k)(row[k]) for k in ESTIMATE_FIELDS if k in row))
                for row in found
            )
        )

    # --- helpers (callers hold the state lock) ---

    def _insert_voucher(self, voucher: dict[str, str]) -> str:
        prefix = "PT" if voucher["kind"] == "receipt" else "PC"
        count = sum(1 for n in self.state.vouchers if n.startswith(prefix))
        voucher["number"] = f"{prefix}-{count + 1:06d}"
        voucher["version"] = "1"
        voucher["changedAt"] = self._next_change()
        voucher.setdefault("date", date.today().isoformat())
        self.state.vouchers[voucher["number"]] = voucher
        if voucher.get("externalReference"):
            self.state.voucher_refs[voucher["externalReference"]] = voucher["number"]
        return voucher["number"]

    def _next_change(self) -> str:
        # Strictly increasing change times, so a cursor at one change never skips another.
        now = max(self.clock(), self.state.last_change + timedelta(microseconds=1))
        self.state.last_change = now
        return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def _voucher_element(self, voucher: dict[str, str]) -> etree._Element:
        e = self._e
        return e.voucher(*(getattr(e, k)(voucher[k]) for k in VOUCHER_FIELDS if k in voucher))


def _text(element: etree._Element, path: str) -> str:
    found = element.xpath(f"acc:{path}", namespaces={"acc": ACCOUNTING_NS})
    return (found[0].text or "").strip() if found else ""


def _parse_time(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise SoapFault(
            "Client",
            f"'{value}' is not a time (expected ISO 8601, e.g. 2026-01-31T08:00:00Z)",
            "BAD_CURSOR",
        ) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _demo_vouchers() -> Iterator[dict[str, Any]]:
    yield {
        "kind": "receipt",
        "date": "2026-01-05",
        "agencyCode": "000.00.15.H41",
        "debitAccount": "1121",
        "creditAccount": "5111",
        "amount": 125000000,
        "description": "Thu phí thẩm định hồ sơ tháng 12",
        "externalReference": "demo-1",
    }
    yield {
        "kind": "payment",
        "date": "2026-01-06",
        "agencyCode": "000.00.15.H41",
        "debitAccount": "6111",
        "creditAccount": "1111",
        "amount": 48500000,
        "description": "Chi lương tháng 1",
        "externalReference": "demo-2",
    }


def main(argv: list[str] | None = None) -> None:
    """Serve the SANDBOX accounting service on 127.0.0.1 until interrupted."""
    parser = argparse.ArgumentParser(description="lienthong SANDBOX accounting SOAP service")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: a free one)")
    parser.add_argument("--username", help="require a WS-Security UsernameToken with this user")
    parser.add_argument("--password", default="", help="the token's password")
    parser.add_argument("--seed", action="store_true", help="start with two demo vouchers")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    sandbox = AccountingSandbox(username=args.username, password=args.password, port=args.port)
    if args.seed:
        for voucher in _demo_vouchers():
            sandbox.add_voucher(**voucher)
    with sandbox:
        print(f"SANDBOX accounting service at {sandbox.url} (WSDL: {sandbox.wsdl_url})", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
