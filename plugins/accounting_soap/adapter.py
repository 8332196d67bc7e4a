"""Accounting SOAP adapter: any WSDL-described SOAP service, driven by its WSDL and options.

Features
    * Sends: the message body is the request element of ``send_operation``, as
      a mapping produced it; it is checked against the WSDL's own schema, the
      delivery key goes into ``reference_field`` (the service's external
      reference, so a redelivery is recognised and posted once), and zeep calls
      the operation.
    * Receives: calls ``receive_operation`` with the cursor kept in the store
      (none yet: the argument is left out, or sent as nil, as the WSDL allows),
      turns every ``item_element`` in the answer into a message, hands them to
      the bus, and only then stores the new cursor: ``next_cursor_element`` of
      the answer, or the greatest ``next_cursor_field`` of the items, compared
      as the WSDL types it (a time as a time, a number as a number).
    * Faults by what happens next: a ``Client`` fault is a rejected message
      (dead letter, with the fault code), a ``Server`` fault, a timeout or a
      refused connection is transient (the core retries), a WS-Security failure
      is fatal (a human fixes the credentials).
    * Hardened: zeep runs with ``forbid_dtd`` and ``forbid_entities``; every
      WSDL, XSD and response also goes through ``lienthong.xml.parse``, so a
      DOCTYPE or entity anywhere is refused. A WSDL's imports are loaded only
      from its own origin (the same scheme, host and port; for a file, its own
      folder), so a WSDL cannot make the bus read ``file:///`` or another
      server. Answers (and the WSDL) are read up to ``max_answer_bytes``, and
      within ``timeout`` as a whole, never further.
    * WSDL over HTTP(S) cached in ``var/zeep-cache.sqlite``; an offline WSDL file
      with ``address`` set works without the service publishing its WSDL.

Connection settings
    ``wsdl`` is a URL or a file (relative to the config's folder). ``address``
    overrides the WSDL's ``soap:address``. TLS is verified (against the system's
    CAs, or ``ca_file`` for a private/government CA) unless ``verify_tls: false``,
    which logs a warning; ``client_cert`` (and ``client_key``) give a client
    certificate. A certificate the bus cannot verify or a refused client
    certificate is a configuration error, never retried. ``username``/``password``
    add a WS-Security UsernameToken (``password_digest: true`` for PasswordDigest).

Options
    wsdl, service, port, address, send_operation, reference_field,
    receive_operation, cursor_argument, cursor_start, receive_arguments,
    item_element, item_key, skip_empty_items, next_cursor_element,
    next_cursor_field, message_kind, transient_faults, max_answer_bytes,
    username, password, password_digest, verify_tls, ca_file, client_cert,
    client_key, timeout (see :attr:`AccountingSoapAdapter.options`).
"""

from __future__ import annotations

import copy
import hashlib
import logging
import math
import os
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit
from urllib.request import url2pathname

import requests
import zeep
import zeep.cache
import zeep.exceptions
from lxml import etree
from zeep.wsse.username import UsernameToken

from lienthong import xml
from lienthong.adapter import Adapter, Capability, Inbox, Option, Secret, Services
from lienthong.errors import (
    ConfigError,
    FatalError,
    LienthongError,
    RejectedError,
    TransientError,
)
from lienthong.message import Message
from lienthong.store import Cursors

from . import wsdl as wsdl_doc

SOAP11_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope"
#: WS-Security fault codes (OASIS SOAP Message Security 1.1, section 12).
SECURITY_FAULTS = frozenset(
    {
        "FailedAuthentication",
        "InvalidSecurity",
        "InvalidSecurityToken",
        "FailedCheck",
        "SecurityTokenUnavailable",
        "UnsupportedSecurityToken",
    }
)


class SoapFaultMixin:
    """What a SOAP fault said: its code, its string and the first code in its detail."""

    fault_code: str
    fault_string: str
    detail_code: str | None


class SoapRejected(RejectedError, SoapFaultMixin):
    """The service refused this input (``Client`` fault): it will never succeed as it is."""


class SoapServerFault(TransientError, SoapFaultMixin):
    """The service failed on its side (``Server`` fault): worth retrying later."""


class SoapAuthenticationError(FatalError, SoapFaultMixin):
    """The service refused our WS-Security credentials: every call fails until they are fixed."""


def _fault_error(
    cls: type[Exception], text: str, code: str, string: str, detail: str | None
) -> Any:
    error = cls(text)
    error.fault_code = code  # type: ignore[attr-defined]
    error.fault_string = string  # type: ignore[attr-defined]
    error.detail_code = detail  # type: ignore[attr-defined]
    return error


