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

import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote, urlencode, urljoin

import jsonschema
import jsonschema.exceptions

from lienthong import jsonxml
from lienthong.adapter import (
    INVALID_HEADER,
    Adapter,
    Capability,
    Inbox,
    Option,
    Secret,
    Services,
)
from lienthong.errors import (
    ConfigError,
    FatalError,
    LienthongError,
    RejectedError,
    TransientError,
)
from lienthong.message import Message
from lienthong.store import Cursors

from . import auth as auth_schemes
from . import operations
from .client import Answer, AnswerRefused, CallFailed, HttpClient, Request, origin
from .operations import Operation
from .paths import JsonPath, Missing, PathError, scalar_text
from .position import Position, compare, query_param, with_query_param

log = logging.getLogger(__name__)

AUTH_SCHEMES = ("none", "basic", "bearer", "login", "oauth2", "api_key", "hmac")
PAGINATION = ("none", "next_link", "page", "cursor")
INVALID_CHARACTERS = ("replace", "reject", "escape")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
DEFAULT_HMAC_MESSAGE = "{method}\n{path}\n{timestamp}\n{nonce}\n{body_sha256}"
DEFAULT_HMAC_HEADERS = {
    "X-Key-Id": "{key_id}",
    "X-Timestamp": "{timestamp}",
    "X-Nonce": "{nonce}",
    "X-Signature": "{signature}",
}


class _AuthRefused(Exception):
    """401/403 or an ``error_auth`` code: the caller may log in again once."""


class _Resend(Exception):
    """A code listed in the operation's ``resend_with``: call once more with these fields."""

    def __init__(self, code: str, fields: Mapping[str, Any], text: str) -> None:
        super().__init__(code)
        self.code = code
        self.fields = fields
        self.text = text


def _codes(text: str) -> frozenset[str]:
    return frozenset(c.strip() for c in text.split(",") if c.strip())


