"""How the REST adapter proves who it is: none, basic, a fixed bearer token, a token from a
login call (a session, or OAuth2 client credentials) renewed before it expires and after
a 401, an API key header, or HMAC-signed headers.

Secrets arrive as :class:`lienthong.adapter.Secret` (from ``{env:}`` or ``{file:}``)
and are revealed only into the one header or body field that carries them.
Every scheme offers :meth:`Auth.secrets` so the adapter can scrub them from any
error text a server might echo back.

Threads: one :class:`Auth` serves every thread of an endpoint. A login token is
shared; renewing it takes a lock, and a thread that finds the token already
renewed by another (a newer ``generation``) uses that one instead of logging in
twice.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from email.utils import formatdate
from typing import Any
from urllib.parse import urlencode, urlsplit

from lienthong import jsonxml
from lienthong.adapter import Secret
from lienthong.errors import FatalError, TransientError

from .client import Answer, Request
from .paths import JsonPath, Missing, Template, scalar_text

#: Renew a token this many seconds before the expiry its issuer announced.
EXPIRY_MARGIN = 30.0

Transport = Callable[[Request, str], Answer]


def reveal(secret: Secret | str | None) -> str:
    if secret is None:
        return ""
    return secret.reveal() if isinstance(secret, Secret) else str(secret)


class Auth:
    """No credentials at all (``auth: none``); the base of the other schemes."""

    renewable = False

    def __init__(self, where: str) -> None:
        self.where = where

    def prepare(self, request: Request, fields: dict[str, Any]) -> int:
        """Add credentials (headers, or body ``fields``); return the token's generation."""
        return 0

    def sign(self, request: Request) -> None:
        """Sign the finished request (HMAC); the other schemes have nothing to do here."""

    def renew(self, generation: int) -> None:
        """Get fresh credentials, unless another thread already did (newer generation)."""
        raise FatalError(f"{self.where}: credentials cannot be renewed")

    def secrets(self) -> list[str]:
        return []


class BasicAuth(Auth):
    """``Authorization: Basic`` from ``username`` and ``password``."""

    def __init__(self, where: str, username: str, password: Secret | None) -> None:
        super().__init__(where)
        self._password = password
        pair = f"{username}:{reveal(password)}".encode()
        self._header = "Basic " + base64.b64encode(pair).decode("ascii")

    def prepare(self, request: Request, fields: dict[str, Any]) -> int:
        request.headers["Authorization"] = self._header
        return 0

    def secrets(self) -> list[str]:
        return [reveal(self._password), self._header]


class TokenAuth(Auth):
    """A token in a header (``Authorization: Bearer ...`` by default) or in a body field."""

    def __init__(self, where: str, *, header: str, prefix: str, field: str) -> None:
        super().__init__(where)
        self.header = header
        self.prefix = prefix
        self.field = field

    def place(self, token: str, request: Request, fields: dict[str, Any]) -> None:
        if self.field:
            fields[self.field] = token
        else:
            request.headers[self.header] = f"{self.prefix}{token}"


class BearerAuth(TokenAuth):
    """A fixed token from the config (``auth: bearer``, ``token: {env: ...}``)."""

    def __init__(self, where: str, token: Secret | None, **placing: str) -> None:
        super().__init__(where, **placing)
        self._token = token

    def prepare(self, request: Request, fields: dict[str, Any]) -> int:
        self.place(reveal(self._token), request, fields)
        return 0

    def secrets(self) -> list[str]:
        return [reveal(self._token)]


class ApiKeyAuth(Auth):
    """A key in a header of its own (``X-API-Key`` by default)."""

    def __init__(self, where: str, header: str, key: Secret | None) -> None:
        super().__init__(where)
        self.header = header
        self._key = key

    def prepare(self, request: Request, fields: dict[str, Any]) -> int:
        request.headers[self.header] = reveal(self._key)
        return 0

    def secrets(self) -> list[str]:
        return [reveal(self._key)]