def _type_name(xsd_type: Any) -> str:
    qname = getattr(xsd_type, "qname", None)
    return f"xs:{qname.localname}" if qname is not None else type(xsd_type).__name__


def _example(xsd_type: Any) -> str:
    """A valid value of a simple type, for a hint."""
    examples = {
        zeep.xsd.DateTime: "2026-01-01T00:00:00+07:00",
        zeep.xsd.Date: "2026-01-01",
        zeep.xsd.Decimal: "0",
        zeep.xsd.Integer: "0",
        zeep.xsd.Float: "0",
        zeep.xsd.Double: "0",
    }
    for kind, example in examples.items():
        if isinstance(xsd_type, kind):
            return example
    return "..."


def _find_element(element: Any, name: str) -> Any:
    """The first element named ``name`` at or below ``element`` in the WSDL's types."""
    queue, seen = [element], set()
    while queue:
        current = queue.pop(0)
        if id(current.type) in seen:
            continue
        seen.add(id(current.type))
        for child_name, child in getattr(current.type, "elements", []):
            if child_name == name:
                return child
            queue.append(child)
    return None


def _not_soap(where: str, status: int, detail: str) -> LienthongError:
    """A non-SOAP answer: a failing service or proxy (5xx) passes; else the address is wrong."""
    if status >= 500 or status in (408, 429):
        return TransientError(
            f"{where}: HTTP {status} without a SOAP answer ({detail}). "
            "Hint: the service or a proxy in front of it is failing"
        )
    return FatalError(
        f"{where}: HTTP {status} without a SOAP answer ({detail}). "
        "Hint: check that 'address' points at the SOAP endpoint"
    )


# zeep's transport logs every envelope whole at DEBUG, WS-Security password
# included: never let it below INFO, whatever level the bus runs at.
logging.getLogger("zeep.transports").setLevel(logging.INFO)
log = logging.getLogger(__name__)


class AnswerTooLarge(Exception):
    """An answer went past ``max_answer_bytes``; the rest was not read."""

    def __init__(self, size: int, limit: int, *, declared: bool = False) -> None:
        said = f"declares {size:,} bytes" if declared else f"went past {limit:,} bytes"
        super().__init__(
            f"the answer {said}, over the limit of {limit:,} bytes (max_answer_bytes); "
            "the rest was not read"
        )


class _Origin:
    """Where a WSDL came from, and so where its imports may come from."""

    def __init__(self, wsdl: str) -> None:
        parts = urlsplit(wsdl)
        self.remote = parts.scheme in ("http", "https")
        if self.remote:
            self.scheme, self.host = parts.scheme, _host(parts)
            self.shown = f"{parts.scheme}://{parts.netloc}"
        else:
            path = url2pathname(parts.path) if parts.scheme == "file" else wsdl
            self.folder = os.path.realpath(os.path.dirname(path))
            self.shown = f"the folder {self.folder}"

    def refusal(self, url: str) -> str | None:
        """Why ``url`` may not be loaded for this WSDL; None when it may."""
        parts = urlsplit(url)
        if self.remote:
            try:
                host = _host(parts)
            except ValueError:
                return "it is not a valid URL"
            if parts.scheme != self.scheme or host != self.host:
                return f"it is not on {self.shown}"
            return None
        if parts.scheme not in ("", "file"):
            return "a WSDL read from a file may import only files"
        path = os.path.realpath(url2pathname(parts.path) if parts.scheme else url)
        if os.path.commonpath([path, self.folder]) != self.folder:
            return f"it is outside {self.shown}"
        return None


def _host(parts: Any) -> tuple[str, int | None]:
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return (parts.hostname or "", parts.port or default)


