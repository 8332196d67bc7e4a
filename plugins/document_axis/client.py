"""The axis client: the national document axis's REST surface, signed with its HMAC headers.

Every call carries its parameters as ``XroadVnpt-<name>`` headers, the same
pairs as one JSON object in ``XroadVnpt-sign-header``, their names in
``XroadVnpt-sign-header-key`` and ``XroadVnpt-hash-header`` = hex
HMAC-SHA256(shared secret, that JSON). A millisecond ``timestamp`` and a random
``nonce`` are always signed, so the axis can refuse stale or replayed requests.

The client never loops: connection errors, timeouts and 5xx raise
:class:`~lienthong.errors.TransientError` for the core to retry; a refused
signature raises :class:`AxisAuthError` (a human must fix the secret); any other
4xx raises :class:`~lienthong.errors.RejectedError`. The secret never appears
in an error, a log line or a repr.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests

from lienthong.adapter import Secret
from lienthong.errors import FatalError, RejectedError, TransientError

log = logging.getLogger(__name__)

HEADER_PREFIX = "XroadVnpt-"
SIGN_HEADER = HEADER_PREFIX + "sign-header"
SIGN_KEYS_HEADER = HEADER_PREFIX + "sign-header-key"
HASH_HEADER = HEADER_PREFIX + "hash-header"
#: Sent with ``sendEdoc``: axes that know it (the sandbox does) answer a repeat with the
#: first DocId instead of a second copy; it is signed like every other parameter.
IDEMPOTENCY_PARAM = "idempotency-key"
#: The reply header by which a sandbox axis says it is one.
SANDBOX_HEADER = "X-Lienthong-Sandbox"

MESSAGE_TYPES = ("edoc", "status")
TRANSPORT_STATUSES = ("done", "fail", "processing")


class AxisAuthError(FatalError):
    """The axis refused our system id or signature: retrying cannot help, a human must fix it.

    ``option`` names the endpoint option to look at: ``secret`` (HTTP 401) or
    ``organ_id`` (HTTP 403).
    """

    def __init__(self, message: str, option: str) -> None:
        super().__init__(message)
        self.option = option


@dataclass(frozen=True)
class ReceivedItem:
    """One entry of a received (or sent) list, as the axis describes it."""

    doc_id: str
    message_type: str
    from_: str
    to: str
    status: str
    status_desc: str = ""
    service_type: str = "eDoc"
    created_time: str = ""
    updated_time: str = ""

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> ReceivedItem:
        return cls(
            doc_id=str(item["docId"]),
            message_type=str(item.get("messageType", "")),
            from_=str(item.get("from", "")),
            to=str(item.get("to", "")),
            status=str(item.get("status", "")),
            status_desc=str(item.get("status_desc", "")),
            service_type=str(item.get("serviceType", "eDoc")),
            created_time=str(item.get("created_time", "")),
            updated_time=str(item.get("updated_time", "")),
        )


@dataclass(frozen=True)
class Agency:
    """An agency record on the axis: its organisation code and where it sits."""

    code: str
    name: str
    id: str = ""
    pid: str = ""
    mail: str = ""

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> Agency:
        return cls(
            code=str(item["code"]),
            name=str(item.get("name", "")),
            id=str(item.get("id", "")),
            pid=str(item.get("pid", "")),
            mail=str(item.get("mail", "")),
        )


def sign(params: Mapping[str, str], secret: str) -> dict[str, str]:
    """The HTTP headers that carry ``params`` and their HMAC, as the axis checks them."""
    payload = json.dumps(dict(params), separators=(",", ":"), ensure_ascii=True)
    digest = hmac.new(secret.encode("utf-8"), payload.encode("ascii"), hashlib.sha256).hexdigest()
    headers = {HEADER_PREFIX + name: value for name, value in params.items()}
    headers[SIGN_HEADER] = payload
    headers[SIGN_KEYS_HEADER] = ";".join(params)
    headers[HASH_HEADER] = digest
    return headers


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _check_choice(what: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{what} {value!r} is not one of {', '.join(allowed)}")


class AxisClient:
    """Talks to one axis endpoint as one registered system; thread-safe if the session is."""

    def __init__(
        self,
        base_url: str,
        system_id: str,
        secret: Secret,
        session: requests.Session | None = None,
        timeout: float = 10,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if not isinstance(secret, Secret):
            raise TypeError("secret must be a lienthong.adapter.Secret, so it never shows in logs")
        self.base_url = base_url.rstrip("/")
        self.system_id = system_id
        self._secret = secret
        self.session = session or requests.Session()
        self.timeout = timeout
        self.clock = clock

    def __repr__(self) -> str:
        return f"AxisClient({self.base_url!r}, system_id={self.system_id!r})"

    # --- documents and statuses ---

    def send(
        self,
        body: bytes,
        *,
        organ_id: str,
        message_type: str = "edoc",
        key: str | None = None,
        filename: str = "document.edxml",
    ) -> str:
        """Send an edXML document or status from ``organ_id``; returns the axis DocId."""
        _check_choice("messagetype", message_type, MESSAGE_TYPES)
        params = {"from": organ_id, "messagetype": message_type, "hash-file": sha256_hex(body)}
        if key:
            params[IDEMPOTENCY_PARAM] = key
        files = {"file_doc": (filename, body, "application/xml")}
        reply = self._call("POST", "/sendEdoc", params, files=files)
        doc_id = reply.get("DocId")
        if not doc_id:
            raise RejectedError(
                f"axis at {self.base_url}: sendEdoc answered without a DocId: {reply!r}"
            )
        return str(doc_id)

    def received(self, *, organ_id: str, message_type: str = "edoc") -> list[ReceivedItem]:
        """Documents or statuses waiting for ``organ_id`` that it has not acknowledged."""
        _check_choice("messagetype", message_type, MESSAGE_TYPES)
        reply = self._call(
            "GET", "/getReceivedEdocList", {"from": organ_id, "messagetype": message_type}
        )
        return [ReceivedItem.from_json(item) for item in reply.get("data", [])]

    def sent(self, *, organ_id: str, message_type: str = "edoc") -> list[ReceivedItem]:
        """What ``organ_id`` has sent, with each recipient's transport status."""
        _check_choice("messagetype", message_type, MESSAGE_TYPES)
        reply = self._call(
            "GET", "/getSentEdocList", {"from": organ_id, "messagetype": message_type}
        )
        return [ReceivedItem.from_json(item) for item in reply.get("data", [])]

    def count_received(self, *, organ_id: str, message_type: str = "edoc") -> int:
        """How many documents (or statuses) wait for ``organ_id``: a cheap poll."""
        _check_choice("messagetype", message_type, MESSAGE_TYPES)
        path = "/countReceiveEdoc" if message_type == "edoc" else "/countReceiveStatus"
        reply = self._call("GET", path, {"from": organ_id, "messagetype": message_type})
        return int(reply.get("total", 0))

    def fetch(self, doc_id: str, *, organ_id: str) -> bytes:
        """The edXML bytes of one received document or status, checked against its hash."""
        reply = self._call("GET", "/getEdoc", {"from": organ_id, "docId": doc_id})
        try:
            data = base64.b64decode(reply["data"], validate=True)
        except (KeyError, ValueError) as exc:
            raise TransientError(
                f"axis at {self.base_url}: getEdoc for docId '{doc_id}' answered without "
                "valid base64 'data'. Hint: the reply was cut; the next poll retries"
            ) from exc
        expected = reply.get("hash")
        if expected and expected != sha256_hex(data):
            raise TransientError(
                f"axis at {self.base_url}: document '{doc_id}' arrived with SHA-256 "
                f"{sha256_hex(data)} but the axis announced {expected}. Hint: a proxy may have "
                "altered it; the next poll fetches it again"
            )
        return data

    def download(self, doc_id: str, *, organ_id: str) -> bytes:
        """The raw edXML bytes of one received item, without the JSON wrapping of getEdoc."""
        url = self.base_url + "/downloadEdoc"
        response = self._request("GET", url, {"from": organ_id, "docId": doc_id})
        if response.status_code != 200:
            self._reply(url, response)
        return response.content

    def update_status(self, doc_id: str, status: str, *, organ_id: str) -> None:
        """Acknowledge the transport of one received item: done, fail or processing."""
        _check_choice("status", status, TRANSPORT_STATUSES)
        self._call("POST", "/updateStatus", {"from": organ_id, "docId": doc_id, "status": status})

    def check(self, *, organ_id: str) -> bool:
        """One cheap signed call that proves the secret works; whether the axis is a sandbox."""
        url = self.base_url + "/countReceiveEdoc"
        response = self._request("GET", url, {"from": organ_id, "messagetype": "edoc"})
        self._reply(url, response)
        return SANDBOX_HEADER in response.headers

    # --- agencies ---

    def agencies(self) -> list[Agency]:
        """Every agency the axis knows."""
        reply = self._call("GET", "/getAgenciesList", {})
        return [Agency.from_json(item) for item in reply.get("data", [])]

    def register_agency(self, agency: Agency) -> None:
        """Add or update an agency (code, name, parent id, mail)."""
        body = json.dumps(
            {"code": agency.code, "name": agency.name, "pid": agency.pid, "mail": agency.mail},
            ensure_ascii=False,
        ).encode("utf-8")
        self._call("POST", "/registerAgency", {"hash-file": sha256_hex(body)}, data=body)

    def delete_agency(self, code: str) -> None:
        """Remove an agency by its organisation code."""
        self._call("POST", "/deleteAgency", {"code": code})

    # --- the one place that talks HTTP ---

    def _params(self, extra: Mapping[str, str]) -> dict[str, str]:
        params = {
            "timestamp": str(int(self.clock().timestamp() * 1000)),
            "nonce": secrets.token_hex(8),
            "systemid": self.system_id,
            "servicetype": "eDoc",
        }
        params.update(extra)
        return params

    def _call(
        self,
        method: str,
        path: str,
        extra: Mapping[str, str],
        *,
        files: Mapping[str, Any] | None = None,
        data: bytes | None = None,
    ) -> dict[str, Any]:
        url = self.base_url + path
        response = self._request(method, url, extra, files=files, data=data)
        return self._reply(url, response)

    def _request(
        self,
        method: str,
        url: str,
        extra: Mapping[str, str],
        *,
        files: Mapping[str, Any] | None = None,
        data: bytes | None = None,
    ) -> requests.Response:
        headers = sign(self._params(extra), self._secret.reveal())
        if data is not None:
            headers["Content-Type"] = "application/json; charset=utf-8"
        try:
            response = self.session.request(
                method, url, headers=headers, files=files, data=data, timeout=self.timeout
            )
        except requests.Timeout as exc:
            raise TransientError(
                f"axis at {url} did not answer in {self.timeout:g} s. "
                "Hint: check the network to the axis; the bus retries"
            ) from exc
        except requests.RequestException as exc:
            raise TransientError(
                f"axis at {url} cannot be reached: {type(exc).__name__}. "
                "Hint: check the endpoint option 'url' and the network; the bus retries"
            ) from exc
        log.debug("axis %s %s -> %s", method, url, response.status_code)
        return response

    def _reply(self, url: str, response: requests.Response) -> dict[str, Any]:
        code = response.status_code
        try:
            reply = response.json()
        except ValueError:
            reply = None
        desc = ""
        if isinstance(reply, dict):
            desc = str(reply.get("ErrorDesc") or "")
        shown = f": {desc}" if desc else ""
        if code >= 500 or code == 429:
            raise TransientError(
                f"axis at {url} answered HTTP {code}{shown}. Hint: the bus retries"
            )
        if code == 401:
            raise AxisAuthError(
                f"axis at {url} refused system id '{self.system_id}': wrong secret or unknown "
                f"system{shown}. Hint: check endpoint option 'secret' (and 'system_id'), and "
                "that this host's clock is right",
                option="secret",
            )
        if code == 403:
            raise AxisAuthError(
                f"axis at {url} refused system id '{self.system_id}' for this call{shown}. "
                "Hint: check endpoint option 'organ_id', or ask the axis operator to link the "
                "system to that agency",
                option="organ_id",
            )
        if code >= 400:
            raise RejectedError(f"axis at {url} rejected the request (HTTP {code}){shown}")
        if not isinstance(reply, dict):
            raise TransientError(
                f"axis at {url} answered HTTP {code} without a JSON object. "
                "Hint: a proxy may stand in front of the axis; the bus retries"
            )
        if str(reply.get("status", "OK")).upper() != "OK":
            raise RejectedError(
                f"axis at {url} refused the request: ErrorCode {reply.get('ErrorCode')!r}{shown}"
            )
        return reply
