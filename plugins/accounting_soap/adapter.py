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

Parts
    :mod:`.connection` makes the settings a zeep client over :mod:`.transport`;
    :mod:`.request` builds send's request, :mod:`.cursor` says where a poll
    resumes, :mod:`.envelope` reads each answer and its faults.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping
from typing import Any, ClassVar

import requests
import zeep
import zeep.exceptions
from lxml import etree

from lienthong import xml
from lienthong.adapter import Adapter, Capability, Inbox, Option, Services
from lienthong.errors import ConfigError, FatalError, RejectedError, TransientError
from lienthong.message import Message
from lienthong.store import Cursors

from . import envelope, request
from .connection import Connection
from .cursor import CursorPlan
from .envelope import SoapAuthenticationError, SoapFaultMixin, SoapRejected, SoapServerFault
from .transport import AnswerTooLarge

# The errors a caller catches are imported from here, where they always were.
__all__ = [
    "AccountingSoapAdapter",
    "SoapAuthenticationError",
    "SoapFaultMixin",
    "SoapRejected",
    "SoapServerFault",
]


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
        self._connection = Connection(self.endpoint, s, self.services)
        self.client = self._connection.open()
        binding, address = self._connection.bind(self.client)
        self._service = self.client.create_service(binding.name, address)
        self._binding_obj = binding
        self._schema = self._connection.exact_schema()
        for option in ("send_operation", "receive_operation"):
            if s[option]:
                self._operation(option)
        if s["send_operation"] and s["reference_field"]:
            request.check_reference_path(
                self.endpoint, self._operation("send_operation").input.body, s["reference_field"]
            )
        if s["receive_operation"]:
            self._cursor = CursorPlan.of(self.endpoint, s, self._operation("receive_operation"))

    def stop(self) -> None:
        """Close the HTTP session (its pooled connections)."""
        connection = getattr(self, "_connection", None)
        if connection is not None:
            connection.close()

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

    # --- send ---

    def send(self, message: Message, *, key: str) -> None:
        """Post the message body (the operation's request element) with ``key`` as its reference."""
        if not self.settings["send_operation"]:
            raise FatalError(
                f"endpoint '{self.endpoint}' has no send_operation. Hint: set it, e.g. PostVoucher"
            )
        operation = self._operation("send_operation")
        root = message.tree(max_bytes=self.services.max_message_bytes).getroot()
        arguments = request.arguments(
            self.endpoint,
            operation,
            root,
            message,
            schema=self._schema,
            types=self.client.wsdl.types,
            reference_field=self.settings["reference_field"],
            key=key,
        )
        self._call(operation.name, arguments, what=f"message {message.id}")

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
        arguments[s["cursor_argument"]] = cursor or self._cursor.empty
        answer = self._call(s["receive_operation"], arguments, what="poll")
        items = answer.xpath(".//*[local-name() = $n]", n=s["item_element"])
        if s["skip_empty_items"]:
            items = [item for item in items if len(item)]
        messages = [self._message(item) for item in items]
        next_cursor = self._cursor.next_cursor(answer, items, cursor)
        if messages:
            inbox.accept(messages)
        if next_cursor and next_cursor != cursor:
            self._cursors.set(cursor_name, next_cursor)
        return len(messages)

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
            raise FatalError(self._connection.tls_problem(f"{operation} ({what})", exc)) from exc
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
        return envelope.read(response, where, self._transient_faults)