class _HardenedTransport(zeep.Transport):
    """zeep's transport: imports only from the WSDL's origin, every document checked by the
    bus's parser, every answer read with a cap and a deadline."""

    def __init__(self, wsdl: str, where: str, max_bytes: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.origin = _Origin(wsdl)
        self.where = where
        self.max_bytes = max_bytes
        self.documents: dict[str, bytes] = {}

    def load(self, url: str) -> bytes:
        refusal = self.origin.refusal(url)
        if refusal:
            raise ConfigError(
                [
                    f"{self.where}: the WSDL refers to '{url}', which the bus does not load: "
                    f"{refusal}. A WSDL's imports and includes are loaded only from where the "
                    "WSDL itself came from. Hint: if the service really needs that schema, "
                    "save the WSDL and its schemas in one folder and give that file as 'wsdl'"
                ]
            )
        if urlsplit(url).scheme in ("http", "https", "file"):
            data = super().load(url)
        else:  # a plain path: zeep would read it whole, and expand '~'
            with open(url, "rb") as handle:
                data = handle.read(self.max_bytes + 1)
            if len(data) > self.max_bytes:
                raise AnswerTooLarge(len(data), self.max_bytes)
        xml.parse(data, what=f"WSDL/XSD document '{url}'")
        self.documents[url] = data
        return data

    def _load_remote_data(self, url: str) -> bytes:
        response = self.session.get(url, timeout=self.load_timeout, stream=True)
        try:
            response.raise_for_status()
            return self._read(response, self.load_timeout)
        finally:
            response.close()

    def post(self, address: str, message: Any, headers: Any) -> requests.Response:
        response = self.session.post(
            address, data=message, headers=headers, timeout=self.operation_timeout, stream=True
        )
        try:
            self._read(response, self.operation_timeout)
        except BaseException:
            response.close()
            raise
        return response

    def _read(self, response: requests.Response, timeout: float | None) -> bytes:
        """The whole body, or an error once it passes the cap or the deadline."""
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise AnswerTooLarge(int(declared), self.max_bytes, declared=True)
        deadline = time.monotonic() + (timeout or math.inf)
        chunks, size = [], 0
        for chunk in response.iter_content(64 * 1024):
            size += len(chunk)
            if size > self.max_bytes:
                raise AnswerTooLarge(size, self.max_bytes)
            if time.monotonic() > deadline:
                raise requests.exceptions.ReadTimeout(
                    f"the answer was still coming after {timeout} s ({size:,} bytes so far)"
                )
            chunks.append(chunk)
        data = b"".join(chunks)
        # What requests itself does once it has read a body: zeep reads .content.
        response._content = data
        return data


class _Session(requests.Session):
    """A session whose own ``verify`` wins over ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``.

    Plain requests lets those variables override ``session.verify`` (requests
    issue #3829), which would silently drop ``ca_file`` and ``verify_tls: false``.
    """

    def merge_environment_settings(
        self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> dict[str, Any]:
        if verify is None:
            verify = self.verify
        return super().merge_environment_settings(url, proxies, stream, verify, cert)


class AccountingSoapAdapter(Adapter):
    """Posts to and polls a SOAP service described by its WSDL (e.g. an accounting package)."""

    name = "accounting_soap"
    version = "1"
    summary = "SOAP services from their WSDL: idempotent posting and cursor polling"
    capabilities = frozenset({Capability.SEND, Capability.RECEIVE})
    transient_errors: ClassVar[tuple[type[BaseException], ...]] = (
        TransientError,
        requests.ConnectionError,
        requests.Timeout,
    )
    options = (
        Option(
            "wsdl",
            "URL or file of the service's WSDL",
            example="https://ketoan.stc.example.gov.vn/AccountingService?wsdl",
        ),
        Option("service", "service name in the WSDL; empty: the first", default=""),
        Option("port", "port name in the service; empty: the first", default=""),
        Option(
            "address",
            "endpoint URL overriding the WSDL's soap:address",
            default="",
            example="https://ketoan.stc.example.gov.vn/AccountingService",
        ),
        Option(
            "send_operation",
            "operation called by send(); the message body is its request",
            default="",
            example="PostVoucher",
        ),
        Option(
            "reference_field",
            "dotted path inside the request where the delivery key goes (external reference)",
            default="",
            example="voucher.externalReference",
        ),
        Option(
            "receive_operation",
            "operation polled by receive()",
            default="",
            example="ListVoucherChanges",
        ),
        Option(
            "cursor_argument",
            "argument of receive_operation that takes the cursor",
            default="since",
        ),
        Option(
            "cursor_start", "cursor for the very first poll (empty: from the beginning)", default=""
        ),
        Option(
            "receive_arguments",
            "other fixed arguments of receive_operation",
            default=None,
            type=dict,
            example={"maxResults": 100},
        ),
        Option("item_element", "local name of each received item in the answer", default="voucher"),
        Option(
            "item_key",
            "comma-separated local names of the item's children forming its key",
            default="number,version",
        ),
        Option(
            "skip_empty_items",
            "an item without child elements makes no message (with item_element naming "
            "the page, e.g. vouchers: one message per poll that found something)",
            default=False,
            type=bool,
        ),
        Option(
            "next_cursor_element",
            "local name of the next cursor in the answer",
            default="nextCursor",
        ),
        Option(
            "next_cursor_field",
            "instead of next_cursor_element: a child of each item whose greatest value is "
            "the next cursor, compared as its WSDL type (a time as a time, a number as a "
            "number)",
            default="",
            example="modifiedAt",
        ),
        Option("message_kind", "kind of the received messages", default="accounting.voucher"),
        Option(
            "transient_faults",
            "comma-separated fault codes (local part) worth retrying",
            default="Server,Receiver",
        ),
        Option("username", "WS-Security UsernameToken user; empty: no token", default=""),
        Option(
            "password",
            "WS-Security UsernameToken password",
            default=None,
            secret=True,
            example={"env": "ACCT_STC_PASSWORD"},
        ),
        Option("password_digest", "send the password as PasswordDigest", default=False, type=bool),
        Option("verify_tls", "verify the server's TLS certificate", default=True, type=bool),
        Option(
            "ca_file",
            "PEM file of the CA(s) to trust for the server's certificate instead of the "
            "system's (a private or government CA); relative to the config's folder",
            default="",
            example="certs/ca-chinhphu.pem",
        ),
        Option("client_cert", "PEM client certificate for mutual TLS", default=""),
        Option("client_key", "PEM key of client_cert, when not in the same file", default=""),
        Option(
            "timeout",
            "seconds to wait for the WSDL and for each call",
            default=30.0,
            type=float,
            minimum=0.1,
        ),
        Option(
            "max_answer_bytes",
            "largest answer (or WSDL) read; a bigger one is a fatal error that says so",
            default=xml.DEFAULT_MAX_BYTES,
            type=int,
        ),
    )

    client: zeep.Client
    _service: Any

    def __init__(self, endpoint: str, settings: Mapping[str, Any], services: Services) -> None:
        super().__init__(endpoint, settings, services)
        # The class offers both; this endpoint does what its operations say, so the
        # bus neither polls a send-only endpoint nor routes to a receive-only one.
        self.capabilities = frozenset(
            capability
            for capability, option in (
                (Capability.SEND, "send_operation"),
                (Capability.RECEIVE, "receive_operation"),
            )
            if self.settings.get(option)
        )

    # --- lifecycle ---

    def start(self) -> None:
        """Load the WSDL (cached), bind the service and check the configured operations exist."""
        s = self.settings
        self._cursors = self.services.cursors
        if self._cursors is None and self.services.engine is not None:
            self._cursors = Cursors(self.services.engine)
        if s["receive_operation"] and self._cursors is None:
            raise ConfigError(
                [
                    f"endpoint '{self.endpoint}': receive_operation is set but the bus gave no "
                    "cursor store. Hint: run it inside the bus (store.url set) "
                    "or drop receive_operation"
                ]
            )
        self._transient_faults = {c.strip() for c in s["transient_faults"].split(",") if c.strip()}
        self.client = self._client()
        binding, address = self._binding()
        self._service = self.client.create_service(binding.name, address)
        self._binding_obj = binding
        self._schema = self._lxml_schema()
        for option in ("send_operation", "receive_operation"):
            if s[option]:
                self._operation(option)
        if s["send_operation"] and s["reference_field"]:
            self._check_reference_path()
        if s["receive_operation"]:
            self._plan_cursor()

    def stop(self) -> None:
        """Close the HTTP session (its pooled connections)."""
        transport = getattr(self, "_transport", None)
        if transport is not None:
            transport.session.close()

    def _client(self) -> zeep.Client:
        s = self.settings
        wsdl = str(s["wsdl"])
        if "://" not in wsdl:
            path = Path(wsdl) if Path(wsdl).is_absolute() else self.services.base_dir / wsdl
            if not path.is_file():
                raise ConfigError(
                    [
                        f"endpoint '{self.endpoint}': wsdl file '{path}' does not exist. "
                        "Hint: give a URL ending in ?wsdl or a path relative to the config file"
                    ]
                )
            wsdl = str(path)
        session = _Session()
        session.verify = self._verify()
        cert, key = self._file("client_cert"), self._file("client_key")
        if key and not cert:
            raise ConfigError(
                [
                    f"endpoint '{self.endpoint}': client_key '{key}' is set without "
                    "client_cert. Hint: set client_cert to the PEM certificate of that key"
                ]
            )
        if cert:
            session.cert = (cert, key) if key else cert
        self.services.var_dir.mkdir(parents=True, exist_ok=True)
        cache = zeep.cache.SqliteCache(path=str(self.services.var_dir / "zeep-cache.sqlite"))
        if s["max_answer_bytes"] <= 0:
            raise ConfigError(
                [
                    f"endpoint '{self.endpoint}': max_answer_bytes must be positive, got "
                    f"{s['max_answer_bytes']}. Hint: leave it out for "
                    f"{xml.DEFAULT_MAX_BYTES:,} bytes"
                ]
            )
        self._transport = _HardenedTransport(
            wsdl,
            f"endpoint '{self.endpoint}'",
            s["max_answer_bytes"],
            session=session,
            cache=cache,
            timeout=s["timeout"],
            operation_timeout=s["timeout"],
        )
        # Imports are allowed, from the WSDL's own origin only: the transport checks each.
        settings = zeep.Settings(
            strict=True,
            forbid_dtd=True,
            forbid_entities=True,
            forbid_external=False,
            xml_huge_tree=False,
            raw_response=True,
        )
        wsse = None
        if s["username"]:
            password = s["password"].reveal() if isinstance(s["password"], Secret) else ""
            wsse = UsernameToken(s["username"], password, use_digest=s["password_digest"])
        try:
            return zeep.Client(wsdl, transport=self._transport, settings=settings, wsse=wsse)
        except requests.exceptions.SSLError as exc:
            raise ConfigError([self._tls_problem(f"wsdl '{wsdl}'", exc)]) from exc
        except AnswerTooLarge as exc:
            raise ConfigError(
                [
                    f"endpoint '{self.endpoint}': wsdl '{wsdl}': {exc}. Hint: check that it "
                    "is the service's WSDL, or raise max_answer_bytes"
                ]
            ) from exc
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise TransientError(
                f"endpoint '{self.endpoint}': wsdl '{wsdl}' did not answer: {exc}. "
                "Hint: check the service is up and the URL, or use an offline WSDL file "
                "with address"
            ) from exc
        except (
            xml.XmlRejected,
            zeep.exceptions.Error,
            etree.XMLSyntaxError,
            requests.RequestException,
        ) as exc:
            raise ConfigError(
                [
                    f"endpoint '{self.endpoint}': wsdl '{wsdl}' cannot be used: {exc}. "
                    "Hint: check that the URL or file is the service's WSDL"
                ]
            ) from exc

    def _file(self, option: str) -> str:
        """The option's file, relative to the config's folder; '' when unset."""
        value = str(self.settings[option] or "")
        if not value:
            return ""
        path = Path(value) if Path(value).is_absolute() else self.services.base_dir / value
        if not path.is_file():
            raise ConfigError(
                [
                    f"endpoint '{self.endpoint}': {option} file '{path}' does not exist. "
                    "Hint: give a PEM file, absolute or relative to the config file"
                ]
            )
        return str(path)

    def _verify(self) -> bool | str:
        """What the server's certificate is checked with: the CA file, the system's, nothing."""
        ca_file = self._file("ca_file")
        if self.settings["verify_tls"]:
            return ca_file or True
        if ca_file:
            raise ConfigError(
                [
                    f"endpoint '{self.endpoint}': ca_file '{ca_file}' is set but verify_tls "
                    "is false, so it would be ignored. Hint: drop verify_tls: false"
                ]
            )
        log.warning(
            "endpoint '%s': TLS verification is off (verify_tls: false): the service's "
            "certificate is not checked, so anyone on the path can read and change the "
            "traffic. Hint: set ca_file to the service's CA instead",
            self.endpoint,
        )
        return False

    def _tls_problem(self, what: str, exc: requests.exceptions.SSLError) -> str:
        """Say why the TLS handshake failed and which option fixes it."""
        text = str(exc)
        where = f"endpoint '{self.endpoint}': {what}"
        if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
            return (
                f"{where}: the service's TLS certificate cannot be verified: {text}. "
                "Hint: set ca_file to the PEM file of the CA that signed it (a private or "
                "government CA), or fix the address if it is not the service's; "
                "verify_tls: false only for a test service"
            )
        if not self.settings["client_cert"]:
            return (
                f"{where}: the TLS handshake failed: {text}. Hint: if the service requires "
                "a client certificate, set client_cert (and client_key) to the PEM files "
                "it was issued"
            )
        return (
            f"{where}: the TLS handshake failed: {text}. Hint: check that client_cert/"
            "client_key are the certificate the service expects, signed by a CA it trusts, "
            "and not expired"
        )

    def _binding(self) -> tuple[Any, str]:
        s = self.settings
        services = self.client.wsdl.services
        name = s["service"] or next(iter(services), "")
        if name not in services:
            raise ConfigError(
                [
                    f"endpoint '{self.endpoint}': service '{name}' is not in the WSDL. "
                    f"Hint: one of {', '.join(services) or 'none'}"
                ]
            )
        ports = services[name].ports
        port_name = s["port"] or next(iter(ports), "")
        if port_name not in ports:
            raise ConfigError(
                [
                    f"endpoint '{self.endpoint}': port '{port_name}' is not in service '{name}'. "
                    f"Hint: one of {', '.join(ports) or 'none'}"
                ]
            )
        port = ports[port_name]
        return port.binding, s["address"] or port.binding_options["address"]

    def _lxml_schema(self) -> etree.XMLSchema | None:
        # The exact schema catches what zeep's lax parsing lets through (patterns, bad numbers).
        # A WSDL whose types span several schemas or imports is checked by zeep alone.
        for data in self._transport.documents.values():
            tree = xml.parse(data)
            if tree.getroot().tag == f"{{{wsdl_doc.WSDL_NS}}}definitions":
                try:
                    return wsdl_doc.embedded_schema(tree)
                except ConfigError:
                    return None
        return None

    def _operation(self, option: str) -> Any:
        name = self.settings[option]
        try:
            return self._binding_obj.get(name)
        except ValueError as exc:
            known = ", ".join(sorted(self._binding_obj._operations))
            raise ConfigError(
                [
                    f"endpoint '{self.endpoint}': {option} '{name}' is not an operation of binding "
                    f"{self._binding_obj.name}. Hint: one of {known}"
                ]
            ) from exc

    def _check_reference_path(self) -> None:
        element = self._operation("send_operation").input.body
        xsd_type = element.type
        for part in self.settings["reference_field"].split("."):
            children = dict(getattr(xsd_type, "elements", []))
            if part not in children:
                raise ConfigError(
                    [
                        f"endpoint '{self.endpoint}': reference_field "
                        f"'{self.settings['reference_field']}' has no '{part}' in {element.qname}. "
                        f"Hint: a dotted path of element names; here one of {sorted(children)}"
                    ]
                )
            child = children[part]
            xsd_type = child.type

    def _plan_cursor(self) -> None:
        """Decide what an empty cursor is sent as, and how item cursors compare, from the WSDL."""
        s = self.settings
        operation = self._operation("receive_operation")
        arguments = dict(getattr(operation.input.body.type, "elements", []))
        name = s["cursor_argument"]
        if name not in arguments:
            raise ConfigError(
                [
                    f"endpoint '{self.endpoint}': cursor_argument '{name}' is not an argument "
                    f"of {operation.name}. Hint: one of {sorted(arguments)}"
                ]
            )
        argument = arguments[name]
        # None leaves an optional argument out and sends a nillable one as xsi:nil.
        self._empty_cursor: str | None = None
        if argument.min_occurs and not argument.nillable:
            if isinstance(argument.type, zeep.xsd.String):
                self._empty_cursor = ""
            elif not s["cursor_start"]:
                raise ConfigError(
                    [
                        f"endpoint '{self.endpoint}': {operation.name} requires '{name}' "
                        f"({_type_name(argument.type)}), which can be neither empty nor nil, "
                        "so the first poll needs a cursor. Hint: set cursor_start to where "
                        f"the first poll starts, e.g. {_example(argument.type)!r}"
                    ]
                )
        self._cursor_type: Any = None
        if s["next_cursor_field"]:
            self._cursor_type = self._item_field_type(operation)

    def _item_field_type(self, operation: Any) -> Any:
        s = self.settings
        item = _find_element(operation.output.body, s["item_element"])
        if item is None:
            raise ConfigError(
                [
                    f"endpoint '{self.endpoint}': next_cursor_field needs the type of the "
                    f"items, but the answer of {operation.name} has no element "
                    f"'{s['item_element']}' (item_element) in the WSDL. Hint: check "
                    "item_element, or use next_cursor_element"
                ]
            )
        fields = dict(getattr(item.type, "elements", []))
        field = fields.get(s["next_cursor_field"])
        if field is None or not hasattr(field.type, "pythonvalue"):
            raise ConfigError(
                [
                    f"endpoint '{self.endpoint}': next_cursor_field '{s['next_cursor_field']}' "
                    f"is not a simple child of '{s['item_element']}' in the WSDL. "
                    f"Hint: one of {sorted(fields)}"
                ]
            )
        return field.type

    # --- send ---

    def send(self, message: Message, *, key: str) -> None:
        """Post the message body (the operation's request element) with ``key`` as its reference."""
        if not self.settings["send_operation"]:
            raise FatalError(
                f"endpoint '{self.endpoint}' has no send_operation. Hint: set it, e.g. PostVoucher"
            )
        operation = self._operation("send_operation")
        element = operation.input.body
        root = message.tree(max_bytes=self.services.max_message_bytes).getroot()
        if root.tag != element.qname.text:
            raise RejectedError(
                f"endpoint '{self.endpoint}': message {message.id} body is <{root.tag}>, but "
                f"{operation.name} takes <{element.qname.text}>. Hint: check the route's mapping"
            )
        if self._schema is not None and not self._schema.validate(root):
            problems = "; ".join(
                f"line {e.line}: {e.message}"
                for e in self._schema.error_log  # type: ignore[attr-defined]
            )
            raise RejectedError(
                f"endpoint '{self.endpoint}': message {message.id} does not match the WSDL types "
                f"of {operation.name}: {problems}. Hint: fix the route's mapping"
            )
        try:
            value = element.type.parse_xmlelement(root, self.client.wsdl.types)
        except (zeep.exceptions.Error, ValueError) as exc:
            raise RejectedError(
                f"endpoint '{self.endpoint}': message {message.id} does not fit {operation.name}: "
                f"{exc}. Hint: fix the route's mapping"
            ) from exc
        if self.settings["reference_field"]:
            self._set_reference(value, key, message)
        arguments = {name: value[name] for name in value}
        self._call(operation.name, arguments, what=f"message {message.id}")

    def _set_reference(self, value: Any, key: str, message: Message) -> None:
        *parents, last = self.settings["reference_field"].split(".")
        target = value
        for part in parents:
            target = target[part]
            if target is None:
                raise RejectedError(
                    f"endpoint '{self.endpoint}': message {message.id} has no '{part}' to hold "
                    f"the reference '{self.settings['reference_field']}'. Hint: fix the mapping"
                )
        target[last] = key

    # --- receive ---

    def receive(self, inbox: Inbox) -> int:
        """Poll once from the stored cursor; accept the items, then move the cursor."""
        s = self.settings
        if not s["receive_operation"] or self._cursors is None:
            raise FatalError(
                f"endpoint '{self.endpoint}' has no receive_operation. "
                "Hint: set it, e.g. ListVoucherChanges"
            )
        cursor_name = f"{self.endpoint}:{s['receive_operation']}"
        cursor = self._cursors.get(cursor_name) or s["cursor_start"]
        arguments = dict(s["receive_arguments"] or {})
        arguments[s["cursor_argument"]] = cursor or self._empty_cursor
        answer = self._call(s["receive_operation"], arguments, what="poll")
        items = answer.xpath(".//*[local-name() = $n]", n=s["item_element"])
        if s["skip_empty_items"]:
            items = [item for item in items if len(item)]
        messages = [self._message(item) for item in items]
        next_cursor = self._next_cursor(answer, items, cursor)
        if messages:
            inbox.accept(messages)
        if next_cursor and next_cursor != cursor:
            self._cursors.set(cursor_name, next_cursor)
        return len(messages)

    def _next_cursor(self, answer: etree._Element, items: list[Any], cursor: str) -> str:
        """The answer's next cursor element, or the greatest item field (never going back)."""
        s = self.settings
        if self._cursor_type is None:
            found = answer.xpath(".//*[local-name() = $n]", n=s["next_cursor_element"])
            return (found[0].text or "").strip() if found else ""
        best, best_text = self._cursor_value(cursor), cursor
        for item in items:
            found = item.xpath("*[local-name() = $n]", n=s["next_cursor_field"])
            text = (found[0].text or "").strip() if found else ""
            value = self._cursor_value(text)
            if value is None:
                if text:
                    log.warning(
                        "endpoint %s: item field %s %r is not a valid %s; it does not move "
                        "the cursor",
                        self.endpoint,
                        s["next_cursor_field"],
                        text,
                        _type_name(self._cursor_type),
                        extra={"endpoint": self.endpoint},
                    )
                continue
            if best is None or value > best:
                best, best_text = value, text
        return best_text

    def _cursor_value(self, text: str) -> Any:
        """``text`` as its WSDL type says (a naive time taken as UTC); None if it is not one."""
        if not text:
            return None
        try:
            value = self._cursor_type.pythonvalue(text)
        except (ValueError, ArithmeticError, TypeError):
            return None
        if isinstance(value, datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value

    def _message(self, item: etree._Element) -> Message:
        body = xml.serialize(copy.deepcopy(item))
        parts = []
        for name in self.settings["item_key"].split(","):
            found = item.xpath("*[local-name() = $n]", n=name.strip())
            if found and (found[0].text or "").strip():
                parts.append(found[0].text.strip())
        key = "/".join(parts) or hashlib.sha256(body).hexdigest()
        return Message(
            body=body, kind=self.settings["message_kind"], source=self.endpoint, source_key=key
        )

    # --- the call and its answer ---

    def _call(self, operation: str, arguments: dict[str, Any], *, what: str) -> etree._Element:
        where = f"endpoint '{self.endpoint}' {operation}"
        try:
            response = getattr(self._service, operation)(**arguments)
        except requests.Timeout as exc:
            raise TransientError(
                f"{where} ({what}): no answer within {self.settings['timeout']} s. "
                "Hint: check 'lienthong status'; raise timeout if the service is slow"
            ) from exc
        except requests.exceptions.SSLError as exc:
            raise FatalError(self._tls_problem(f"{operation} ({what})", exc)) from exc
        except requests.ConnectionError as exc:
            raise TransientError(
                f"{where} ({what}): cannot connect: {exc}. "
                "Hint: check the service is up and 'address'"
            ) from exc
        except AnswerTooLarge as exc:
            raise FatalError(
                f"{where} ({what}): {exc}. Hint: ask for smaller pages (e.g. maxResults in "
                "receive_arguments), or raise max_answer_bytes if such answers are expected"
            ) from exc
        except (zeep.exceptions.Error, TypeError, ValueError) as exc:
            raise RejectedError(f"{where} ({what}): arguments do not fit the WSDL: {exc}") from exc
        return self._answer(response, where)

    def _answer(self, response: requests.Response, where: str) -> etree._Element:
        status, content = response.status_code, response.content
        lowered = content[:4096].lower()
        if (b"<!doctype" in lowered or b"<!entity" in lowered) and status < 500:
            raise FatalError(
                f"{where}: the service answered with a DTD or entity declaration (HTTP {status}), "
                "which the bus refuses (XXE, entity expansion). Hint: this is not a SOAP service "
                "the bus can trust; check 'address' and talk to its operator"
            )
        try:
            envelope = xml.parse(content, what=f"{where} answer").getroot()
        except xml.XmlRejected as exc:
            raise _not_soap(where, status, str(exc)) from exc
        namespace = etree.QName(envelope).namespace
        body = envelope.find(f"{{{namespace}}}Body")
        if namespace not in (SOAP11_ENV, SOAP12_ENV) or body is None:
            raise _not_soap(where, status, f"the answer is <{envelope.tag}>")
        fault = body.find(f"{{{namespace}}}Fault")
        if fault is not None:
            raise self._fault(fault, namespace, where)
        if status != 200:
            raise TransientError(f"{where}: HTTP {status} with a SOAP answer that is not a fault")
        children = [c for c in body if isinstance(c.tag, str)]
        if not children:
            raise FatalError(f"{where}: the SOAP Body of the answer is empty")
        return children[0]

    def _fault(self, fault: etree._Element, namespace: str, where: str) -> Exception:
        if namespace == SOAP11_ENV:
            code = (fault.findtext("faultcode") or "").strip()
            string = (fault.findtext("faultstring") or "").strip()
            detail = fault.find("detail")
        else:
            code = (fault.findtext(f"{{{namespace}}}Code/{{{namespace}}}Value") or "").strip()
            string = (fault.findtext(f"{{{namespace}}}Reason/{{{namespace}}}Text") or "").strip()
            detail = fault.find(f"{{{namespace}}}Detail")
        leaves = (
            [
                e
                for e in detail.iter()
                if isinstance(e.tag, str) and len(e) == 0 and (e.text or "").strip()
            ]
            if detail is not None
            else []
        )
        detail_code = leaves[0].text.strip() if leaves else None
        local = code.rpartition(":")[2]
        family = local.split(".")[0]
        shown = f"{code}" + (f" [{detail_code}]" if detail_code else "")
        if local in SECURITY_FAULTS:
            return _fault_error(
                SoapAuthenticationError,
                f"{where}: WS-Security refused (fault {shown}): {string}. Hint: check the "
                f"endpoint's username and password (and password_digest)",
                code,
                string,
                detail_code,
            )
        if family in self._transient_faults:
            return _fault_error(
                SoapServerFault,
                f"{where}: server fault {shown}: {string}",
                code,
                string,
                detail_code,
            )
        if family in ("VersionMismatch", "MustUnderstand"):
            return _fault_error(
                FatalError,
                f"{where}: protocol fault {shown}: {string}. Hint: "
                "the service expects another SOAP version or headers",
                code,
                string,
                detail_code,
            )
        return _fault_error(
            SoapRejected,
            f"{where}: the service rejected the request (fault {shown}): {string}",
            code,
            string,
            detail_code,
        )