class LoginAuth(TokenAuth):
    """A token from a login call, kept until it expires or a call is refused with it.

    ``oauth2`` posts the client credentials grant (RFC 6749 §4.4) as a form, with
    the client id and secret in a Basic header (or in the form, ``client_auth:
    post``); ``login`` posts ``login_body`` as JSON (the portal's username and
    password, answered with a ``session``).
    """

    renewable = True

    def __init__(
        self,
        where: str,
        *,
        transport: Transport,
        url: str,
        oauth2: bool,
        settings: Mapping[str, Any],
        header: str,
        prefix: str,
        field: str,
    ) -> None:
        super().__init__(where, header=header, prefix=prefix, field=field)
        self._transport = transport
        self.url = url
        self.oauth2 = oauth2
        self.settings = settings
        self.token_path = JsonPath.compile(settings["token_path"])
        self.expires_path = (
            JsonPath.compile(settings["expires_path"]) if settings["expires_path"] else None
        )
        self.error_path = (
            JsonPath.compile(settings["error_path"]) if settings["error_path"] else None
        )
        self.ok_codes = {c.strip() for c in settings["error_ok"].split(",") if c.strip()}
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0
        self.generation = 0
        self.logins = 0

    def prepare(self, request: Request, fields: dict[str, Any]) -> int:
        token, generation = self._current()
        self.place(token, request, fields)
        return generation

    def renew(self, generation: int) -> None:
        with self._lock:
            if self.generation == generation:
                self._login()

    def secrets(self) -> list[str]:
        values = [reveal(self.settings.get("password")), reveal(self.settings.get("client_secret"))]
        return [*values, self._token or ""]

    def _current(self) -> tuple[str, int]:
        with self._lock:
            if self._token is None or time.monotonic() >= self._expires_at:
                self._login()
            assert self._token is not None
            return self._token, self.generation

    def _login(self) -> None:
        request = self._request()
        answer = self._transport(request, "login")
        what = f"{self.where}: the login call to {self.url}"
        if answer.status in (401, 403) or (400 <= answer.status < 500 and answer.status != 429):
            raise FatalError(
                f"{what} was refused (HTTP {answer.status}). Hint: check the endpoint's "
                f"{'client_id and client_secret' if self.oauth2 else 'username and password'}"
            )
        if answer.status == 429 or answer.status >= 500:
            raise TransientError(
                f"{what} failed (HTTP {answer.status})",
                retry_after=answer.retry_after(float(self.settings["max_retry_after"])),
            )
        if not 200 <= answer.status < 300:
            raise FatalError(f"{what} answered HTTP {answer.status}")
        try:
            body = jsonxml.parse(answer.body, what="the login answer")
        except jsonxml.JsonRejected as exc:
            raise FatalError(f"{what}: {exc}") from exc
        if self.error_path is not None:
            code = scalar_text(self.error_path.get(body, ""))
            if code and code not in self.ok_codes:
                raise FatalError(
                    f"{what} was refused with code {code}. Hint: check the endpoint's credentials"
                )
        try:
            token = scalar_text(self.token_path.find(body))
        except Missing as exc:
            raise FatalError(
                f"{what} answered without a token at {self.token_path.text!r} ({exc}). "
                "Hint: set token_path to where the login answer carries it"
            ) from exc
        if not token:
            raise FatalError(f"{what} answered an empty token at {self.token_path.text!r}")
        lifetime = float(self.settings["token_ttl"])
        if self.expires_path is not None:
            found = self.expires_path.get(body)
            if isinstance(found, jsonxml.JsonNumber) or (
                isinstance(found, str) and found.isdigit()
            ):
                lifetime = float(found)
        self._token = token
        self._expires_at = time.monotonic() + max(lifetime - EXPIRY_MARGIN, lifetime / 2)
        self.generation += 1
        self.logins += 1

    def _request(self) -> Request:
        s = self.settings
        headers = {"Accept": "application/json"}
        if self.oauth2:
            form = {"grant_type": "client_credentials"}
            if s["scope"]:
                form["scope"] = s["scope"]
            secret = reveal(s["client_secret"])
            if s["client_auth"] == "post":
                form.update(client_id=s["client_id"], client_secret=secret)
            else:
                pair = f"{s['client_id']}:{secret}".encode()
                headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            return Request("POST", self.url, headers, urlencode(form).encode("ascii"))
        values = {
            "username": s["username"],
            "password": reveal(s["password"]),
            "client_id": s["client_id"],
            "client_secret": reveal(s["client_secret"]),
        }
        body = _fill(
            s["login_body"] or {"username": "{username}", "password": "{password}"}, values
        )
        headers["Content-Type"] = "application/json; charset=utf-8"
        return Request("POST", self.url, headers, jsonxml.to_json(body).encode("utf-8"))


def _fill(value: Any, values: Mapping[str, str]) -> Any:
    """A login body from the config with {username}-style placeholders filled (strings only)."""
    if isinstance(value, Mapping):
        return jsonxml.JsonObject((str(k), _fill(v, values)) for k, v in value.items())
    if isinstance(value, list):
        return [_fill(v, values) for v in value]
    if isinstance(value, str):
        return Template.compile(value).render(lambda name: values[name])
    return value


class HmacAuth(Auth):
    """Headers carrying an HMAC of the request, computed over ``hmac_message``.

    Placeholders in the message and the headers: ``{method}``, ``{path}`` (path and
    query), ``{host}``, ``{timestamp}`` (Unix seconds), ``{timestamp_ms}``,
    ``{date}`` (RFC 7231), ``{nonce}``, ``{body_sha256}`` (hex),
    ``{body_sha256_b64}``, ``{content_type}``, ``{key_id}``; the headers also get
    ``{signature}``.
    """

    def __init__(
        self,
        where: str,
        *,
        key_id: str,
        secret: Secret | None,
        message: str,
        headers: Mapping[str, str],
        encoding: str,
        algorithm: str,
    ) -> None:
        super().__init__(where)
        self.key_id = key_id
        self._secret = secret
        self.message = Template.compile(message)
        self.headers = {name: Template.compile(value) for name, value in headers.items()}
        self.encoding = encoding
        self.algorithm = algorithm

    def sign(self, request: Request) -> None:
        body = request.body or b""
        digest = hashlib.sha256(body).digest()
        url = urlsplit(request.url)
        now = time.time()
        values = {
            "method": request.method,
            "path": url.path + (f"?{url.query}" if url.query else ""),
            "host": url.netloc,
            "timestamp": str(int(now)),
            "timestamp_ms": str(int(now * 1000)),
            "date": formatdate(now, usegmt=True),
            "nonce": uuid.uuid4().hex,
            "body_sha256": digest.hex(),
            "body_sha256_b64": base64.b64encode(digest).decode("ascii"),
            "content_type": request.headers.get("Content-Type", ""),
            "key_id": self.key_id,
        }
        text = self.message.render(lambda name: values[name])
        mac = hmac.new(reveal(self._secret).encode(), text.encode("utf-8"), self.algorithm).digest()
        values["signature"] = (
            base64.b64encode(mac).decode("ascii") if self.encoding == "base64" else mac.hex()
        )
        for name, template in self.headers.items():
            request.headers[name] = template.render(lambda key: values[key])

    def secrets(self) -> list[str]:
        return [reveal(self._secret)]
