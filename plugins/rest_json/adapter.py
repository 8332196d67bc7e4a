"""JSON/REST adapter: any JSON-over-HTTP system, described by config, not code.

Features:
- send: the message is the route's mapping output in the XPath 3.1 JSON vocabulary
  (``<map xmlns="http://www.w3.org/2005/xpath-functions">``); it is written as
  JSON (``fn:xml-to-json``), checked against the operation's JSON Schema if one
  is given, completed with ``body_fields``, the login token and the delivery key
  (``idempotency_header`` or ``idempotency_field``), and sent by the operation
  whose ``kind`` matches the message (else ``send_operation``): method, path
  template, query, headers.
- receive: ``receive_operation`` is polled from the cursor kept in the store; the
  items at ``items_path`` each become a message (``fn:json-to-xml``, so XSLT 1.0
  mappings read them), handed to the bus, and only then is the cursor moved:
  to the answer's ``cursor_path``, or to the greatest ``cursor_field`` among the
  items (items at that same value already handed over are remembered, so none
  comes twice and none is skipped). Pages follow a next link, a page number or
  a cursor, at most ``max_pages`` per poll.
- outcomes: 2xx is done; a 4xx is a rejection (dead letter) carrying the body's
  own error text; 401/403 log in again once, then stop the endpoint (fatal);
  429, 408 and 5xx are retried no sooner than their ``Retry-After``; the
  system's own result code (``error_path``, e.g. ``error_code``) is mapped by
  ``error_ok``, ``error_done`` (already there: a redelivery), ``error_transient``
  and ``error_auth``, anything else dead-letters the message with the code.
- authentication: none, basic, a fixed bearer token, a token from a login call
  (``login``: a session; ``oauth2``: client credentials) renewed before expiry
  and after a 401, an API key header, HMAC-signed headers. Secrets come from
  ``{env:}``/``{file:}`` only and are scrubbed from every error.
- hardened: answers size-capped (``Content-Length`` checked before reading),
  read within ``timeout``, strict UTF-8, nesting, number length and duplicate
  keys limited; a redirect or a next link to another host is refused; TLS is
  verified (``ca_file``, client certificates), and ``REQUESTS_CA_BUNDLE`` cannot
  change that (urllib3 reads no such variable).

Connection settings: ``base_url``; every operation path is relative to it.

Options: see :class:`RestJsonAdapter.options`; the guide is docs/rest.md.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar

from lienthong.adapter import Adapter, Capability, Inbox, Services
from lienthong.errors import ConfigError, FatalError, RejectedError, TransientError
from lienthong.message import Message
from lienthong.store import Cursors

from . import config as endpoint_config
from .caller import Caller
from .client import Answer, HttpClient, Request
from .options import OPTIONS
from .poller import Poller
from .sender import Sender


class RestJsonAdapter(Adapter):
    """Sends to and polls a JSON/REST system described by its endpoint's config.

    The parts, each in its module: the options (``options.py``), the config read
    at start (``config.py``), the call and its answer (``caller.py``), the send
    path (``sender.py``) and the poll (``poller.py``).
    """

    name = "rest_json"
    version = "1"
    summary = "JSON/REST systems from config: operations, cursor polls, token auth, error codes"
    capabilities = frozenset({Capability.SEND, Capability.RECEIVE})
    transient_errors: ClassVar[tuple[type[BaseException], ...]] = (TransientError,)
    options = OPTIONS

    def __init__(self, endpoint: str, settings: Mapping[str, Any], services: Services) -> None:
        super().__init__(endpoint, settings, services)
        operations = self.settings.get("operations") or {}
        sends = bool(self.settings.get("send_operation")) or any(
            isinstance(op, Mapping) and op.get("kind") for op in operations.values()
        )
        # The class offers both; this endpoint does what its config says.
        self.capabilities = frozenset(
            c
            for c, on in (
                (Capability.SEND, sends),
                (Capability.RECEIVE, bool(self.settings.get("receive_operation"))),
            )
            if on
        )
        self.where = f"endpoint '{endpoint}'"
        self._quiet_until = 0.0
        self._poller: Poller | None = None

    # --- lifecycle ---

    def start(self) -> None:
        """Check the whole config (every problem at once) and build the client and the auth."""
        s = self.settings
        config = endpoint_config.read(self.where, s, self.services, transport=self._transport)
        self.auth = config.auth
        cursors = self.services.cursors
        if cursors is None and self.services.engine is not None:
            cursors = Cursors(self.services.engine)
        if s["receive_operation"] and cursors is None:
            raise ConfigError(
                [
                    f"{self.where}: receive_operation is set but the bus gave no cursor store. "
                    "Hint: run it inside the bus, or drop receive_operation"
                ]
            )
        self.client = HttpClient(
            timeout=s["timeout"], max_bytes=s["max_response_bytes"], proxy=s["proxy"], **config.tls
        )
        self._caller = Caller(config, self.client)
        self._sender = Sender(
            config, self._caller, max_message_bytes=self.services.max_message_bytes
        )
        if s["receive_operation"] and cursors is not None:
            self._poller = Poller(self.endpoint, config, self._caller, cursors)

    def stop(self) -> None:
        """Close the pooled connections."""
        client = getattr(self, "client", None)
        if client is not None:
            client.close()

    def _transport(self, request: Request, what: str) -> Answer:
        """The login call's way out: through the caller, built after the auth that needs it."""
        return self._caller.transport(request, what)

    # --- send ---

    def send(self, message: Message, *, key: str) -> None:
        """Send the message (JSON in the XPath 3.1 vocabulary) by its operation, once per key."""
        self._sender.send(message, key=key)

    # --- receive ---

    def receive(self, inbox: Inbox) -> int:
        """Poll from the stored position; hand each page to the bus, then move the position."""
        s = self.settings
        if not s["receive_operation"] or self._poller is None:
            raise FatalError(
                f"{self.where} has no receive_operation. Hint: set it, or do not poll this endpoint"
            )
        if time.monotonic() < self._quiet_until:
            return 0  # the system asked us to wait (Retry-After)
        try:
            return self._poller.poll(inbox)
        except TransientError as exc:
            if exc.retry_after:
                self._quiet_until = time.monotonic() + exc.retry_after
            raise
        except RejectedError as exc:
            # An error code in a poll's answer: no message to park; the system must be looked at.
            raise FatalError(str(exc)) from exc
