"""SANDBOX gateway of the provincial integration platform (LGSP), in front of a system.

For tests and demos only. A province's systems are reached through its
platform, whose gateway issues the tokens and checks every call's credentials
before the system behind it sees the call:

- ``POST /oauth2/token``: OAuth2 client credentials (the platform's app name and
  secret, in a Basic header or the form) give a bearer token for ``token_ttl``
  seconds;
- other schemes for tests: ``auth="api_key"`` (``X-API-Key``), ``"basic"``,
  ``"hmac"`` (the REST adapter's default HMAC headers), ``"none"``;
- 401 (no or bad token, key, signature; a nonce used twice), 403 (a path in
  ``forbidden``).

The system behind it (:class:`~.onestop_sandbox.OneStopSandbox`) subclasses
:class:`GatewaySandbox` and calls :meth:`GatewaySandbox.authorize` first in
each of its handlers. It is one server, not two: tests set and read the
gateway's state (``token_ttl``, ``tokens_issued``, ``refused``) on the system's
sandbox, under its one lock.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from typing import Any
from urllib.parse import parse_qsl

from .sandbox import JsonSandbox, Reply, SandboxRequest, lgsp_error


class GatewaySandbox(JsonSandbox):
    """SANDBOX platform gateway: the token service and each call's credential check."""

    def __init__(
        self,
        *,
        auth: str = "oauth2",
        client_id: str = "lienthong-motcua",
        client_secret: str = "sandbox-secret",
        api_key: str = "sandbox-api-key",
        hmac_key_id: str = "lienthong",
        hmac_secret: str = "sandbox-hmac-secret",
        token_ttl: float = 3600.0,
        **server: Any,
    ) -> None:
        super().__init__(**server)
        self.auth = auth
        self.client_id = client_id
        self.client_secret = client_secret
        self.api_key = api_key
        self.hmac_key_id = hmac_key_id
        self.hmac_secret = hmac_secret
        self.token_ttl = token_ttl
        self.tokens: dict[str, float] = {}
        self.tokens_issued = 0
        self.refused: list[str] = []
        self.forbidden: set[str] = set()
        self._nonces: set[str] = set()
        self.route("POST", r"/oauth2/token", self._token, "token")

    def expire_tokens(self) -> None:
        """Forget every issued token, as a token service restart or a revocation would."""
        with self.lock:
            self.tokens.clear()

    def _token(self, request: SandboxRequest) -> Reply:
        if self.auth != "oauth2":
            return lgsp_error(404, "this system does not issue tokens")
        form = dict(parse_qsl(request.body.decode("utf-8", "replace")))
        client, secret = form.get("client_id", ""), form.get("client_secret", "")
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            try:
                client, _, secret = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                client, secret = "", ""
        if form.get("grant_type") != "client_credentials":
            return Reply(400, {"error": "unsupported_grant_type"})
        if not (
            hmac.compare_digest(client.encode(), self.client_id.encode())
            and hmac.compare_digest(secret.encode(), self.client_secret.encode())
        ):
            return Reply(401, {"error": "invalid_client"})
        token = secrets.token_urlsafe(24)
        with self.lock:
            self.tokens[token] = time.monotonic() + self.token_ttl
            self.tokens_issued += 1
        return Reply(
            200, {"access_token": token, "token_type": "Bearer", "expires_in": int(self.token_ttl)}
        )

    def authorize(self, request: SandboxRequest) -> None:
        """Refuse the call (raise its 401 or 403) unless its credentials are good."""
        if request.path in self.forbidden:
            raise lgsp_error(403, "this application may not call this resource")
        if self.auth == "none":
            return
        if self.auth == "oauth2":
            header = request.headers.get("Authorization", "")
            token = header[7:] if header.startswith("Bearer ") else ""
            with self.lock:
                expires = self.tokens.get(token)
            if expires is None or expires < time.monotonic():
                self.refused.append(request.path)
                raise lgsp_error(
                    401,
                    "invalid or expired token",
                    {"WWW-Authenticate": 'Bearer error="invalid_token"'},
                )
        elif self.auth == "api_key":
            if not hmac.compare_digest(
                request.headers.get("X-API-Key", "").encode(), self.api_key.encode()
            ):
                raise lgsp_error(401, "invalid API key")
        elif self.auth == "basic":
            expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
            if not hmac.compare_digest(
                request.headers.get("Authorization", "").encode(), f"Basic {expected}".encode()
            ):
                raise lgsp_error(401, "invalid credentials")
        elif self.auth == "hmac":
            self._check_hmac(request)

    def _check_hmac(self, request: SandboxRequest) -> None:
        headers = request.headers
        key_id = headers.get("X-Key-Id", "")
        timestamp = headers.get("X-Timestamp", "")
        nonce = headers.get("X-Nonce", "")
        signature = headers.get("X-Signature", "")
        if key_id != self.hmac_key_id or not timestamp.isdigit() or not nonce:
            raise lgsp_error(401, "missing or unknown signature headers")
        if abs(time.time() - int(timestamp)) > 300:
            raise lgsp_error(401, "signature timestamp outside five minutes")
        text = "\n".join(
            [
                request.method,
                request.target,
                timestamp,
                nonce,
                hashlib.sha256(request.body).hexdigest(),
            ]
        )
        expected = hmac.new(self.hmac_secret.encode(), text.encode(), hashlib.sha256).hexdigest()
        with self.lock:
            if nonce in self._nonces:
                raise lgsp_error(401, "nonce already used")
            self._nonces.add(nonce)
        if not hmac.compare_digest(signature.encode(), expected.encode()):
            raise lgsp_error(401, "bad signature")