class RestJsonAdapter(Adapter):
    """Sends to and polls a JSON/REST system described by its endpoint's config."""

    name = "rest_json"
    version = "1"
    summary = "JSON/REST systems from config: operations, cursor polls, token auth, error codes"
    capabilities = frozenset({Capability.SEND, Capability.RECEIVE})
    transient_errors: ClassVar[tuple[type[BaseException], ...]] = (TransientError,)
    options = (
        Option(
            "base_url",
            "the system's URL; operation paths follow it",
            example="https://motcua.example.gov.vn/api",
        ),
        Option(
            "operations",
            "the calls: name -> {method, path, query, headers, kind, idempotency_header, "
            "idempotency_field, request_schema, response_schema, done_statuses, body}",
            type=dict,
            example={"add-step": {"method": "POST", "path": "/dossiers/{body.dossierNo}/steps"}},
        ),
        Option(
            "send_operation", "operation send() uses when none names the message's kind", default=""
        ),
        Option(
            "receive_operation",
            "operation receive() polls (empty: this endpoint only sends)",
            default="",
        ),
        Option(
            "items_path",
            "JSON path of the item list in a poll's answer (empty: the answer is the list)",
            default="",
        ),
        Option(
            "item_key",
            "comma-separated JSON paths in an item forming its source key (empty: a digest of it)",
            default="",
            example="dossierNo,updatedAt",
        ),
        Option("message_kind", "kind of the received messages", default="json"),
        Option(
            "cursor_param", "query parameter carrying the cursor (empty: no cursor)", default=""
        ),
        Option("cursor_path", "JSON path of the next cursor in the answer", default=""),
        Option("cursor_field", "item field whose greatest value is the next cursor", default=""),
        Option(
            "cursor_start", "cursor of the very first poll (empty: from the beginning)", default=""
        ),
        Option("pagination", "none, next_link, page or cursor", default="none"),
        Option(
            "next_path",
            "JSON path of the next link (next_link) or next page's cursor (cursor)",
            default="",
        ),
        Option("more_path", "JSON path of a 'more pages' flag in the answer", default=""),
        Option(
            "page_param", "query parameter of the page number (pagination: page)", default="page"
        ),
        Option("page_start", "number of the first page", default=1, type=int),
        Option("page_size_param", "query parameter of the page size (empty: not sent)", default=""),
        Option("page_size", "items asked per page", default=100, type=int),
        Option("max_pages", "pages read per poll at most: a bounded batch", default=10, type=int),
        Option(
            "item_schema",
            "JSON Schema file each received item must satisfy (else parked)",
            default="",
        ),
        Option("auth", "none, basic, bearer, login, oauth2, api_key or hmac", default="none"),
        Option("username", "user for basic or login", default=""),
        Option(
            "password",
            "password for basic or login",
            default=None,
            secret=True,
            example={"env": "PORTAL_PASSWORD"},
        ),
        Option("token", "the fixed token of auth: bearer", default=None, secret=True),
        Option("client_id", "OAuth2 client id (the platform's app name)", default=""),
        Option("client_secret", "OAuth2 client secret", default=None, secret=True),
        Option(
            "client_auth",
            "OAuth2: client credentials in a Basic header (basic) or the form (post)",
            default="basic",
        ),
        Option("scope", "OAuth2 scope (empty: none asked)", default=""),
        Option(
            "login_path",
            "the login or token call: a path after base_url, or a full URL",
            default="",
            example="/oauth2/token",
        ),
        Option(
            "login_body",
            "JSON body of a login call; {username} and {password} are filled in",
            default=None,
            type=dict,
            example={"username": "{username}", "password": "{password}"},
        ),
        Option("token_path", "JSON path of the token in the login answer", default="access_token"),
        Option(
            "expires_path",
            "JSON path of the token's lifetime in seconds (empty: token_ttl)",
            default="expires_in",
        ),
        Option(
            "token_ttl",
            "seconds a token lives when the login answer does not say",
            default=3600.0,
            type=float,
        ),
        Option(
            "token_field",
            "send the token in this body field (e.g. session) instead of a header",
            default="",
        ),
        Option("token_header", "header that carries the token", default="Authorization"),
        Option("token_prefix", "text before the token in its header", default="Bearer "),
        Option("api_key", "the key of auth: api_key", default=None, secret=True),
        Option("api_key_header", "header carrying the API key", default="X-API-Key"),
        Option("hmac_key_id", "key id sent with HMAC signatures", default=""),
        Option("hmac_secret", "shared secret of HMAC signatures", default=None, secret=True),
        Option("hmac_message", "template of the signed text", default=DEFAULT_HMAC_MESSAGE),
        Option(
            "hmac_headers",
            "headers carrying the signature: name -> template",
            default=None,
            type=dict,
        ),
        Option("hmac_encoding", "signature encoding: hex or base64", default="hex"),
        Option("hmac_algorithm", "sha256 or sha512", default="sha256"),
        Option(
            "body_fields",
            "fields added to every JSON body sent (e.g. madonvi)",
            default=None,
            type=dict,
        ),
        Option(
            "error_path", "JSON path of the system's own result code (e.g. error_code)", default=""
        ),
        Option("error_ok", "result codes meaning success", default="0,00"),
        Option("error_message_path", "JSON path of the system's error text", default="message"),
        Option(
            "error_done",
            "codes meaning 'already there' (a repeat): the delivery is done",
            default="",
        ),
        Option("error_transient", "codes worth retrying later", default=""),
        Option(
            "error_auth", "codes meaning the session expired: log in again, retry once", default=""
        ),
        Option(
            "duplicate_keys",
            "received JSON with a repeated key: reject, use-first or retain",
            default="reject",
        ),
        Option(
            "invalid_characters",
            "characters XML cannot hold: replace (U+FFFD), reject or escape",
            default="replace",
        ),
        Option("max_response_bytes", "largest answer read", default=10 * 1024 * 1024, type=int),
        Option("json_max_depth", "deepest nesting accepted in JSON", default=64, type=int),
        Option("json_max_number_chars", "longest number literal accepted", default=100, type=int),
        Option(
            "max_retry_after",
            "longest Retry-After honoured, in seconds",
            default=3600.0,
            type=float,
        ),
        Option(
            "timeout", "seconds for a whole call, connecting included", default=30.0, type=float
        ),
        Option("verify_tls", "verify the server's TLS certificate", default=True, type=bool),
        Option("ca_file", "PEM file of the CA(s) to trust instead of the system's", default=""),
        Option("client_cert", "PEM client certificate for mutual TLS", default=""),
        Option("client_key", "PEM key of client_cert, when not in the same file", default=""),
        Option("proxy", "HTTP(S) proxy URL (empty: direct)", default=""),
    )

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

    # --- lifecycle ---

    def start(self) -> None:
        """Check the whole config (every problem at once) and build the client and the auth."""
        s = self.settings
        problems: list[str] = []
        self.base_url = str(s["base_url"]).rstrip("/")
        if origin(self.base_url)[0] not in ("http", "https") or not origin(self.base_url)[1]:
            problems.append(f"base_url {s['base_url']!r} is not an http(s) URL")
        for option, allowed in (
            ("auth", AUTH_SCHEMES),
            ("pagination", PAGINATION),
            ("duplicate_keys", jsonxml.DUPLICATES),
            ("invalid_characters", INVALID_CHARACTERS),
            ("client_auth", ("basic", "post")),
            ("hmac_encoding", ("hex", "base64")),
            ("hmac_algorithm", ("sha256", "sha512")),
        ):
            if s[option] not in allowed:
                problems.append(f"{option} is {s[option]!r}; one of {', '.join(allowed)}")
        self.operations = operations.parse(
            s["operations"],
            receive_operation=s["receive_operation"],
            load_schema=self._schema,
            problems=problems,
        )
        for option in ("send_operation", "receive_operation"):
            if s[option] and s[option] not in self.operations:
                problems.append(
                    f"{option} {s[option]!r} is not in operations "
                    f"({', '.join(self.operations) or 'none'})"
                )
        self.paths = self._paths(problems)
        self._check_receive(problems)
        self.item_validator = self._schema(s["item_schema"], "item_schema", problems)
        self.auth = self._auth(problems)
        self.limits = jsonxml.Limits(
            max_bytes=s["max_response_bytes"],
            max_depth=s["json_max_depth"],
            max_number_chars=s["json_max_number_chars"],
        )
        self.body_fields = dict(s["body_fields"] or {})
        self.error_ok = _codes(s["error_ok"])
        self.error_done = _codes(s["error_done"])
        self.error_transient = _codes(s["error_transient"])
        self.error_auth = _codes(s["error_auth"])
        for option in (o.name for o in self.options if o.secret):
            value = s[option]
            if isinstance(value, Secret) and value.origin == "config":
                problems.append(
                    f"{option} is written in the config file. Hint: secrets come only from the "
                    f"environment or a file: {option}: {{env: NAME}} or {{file: PATH}}"
                )
        tls = self._tls(problems)
        if problems:
            raise ConfigError([f"{self.where}: {p}" for p in problems])
        self._cursors = self.services.cursors
        if self._cursors is None and self.services.engine is not None:
            self._cursors = Cursors(self.services.engine)
        if s["receive_operation"] and self._cursors is None:
            raise ConfigError(
                [
                    f"{self.where}: receive_operation is set but the bus gave no cursor store. "
                    "Hint: run it inside the bus, or drop receive_operation"
                ]
            )
        self.client = HttpClient(
            timeout=s["timeout"], max_bytes=s["max_response_bytes"], proxy=s["proxy"], **tls
        )

    def stop(self) -> None:
        """Close the pooled connections."""
        client = getattr(self, "client", None)
        if client is not None:
            client.close()

    def _paths(self, problems: list[str]) -> dict[str, JsonPath | None]:
        compiled: dict[str, JsonPath | None] = {}
        for option in (
            "items_path",
            "cursor_path",
            "cursor_field",
            "next_path",
            "more_path",
            "error_path",
            "error_message_path",
        ):
            text = self.settings[option]
            try:
                compiled[option] = JsonPath.compile(text) if text else None
            except PathError as exc:
                problems.append(f"{option}: {exc}")
                compiled[option] = None
        try:
            self.item_keys = [
                JsonPath.compile(p) for p in self.settings["item_key"].split(",") if p.strip()
            ]
        except PathError as exc:
            problems.append(f"item_key: {exc}")
            self.item_keys = []
        return compiled

    def _check_receive(self, problems: list[str]) -> None:
        s = self.settings
        if not s["receive_operation"]:
            return
        if s["cursor_param"] and not (s["cursor_path"] or s["cursor_field"]):
            problems.append(
                "cursor_param needs cursor_path (from the answer) or cursor_field (from the items)"
            )
        if s["cursor_path"] and s["cursor_field"]:
            problems.append("set cursor_path or cursor_field, not both")
        if s["pagination"] in ("next_link", "cursor") and not s["next_path"]:
            problems.append(f"pagination: {s['pagination']} needs next_path")
        if s["pagination"] == "cursor" and not s["cursor_param"]:
            problems.append("pagination: cursor needs cursor_param, the parameter that carries it")
        if s["max_pages"] < 1 or s["page_size"] < 1:
            problems.append("max_pages and page_size must be at least 1")

    def _schema(self, value: Any, option: str, problems: list[str]) -> Any:
        return operations.load_schema(value, option, problems, self.services.base_dir)

    def _auth(self, problems: list[str]) -> auth_schemes.Auth:
        s = self.settings
        scheme = s["auth"]
        placing = {
            "header": s["token_header"],
            "prefix": s["token_prefix"],
            "field": s["token_field"],
        }

        def need(*names: str) -> None:
            for name in names:
                if not s[name]:
                    problems.append(f"auth: {scheme} needs {name}")

        if scheme == "basic":
            need("username", "password")
            return auth_schemes.BasicAuth(self.where, s["username"], s["password"])
        if scheme == "bearer":
            need("token")
            return auth_schemes.BearerAuth(self.where, s["token"], **placing)
        if scheme == "api_key":
            need("api_key")
            return auth_schemes.ApiKeyAuth(self.where, s["api_key_header"], s["api_key"])
        if scheme == "hmac":
            need("hmac_key_id", "hmac_secret")
            headers = s["hmac_headers"] or DEFAULT_HMAC_HEADERS
            hmac_auth = auth_schemes.HmacAuth(
                self.where,
                key_id=s["hmac_key_id"],
                secret=s["hmac_secret"],
                message=s["hmac_message"],
                headers={str(k): str(v) for k, v in headers.items()},
                encoding=s["hmac_encoding"],
                algorithm=s["hmac_algorithm"],
            )
            known = {"method", "path", "host", "timestamp", "timestamp_ms", "date", "nonce"}
            known |= {"body_sha256", "body_sha256_b64", "content_type", "key_id"}
            for template in (hmac_auth.message, *hmac_auth.headers.values()):
                unknown = (
                    set(template.names)
                    - known
                    - ({"signature"} if template is not hmac_auth.message else set())
                )
                if unknown:
                    problems.append(
                        f"hmac: unknown placeholder(s) {sorted(unknown)} in {template.text!r}"
                    )
            return hmac_auth
        if scheme in ("login", "oauth2"):
            need("login_path")
            need(
                *(
                    ("client_id", "client_secret")
                    if scheme == "oauth2"
                    else ("username", "password")
                )
            )
            login = s["login_path"]
            url = login if "://" in login else self.base_url + login
            if login and "://" not in login and not login.startswith("/"):
                problems.append(f"login_path {login!r} must start with '/' or be a full URL")
            try:
                return auth_schemes.LoginAuth(
                    self.where,
                    transport=self._transport,
                    url=url,
                    oauth2=scheme == "oauth2",
                    settings=s,
                    **placing,
                )
            except PathError as exc:
                problems.append(str(exc))
        return auth_schemes.Auth(self.where)

    def _tls(self, problems: list[str]) -> dict[str, Any]:
        def file(option: str) -> Path | None:
            value = self.settings[option]
            if not value:
                return None
            path = Path(value) if Path(value).is_absolute() else self.services.base_dir / value
            if not path.is_file():
                problems.append(
                    f"{option} file '{path}' does not exist. Hint: a PEM file, absolute or "
                    "relative to the config file"
                )
            return path

        ca, cert, key = file("ca_file"), file("client_cert"), file("client_key")
        if key and not cert:
            problems.append(
                "client_key is set without client_cert. Hint: set client_cert to the PEM "
                "certificate of that key"
            )
        verify = bool(self.settings["verify_tls"])
        if not verify and ca:
            problems.append(
                "ca_file is set but verify_tls is false, so it would be ignored. "
                "Hint: drop verify_tls: false"
            )
        if not verify:
            log.warning(
                "%s: TLS verification is off (verify_tls: false): the system's certificate is not "
                "checked, so anyone on the path can read and change the traffic. Hint: set ca_file "
                "to the system's CA instead",
                self.where,
            )
        return {"verify": verify, "ca_file": ca, "client_cert": cert, "client_key": key}

    # --- the call and its answer ---

    def _scrub(self, text: str) -> str:
        for secret in self.auth.secrets() if hasattr(self, "auth") else ():
            if secret and len(secret) >= 4:
                text = text.replace(secret, "***")
        return text

    def _transport(self, request: Request, what: str) -> Answer:
        """One call; network trouble becomes the bus's errors (transient or fatal), scrubbed."""
        try:
            return self.client.send(request)
        except CallFailed as exc:
            text = self._scrub(f"{self.where} {what}: {exc}")
            if exc.kind == "tls":
                raise FatalError(
                    f"{text}. Hint: if the certificate cannot be verified, set ca_file to the PEM "
                    "of the CA that signed it; if the system wants a client certificate, set "
                    "client_cert (and client_key)"
                ) from exc
            hint = (
                "raise timeout if the system is slow"
                if exc.kind == "timeout"
                else "check the system is up and base_url"
            )
            raise TransientError(f"{text}. Hint: {hint}") from exc
        except AnswerRefused as exc:
            raise FatalError(self._scrub(f"{self.where} {what}: {exc}")) from exc

    def _error_text(self, answer: Answer, parsed: Any = None) -> str:
        """What the system said went wrong: its message field, or the start of its body."""
        path = self.paths.get("error_message_path")
        if parsed is None:
            try:
                parsed = jsonxml.parse(answer.body, limits=self.limits)
            except jsonxml.JsonRejected:
                parsed = None
        if parsed is not None and path is not None:
            found = path.get(parsed)
            if found is not None and not isinstance(found, (list, dict)):
                return self._scrub(scalar_text(found))[:500]
        text = answer.body[:300].decode("utf-8", "replace")
        return self._scrub(" ".join(text.split())) or "(empty body)"

    def _check(
        self, answer: Answer, op: Operation, what: str, *, need_json: bool, resend: bool = False
    ) -> Any:
        """Sort the answer: return the parsed body if done, raise by what the bus should do."""
        where = f"{self.where} {op.name} ({what})"
        status = answer.status
        if status in op.done_statuses:
            log.info("%s: HTTP %d, already there: done", where, status)
            return None
        if status in (401, 403):
            raise _AuthRefused(f"HTTP {status}: {self._error_text(answer)}")
        if status in (408, 429) or status >= 500:
            raise TransientError(
                f"{where}: HTTP {status}: {self._error_text(answer)}",
                retry_after=answer.retry_after(self.settings["max_retry_after"]),
            )
        if not 200 <= status < 300:
            if 400 <= status < 500:
                raise RejectedError(
                    f"{where}: refused with HTTP {status}: {self._error_text(answer)}"
                )
            raise FatalError(f"{where}: unexpected HTTP {status}: {self._error_text(answer)}")
        error_path = self.paths.get("error_path")
        if not (need_json or error_path is not None or op.response_schema is not None):
            return None
        try:
            parsed = jsonxml.parse(answer.body, limits=self.limits, what="the answer")
        except jsonxml.JsonRejected as exc:
            raise FatalError(f"{where}: HTTP {status} but {self._scrub(str(exc))}") from exc
        if error_path is not None:
            self._check_code(parsed, error_path, where, answer, op.resend_with if resend else {})
        if op.response_schema is not None:
            problem = self._invalid(op.response_schema, parsed)
            if problem:
                raise FatalError(f"{where}: the answer does not match response_schema: {problem}")
        return parsed

    def _check_code(
        self,
        parsed: Any,
        error_path: JsonPath,
        where: str,
        answer: Answer,
        resend_with: Mapping[str, Mapping[str, Any]],
    ) -> None:
        try:
            code = scalar_text(error_path.find(parsed))
        except Missing:
            return  # an answer without the field: nothing to say against it
        if code in self.error_ok:
            return
        text = self._error_text(answer, parsed)
        if code in self.error_done:
            log.info("%s: %s %s (%s): already there, done", where, error_path.text, code, text)
            return
        if code in resend_with:
            raise _Resend(code, resend_with[code], text)
        if code in self.error_auth:
            raise _AuthRefused(f"{error_path.text} {code}: {text}")
        if code in self.error_transient:
            # The system answered: only this message waits, the endpoint is not failing.
            raise TransientError(f"{where}: {error_path.text} {code}: {text}", endpoint_up=True)
        raise RejectedError(f"{where}: the system answered {error_path.text} {code}: {text}")

    def _invalid(self, validator: Any, value: Any) -> str | None:
        plain = jsonxml.to_python(value, limits=self.limits, duplicates="use-first")
        error = jsonschema.exceptions.best_match(validator.iter_errors(plain))
        if error is None:
            return None
        where = "$" + "".join(
            f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path
        )
        return f"{where}: {error.message}"

    def _exchange(
        self,
        build: Callable[[Mapping[str, Any]], tuple[Request, int]],
        op: Operation,
        what: str,
        *,
        need_json: bool,
    ) -> Any:
        """Call; after a refusal of our credentials, log in again and call once more; after a
        ``resend_with`` code, call once more with those fields."""
        renewed = resent = False
        changes: Mapping[str, Any] = {}
        while True:
            request, generation = build(changes)
            answer = self._transport(request, f"{op.name} ({what})")
            try:
                return self._check(answer, op, what, need_json=need_json, resend=not resent)
            except _AuthRefused as refused:
                if not renewed and self.auth.renewable:
                    log.info("%s: credentials refused (%s); logging in again", self.where, refused)
                    self.auth.renew(generation)
                    renewed = True
                    continue
                again = " even after logging in again" if renewed else ""
                raise FatalError(
                    f"{self.where} {op.name} ({what}): our credentials were refused{again}: "
                    f"{refused}. "
                    "Hint: check the endpoint's auth settings and that the account may call this"
                ) from None
            except _Resend as resend:
                log.info(
                    "%s %s (%s): code %s (%s); calling again with %s",
                    self.where,
                    op.name,
                    what,
                    resend.code,
                    resend.text,
                    dict(resend.fields),
                )
                changes, resent = resend.fields, True

    def _url(
        self, op: Operation, lookup: Callable[[str], str], extra: Mapping[str, str] = {}
    ) -> str:
        path = op.path.render(lambda name: quote(lookup(name), safe=""))
        url = self.base_url + path
        query = [(k, t.render(lookup)) for k, t in op.query.items()]
        query += [(k, v) for k, v in extra.items() if v != ""]
        if query:
            url += ("&" if "?" in url else "?") + urlencode(query)
        return url

    def _headers(
        self, op: Operation, lookup: Callable[[str], str], *, body: bool
    ) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if body:
            headers["Content-Type"] = "application/json; charset=utf-8"
        for name, template in op.headers.items():
            value = template.render(lookup)
            if "\r" in value or "\n" in value:
                raise RejectedError(
                    f"{self.where} {op.name}: header {name} would carry a line break"
                )
            headers[name] = value
        return headers

    # --- send ---

    def send(self, message: Message, *, key: str) -> None:
        """Send the message (JSON in the XPath 3.1 vocabulary) by its operation, once per key."""
        op = self._send_operation(message)
        tree = message.tree(max_bytes=self.services.max_message_bytes)
        root = tree.getroot()
        if not isinstance(root.tag, str) or not root.tag.startswith(f"{{{jsonxml.NS}}}"):
            raise RejectedError(
                f"{self.where}: message {message.id} is <{root.tag}>, not JSON in the XPath 3.1 "
                f"vocabulary ({{{jsonxml.NS}}}map). Hint: the route's mapping must output "
                '<map xmlns="http://www.w3.org/2005/xpath-functions">…'
            )
        try:
            text = jsonxml.xml_to_json(tree, what=f"message {message.id}")
        except jsonxml.JsonRejected as exc:
            raise RejectedError(f"{self.where}: {exc}. Hint: fix the route's mapping") from exc
        fields = dict(self.body_fields)
        if op.idempotency_field:
            fields[op.idempotency_field] = key
        document: list[Any] = []

        def body_value() -> Any:
            if not document:
                document.append(jsonxml.parse(text, what=f"message {message.id}"))
            return document[0]

        values = {
            "key": key,
            "message_id": message.id,
            "correlation_id": message.correlation_id,
            "kind": message.kind,
        }

        def lookup(name: str) -> str:
            if name.startswith("body."):
                try:
                    return scalar_text(JsonPath.compile(name[5:]).find(body_value()))
                except Missing as exc:
                    raise RejectedError(
                        f"{self.where} {op.name}: message {message.id} has no value for "
                        f"{{{name}}} ({exc}). "
                        "Hint: fix the route's mapping"
                    ) from exc
            return values.get(name, "")

        if fields and op.body:
            clash = (
                [k for k in fields if any(c.get("key") == k for c in root)]
                if root.tag == jsonxml.MAP
                else []
            )
            if root.tag != jsonxml.MAP:
                raise RejectedError(
                    f"{self.where} {op.name}: fields {sorted(fields)} must be added to a JSON "
                    "object, "
                    f"but message {message.id} is a JSON {_local_name(root)}"
                )
            if clash:
                raise RejectedError(
                    f"{self.where} {op.name}: message {message.id} already has {clash}, which the "
                    "endpoint adds itself (body_fields, idempotency_field). "
                    "Hint: drop it from the mapping"
                )
        if op.request_schema is not None:
            problem = self._invalid(op.request_schema, jsonxml.parse(_splice(text, fields)))
            if problem:
                raise RejectedError(
                    f"{self.where} {op.name}: message {message.id} does not match request_schema: "
                    f"{problem}. Hint: fix the route's mapping"
                )
        url = self._url(op, lookup)
        headers = self._headers(op, lookup, body=op.body)
        if op.idempotency_header:
            headers[op.idempotency_header] = key

        def build(changes: Mapping[str, Any]) -> tuple[Request, int]:
            request = Request(op.method, url, dict(headers))
            call_fields = dict(fields)
            generation = self.auth.prepare(request, call_fields)
            if op.body:
                sent = _changed(text, changes) if changes else text
                request.body = _splice(sent, call_fields).encode("utf-8")
            self.auth.sign(request)
            return request, generation

        self._exchange(build, op, f"message {message.id}", need_json=False)

    def _send_operation(self, message: Message) -> Operation:
        for op in self.operations.values():
            if message.kind in op.kinds:
                return op
        name = self.settings["send_operation"]
        if not name:
            kinds = {k: op.name for op in self.operations.values() for k in op.kinds}
            raise RejectedError(
                f"{self.where}: no operation sends messages of kind '{message.kind}' "
                f"(kinds: {kinds or 'none'}). Hint: add the kind to an operation's kind, or set "
                "send_operation, then replay the message"
            )
        return self.operations[name]

    # --- receive ---

    def receive(self, inbox: Inbox) -> int:
        """Poll from the stored position; hand each page to the bus, then move the position."""
        s = self.settings
        if not s["receive_operation"] or self._cursors is None:
            raise FatalError(
                f"{self.where} has no receive_operation. Hint: set it, or do not poll this endpoint"
            )
        if time.monotonic() < self._quiet_until:
            return 0  # the system asked us to wait (Retry-After)
        try:
            return self._poll(inbox)
        except TransientError as exc:
            if exc.retry_after:
                self._quiet_until = time.monotonic() + exc.retry_after
            raise
        except RejectedError as exc:
            # An error code in a poll's answer: no message to park; the system must be looked at.
            raise FatalError(str(exc)) from exc

    def _poll(self, inbox: Inbox) -> int:
        s = self.settings
        op = self.operations[s["receive_operation"]]
        name = f"{self.endpoint}:{op.name}"
        assert self._cursors is not None
        position = Position.load(self._cursors.get(name), s["cursor_start"])
        start = position
        url: str | None = None
        handed = 0
        budget = s["max_pages"] * s["page_size"]
        # Pages holding only items already taken (a run of equal cursor values) do not
        # count against max_pages: without them a long run would be read forever. The
        # batch stays bounded: a poll hands over at most max_pages × page_size items.
        pages = s["max_pages"] + -(-len(start.seen) // s["page_size"])
        for number in range(pages):
            page = s["page_start"] + number
            values = {"cursor": start.value, "page": str(page), "page_size": str(s["page_size"])}
            if url is None:
                extra: dict[str, str] = {}
                if s["cursor_param"]:
                    extra[s["cursor_param"]] = start.value
                if s["pagination"] == "page":
                    extra[s["page_param"]] = str(page)
                if s["page_size_param"]:
                    extra[s["page_size_param"]] = str(s["page_size"])
                url = self._url(op, _lookup(values), extra)
            headers = self._headers(op, _lookup(values), body=False)
            target = url
            answer = self._fetch(op, target, headers, f"poll page {number + 1}")
            items = [(item, self._source_key(item)) for item in self._items(answer, op)]
            fresh = [(item, key) for item, key in items if not self._taken(start, item, key)]
            if len(fresh) > budget - handed:
                # Only part of this page fits: take what fits, read the rest next poll.
                fresh = fresh[: budget - handed]
                items = items[: items.index(fresh[-1]) + 1] if fresh else []
            if fresh:
                inbox.accept([self._message(item, key, op) for item, key in fresh])
                handed += len(fresh)
            # Only now, with the page safe in the store, does the position move.
            position = self._advance(position, answer, items)
            stored = position.dump()
            if stored != (self._cursors.get(name) or ""):
                self._cursors.set(name, stored)
            url = self._next(answer, [item for item, _ in items], target)
            if url is None or handed >= budget:
                break
        return handed

    def _fetch(self, op: Operation, url: str, headers: Mapping[str, str], what: str) -> Any:
        def build(changes: Mapping[str, Any]) -> tuple[Request, int]:
            request = Request(op.method, url, dict(headers))
            generation = self.auth.prepare(request, {})
            self.auth.sign(request)
            return request, generation

        return self._exchange(build, op, what, need_json=True)

    def _taken(self, start: Position, item: Any, key: str) -> bool:
        """Whether an item at exactly the starting cursor value was handed over before."""
        cursor_field = self.paths.get("cursor_field")
        if not start.seen or cursor_field is None or key not in start.seen:
            return False
        found = cursor_field.get(item)
        return found is not None and scalar_text(found) == start.value

    def _items(self, answer: Any, op: Operation) -> list[Any]:
        path = self.paths.get("items_path")
        try:
            items = path.find(answer) if path is not None else answer
        except Missing as exc:
            raise FatalError(
                f"{self.where} {op.name}: the answer has no items at "
                f"{path.text if path else '$'!r} ({exc}). "
                "Hint: set items_path to where the answer lists them"
            ) from exc
        if items is None:
            return []
        if not isinstance(items, list) or isinstance(items, jsonxml.JsonObject):
            raise FatalError(
                f"{self.where} {op.name}: items_path does not lead to a JSON array in the answer"
            )
        return items

    def _source_key(self, item: Any) -> str:
        if self.item_keys:
            try:
                parts = [scalar_text(p.find(item)) for p in self.item_keys]
                if all(parts):
                    return "/".join(parts)
            except Missing:
                pass
        return (
            "sha256:"
            + hashlib.sha256(jsonxml.to_json(item).encode("utf-8", "surrogatepass")).hexdigest()[
                :40
            ]
        )

    def _message(self, item: Any, key: str, op: Operation) -> Message:
        s = self.settings
        headers = {"operation": op.name}
        mode = s["invalid_characters"]
        try:
            body = jsonxml.to_xml(
                item,
                escape=mode == "escape",
                duplicates=s["duplicate_keys"],
                fallback=_refuse if mode == "reject" else None,
                limits=self.limits,
                what=f"item {key}",
            )
            if self.item_validator is not None:
                problem = self._invalid(self.item_validator, item)
                if problem:
                    headers[INVALID_HEADER] = f"item {key} does not match item_schema: {problem}"
        except (jsonxml.JsonRejected, _Unholdable) as exc:
            # Kept as it came, parked by the bus with the reason: never lost, never half-read.
            body = jsonxml.to_json(item).encode("utf-8", "surrogatepass")
            headers[INVALID_HEADER] = self._scrub(str(exc))
        return Message(
            body=body, kind=s["message_kind"], source=self.endpoint, headers=headers, source_key=key
        )

    def _advance(self, position: Position, answer: Any, items: list[tuple[Any, str]]) -> Position:
        cursor_path, cursor_field = self.paths.get("cursor_path"), self.paths.get("cursor_field")
        if cursor_path is not None:
            found = cursor_path.get(answer)
            text = scalar_text(found) if found is not None and not isinstance(found, list) else ""
            return Position(text) if text else position
        if cursor_field is None:
            return position
        best, seen = position.value, list(position.seen)
        for item, key in items:
            found = cursor_field.get(item)
            if found is None or isinstance(found, list):
                continue
            value = scalar_text(found)
            order = compare(value, best) if best else 1
            if order > 0:
                best, seen = value, [key]
            elif order == 0:
                seen.append(key)
        return Position(best, tuple(dict.fromkeys(seen)))

    def _next(self, answer: Any, items: list[Any], url: str) -> str | None:
        s = self.settings
        more_path = self.paths.get("more_path")
        if more_path is not None and more_path.get(answer) is False:
            return None
        if s["pagination"] == "none" or not items:
            return None
        if s["pagination"] == "page":
            if s["page_size_param"] and len(items) < s["page_size"]:
                return None
            current = int(query_param(url, s["page_param"]) or s["page_start"])
            return with_query_param(url, s["page_param"], str(current + 1))
        next_path = self.paths["next_path"]
        assert next_path is not None
        found = next_path.get(answer)
        link = scalar_text(found) if found is not None and not isinstance(found, list) else ""
        if not link:
            return None
        if s["pagination"] == "cursor":
            if link == query_param(url, s["cursor_param"]):
                return None
            return with_query_param(url, s["cursor_param"], link)
        target = urljoin(url, link)
        if origin(target) != origin(self.base_url):
            raise FatalError(
                f"{self.where}: the next page link leads to another host ({target}): refused. "
                "Hint: if the system really pages across hosts, that is for its operator to fix"
            )
        return target


class _Unholdable(LienthongError):
    """A character XML cannot hold, with ``invalid_characters: reject``."""


def _refuse(escape: str) -> str:
    raise _Unholdable(
        f"the item holds a character XML cannot ({escape}), and invalid_characters is reject"
    )


def _lookup(values: Mapping[str, str]) -> Callable[[str], str]:
    return lambda name: values.get(name, "")


def _splice(text: str, fields: Mapping[str, Any]) -> str:
    """Add top-level ``fields`` to a JSON object's text (written by fn:xml-to-json)."""
    if not fields:
        return text
    added = ",".join(
        f"{json.dumps(str(k), ensure_ascii=False)}:{json.dumps(v, ensure_ascii=False)}"
        for k, v in fields.items()
    )
    return "{" + added + ("" if text == "{}" else "," + text[1:-1]) + "}"


def _changed(text: str, changes: Mapping[str, Any]) -> str:
    """A JSON object's text with some top-level members set to new values."""
    document = jsonxml.parse(text)
    if not isinstance(document, jsonxml.JsonObject):
        raise RejectedError("resend_with changes fields of a JSON object, but the body is not one")
    kept = [(k, v) for k, v in document if k not in changes]
    return jsonxml.to_json(jsonxml.JsonObject([*kept, *changes.items()]))


def _local_name(element: Any) -> str:
    return str(element.tag).rpartition("}")[2]
