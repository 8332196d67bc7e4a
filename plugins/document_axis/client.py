"""The axis client: the national document axis's REST surface, as the vendor's Java SDK speaks it.

The wire format is the one the vendor SDK (SDKVXP 2.0.1) was observed to send
and read (``shared/reference/vxp-sdk/WIRE.md``; docs/axis.md, "Wire format"):

- every call is signed: each parameter travels as a header ``XroadVnpt-<name>``;
  the same pairs, keys with the ``XroadVnpt-`` prefix and ``Content-Type``
  among them, make one JSON object in ``XroadVnpt-sign-header``; the bare
  names, joined by ``;``, in ``XroadVnpt-sign-header-key``; and
  ``XroadVnpt-hash-header`` = hex HMAC-SHA256(shared secret, that JSON);
- ``timestamp`` is ``ddMMyyyy'T'HHmmss+SSSS`` in this host's local time (the
  ``+SSSS`` is milliseconds, not a zone);
- POST for every call but ``downloadEdoc`` (GET); no ``from`` where the axis
  knows the agency from the system id (lists, fetch, acknowledgements);
- ``sendEdoc`` posts the file as ``application/octet-stream`` followed by CRLF,
  with ``hash-file`` = SHA-256 hex of the file, each byte without its leading
  zero as the SDK writes it (:class:`Wire` ``hash_file="padded"`` otherwise).

What the SDK does not send and lienthong adds, as further signed parameters
(the axis takes unknown ones: the SDK itself signs its local ``filePath``): a
random ``nonce`` (so an axis that checks it can refuse a replay) and the
delivery's ``idempotency-key`` on ``sendEdoc``. :class:`Wire` turns each off.

The client never loops: connection errors, timeouts and 5xx raise
:class:`~lienthong.errors.TransientError` for the core to retry; a refused
signature raises :class:`AxisAuthError` (a human must fix the secret); any other
4xx, or an answer whose ``ErrorCode`` is not ``"0"``, raises
:class:`~lienthong.errors.RejectedError`. The secret never appears in an error,
a log line or a repr.
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
#: What the SDK sends as ``User-Agent`` and ``XroadVnpt-version``.
SDK_USER_AGENT = "JAVASDKAgent/1.0.0 XRoad/VPCP"
SDK_VERSION = "3.0.201608"
JSON_TYPE = "application/json"
FILE_TYPE = "application/octet-stream"

#: The body the SDK posts with count, getEdoc, updateStatus and deleteAgency (the other
#: calls but sendEdoc and registerAgency post none).
EMPTY_JSON = b"{}"

MESSAGE_TYPES = ("edoc", "status")
TRANSPORT_STATUSES = ("done", "fail", "processing")
HASH_FILE_FORMS = ("unpadded", "padded")


class AxisAuthError(FatalError):
    """The axis refused our system id or signature: retrying cannot help, a human must fix it.

    ``option`` names the endpoint option to look at: ``secret`` (HTTP 401) or
    ``organ_id`` (HTTP 403).
    """

    def __init__(self, message: str, option: str) -> None:
        super().__init__(message)
        self.option = option


@dataclass(frozen=True)
class Wire:
    """Where the real axis may differ from what can be checked here; the SDK's ways by default.

    ``hash_file``: ``unpadded`` writes each SHA-256 byte without its leading
    zero, as the SDK does (``Integer.toHexString``); ``padded`` is standard hex.
    ``nonce`` and ``idempotency_key`` add those signed parameters (the SDK sends
    neither). ``trailing_crlf`` ends the ``sendEdoc`` body with CRLF, as the SDK
    does (``hash-file`` covers the file without it).
    """

    hash_file: str = "unpadded"
    nonce: bool = True
    idempotency_key: bool = True
    trailing_crlf: bool = True

    def __post_init__(self) -> None:
        if self.hash_file not in HASH_FILE_FORMS:
            raise ValueError(
                f"hash_file {self.hash_file!r} is not one of {', '.join(HASH_FILE_FORMS)}"
            )


@dataclass(frozen=True)
class ReceivedItem:
    """One entry of a received list, in the SDK's field names."""

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
class SentItem:
    """One recipient of something sent, with both transport statuses (getSentEdocList)."""

    sender_doc_id: str
    receiver_doc_id: str
    from_code: str
    to_code: str
    send_status: str
    receive_status: str
    send_status_desc: str = ""
    receive_status_desc: str = ""
    sent_time: str = ""
    received_time: str = ""
    title: str = ""
    notation: str = ""
    service_type: str = "eDoc"
    message_type: str = ""

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> SentItem:
        def text(name: str, default: str = "") -> str:
            value = item.get(name)
            return default if value is None else str(value)

        return cls(
            sender_doc_id=text("senderDocId"),
            receiver_doc_id=text("receiverDocId"),
            from_code=text("fromCode"),
            to_code=text("toCode"),
            send_status=text("sendStatus"),
            receive_status=text("receiveStatus"),
            send_status_desc=text("sendStatusDesc"),
            receive_status_desc=text("receiveStatusDesc"),
            sent_time=text("sentTime"),
            received_time=text("receivedTime"),
            title=text("title"),
            notation=text("notation"),
            service_type=text("serviceType", "eDoc"),
            message_type=text("messageType"),
        )


@dataclass(frozen=True)
class Agency:
    """An agency record on the axis: its organisation code and where it sits."""

    code: str
    name: str
    id: str = ""
    pid: str = ""
    mail: str = ""
    mobile: str = ""
    fax: str = ""

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> Agency:
        def text(name: str) -> str:
            value = item.get(name)
            return "" if value is None else str(value)

        return cls(
            code=str(item["code"]),
            name=text("name"),
            id=text("id"),
            pid=text("pid"),
            mail=text("mail"),
        )


def sign(params: Mapping[str, str], secret: str) -> dict[str, str]:
    """The HTTP headers that carry ``params`` and their HMAC, in the SDK's signed form.

    ``params`` holds bare names (``systemid``, ``timestamp``, ``Content-Type``...);
    the JSON signed keys them ``XroadVnpt-<name>``, as the SDK's Gson object does.
    """
    prefixed = {HEADER_PREFIX + name: value for name, value in params.items()}
    payload = json.dumps(prefixed, separators=(",", ":"), ensure_ascii=True)
    digest = hmac.new(secret.encode("utf-8"), payload.encode("utf-8"), hashlib.sha256)
    headers = dict(prefixed)
    headers[SIGN_HEADER] = payload
    headers[SIGN_KEYS_HEADER] = ";".join(params)
    headers[HASH_HEADER] = digest.hexdigest()
    return headers


def sha256_hex(data: bytes) -> str:
    """Standard (padded) hex of SHA-256."""
    return hashlib.sha256(data).hexdigest()


def sdk_hash_file(data: bytes) -> str:
    """SHA-256 hex as the SDK writes ``hash-file``: each byte without its leading zero."""
    return "".join(f"{byte:x}" for byte in hashlib.sha256(data).digest())


def hash_file(data: bytes, form: str) -> str:
    """``hash-file`` in ``form``: ``unpadded`` (the SDK's) or ``padded``."""
    return sdk_hash_file(data) if form == "unpadded" else sha256_hex(data)


def sdk_timestamp(when: datetime) -> str:
    """``ddMMyyyy'T'HHmmss+SSSS`` in local time, as the SDK's SimpleDateFormat writes it."""
    local = when.astimezone()
    return f"{local:%d%m%YT%H%M%S}+{local.microsecond // 1000:04d}"


def _check_choice(what: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{what} {value!r} is not one of {', '.join(allowed)}")


class AxisClient:
    """Talks to one axis endpoint as one registered system; thread-safe if the session is.

    The axis knows which agency a system acts for; only :meth:`send` names it
    (``from``), as the SDK does.
    """

    def __init__(
        self,
        base_url: str,
        system_id: str,
        secret: Secret,
        session: requests.Session | None = None,
        timeout: float = 10,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        wire: Wire | None = None,
    ) -> None:
        if not isinstance(secret, Secret):
            raise TypeError("secret must be a lienthong.adapter.Secret, so it never shows in logs")
        self.base_url = base_url.rstrip("/")
        self.system_id = system_id
        self._secret = secret
        self.session = session or requests.Session()
        self.timeout = timeout
        self.clock = clock
        self.wire = wire or Wire()

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
    ) -> str:
        """Send an edXML document or status from ``organ_id``; returns the axis DocId."""
        _check_choice("messagetype", message_type, MESSAGE_TYPES)
        params = {
            "servicetype": "eDoc",
            "messagetype": message_type,
            "hash-file": hash_file(body, self.wire.hash_file),
            "from": organ_id,
        }
        if key and self.wire.idempotency_key:
            params[IDEMPOTENCY_PARAM] = key
        payload = body + b"\r\n" if self.wire.trailing_crlf else body
        reply = self._call("/sendEdoc", params, content_type=FILE_TYPE, data=payload)
        doc_id = reply.get("DocId")
        if not doc_id:
            raise RejectedError(
                f"axis at {self.base_url}: sendEdoc answered without a DocId: {reply!r}"
            )
        return str(doc_id)

    def received(self, *, message_type: str = "edoc") -> list[ReceivedItem]:
        """Documents or statuses waiting for this system's agency, not yet acknowledged."""
        _check_choice("messagetype", message_type, MESSAGE_TYPES)
        reply = self._call("/getReceivedEdocList", self._kind(message_type))
        return [ReceivedItem.from_json(item) for item in reply.get("data") or []]

    def sent(self, *, message_type: str = "edoc") -> list[SentItem]:
        """What this system's agency has sent, one record per recipient."""
        _check_choice("messagetype", message_type, MESSAGE_TYPES)
        reply = self._call("/getSentEdocList", self._kind(message_type))
        return [SentItem.from_json(item) for item in reply.get("data") or []]

    def count_received(self, *, message_type: str = "edoc") -> int:
        """How many documents (or statuses) wait for this system's agency: a cheap poll."""
        _check_choice("messagetype", message_type, MESSAGE_TYPES)
        path = "/countReceiveEdoc" if message_type == "edoc" else "/countReceiveStatus"
        reply = self._call(path, self._kind(message_type), data=EMPTY_JSON)
        return int(reply.get("count") or 0)

    def fetch(self, doc_id: str) -> bytes:
        """The edXML bytes of one received document or status, checked against its hash."""
        reply = self._call("/getEdoc", {"docId": doc_id}, data=EMPTY_JSON)
        try:
            data = base64.b64decode(reply["data"], validate=True)
        except (KeyError, TypeError, ValueError) as exc:
            raise TransientError(
                f"axis at {self.base_url}: getEdoc for docId '{doc_id}' answered without "
                "valid base64 'data'. Hint: the reply was cut; the next poll retries"
            ) from exc
        expected = reply.get("hash")
        if expected and expected not in (sha256_hex(data), sdk_hash_file(data)):
            raise TransientError(
                f"axis at {self.base_url}: document '{doc_id}' arrived with SHA-256 "
                f"{sha256_hex(data)} but the axis announced {expected}. Hint: a proxy may have "
                "altered it; the next poll fetches it again"
            )
        return data

    def download(self, doc_id: str) -> bytes:
        """The raw edXML bytes of one received item (GET, as the SDK's downloadEdoc)."""
        url = self.base_url + "/downloadEdoc"
        response = self._request("GET", url, {"docId": doc_id}, content_type=JSON_TYPE)
        if response.status_code != 200:
            self._reply(url, response)
        return response.content

    def update_status(self, doc_id: str, status: str) -> None:
        """Acknowledge the transport of one received item: done, fail or processing."""
        _check_choice("status", status, TRANSPORT_STATUSES)
        self._call("/updateStatus", {"docId": doc_id, "status": status}, data=EMPTY_JSON)

    def check(self) -> bool:
        """One cheap signed call that proves the secret works; whether the axis is a sandbox."""
        url = self.base_url + "/countReceiveEdoc"
        response = self._request(
            "POST", url, self._kind("edoc"), content_type=JSON_TYPE, data=EMPTY_JSON
        )
        self._reply(url, response)
        return SANDBOX_HEADER in response.headers

    # --- agencies ---

    def agencies(self) -> list[Agency]:
        """Every agency the axis knows."""
        reply = self._call("/getAgenciesList", {})
        return [Agency.from_json(item) for item in reply.get("data") or []]

    def register_agency(self, agency: Agency, *, parent_code: str = "") -> None:
        """Add or update an agency, in the SDK's record shape (``pcode``: the parent's code)."""
        record = {
            "id": agency.id,
            "pcode": parent_code,
            "code": agency.code,
            "name": agency.name,
            "mail": agency.mail,
            "mobile": agency.mobile,
            "fax": agency.fax,
        }
        body = json.dumps(record, ensure_ascii=False).encode("utf-8")
        self._call("/registerAgency", {}, data=body)

    def delete_agency(self, code: str) -> None:
        """Remove an agency by its organisation code."""
        self._call("/deleteAgency", {"AgencyCode": code}, data=EMPTY_JSON)

    # --- the one place that talks HTTP ---

    @staticmethod
    def _kind(message_type: str) -> dict[str, str]:
        return {"servicetype": "eDoc", "messagetype": message_type}

    def _params(self, extra: Mapping[str, str], content_type: str) -> dict[str, str]:
        params = {"systemid": self.system_id, **extra}
        params["timestamp"] = sdk_timestamp(self.clock())
        if self.wire.nonce:
            params["nonce"] = secrets.token_hex(8)
        params["Content-Type"] = content_type
        return params

    def _call(
        self,
        path: str,
        extra: Mapping[str, str],
        *,
        content_type: str = JSON_TYPE,
        data: bytes | None = None,
    ) -> dict[str, Any]:
        url = self.base_url + path
        response = self._request("POST", url, extra, content_type=content_type, data=data)
        return self._reply(url, response)

    def _request(
        self,
        method: str,
        url: str,
        extra: Mapping[str, str],
        *,
        content_type: str,
        data: bytes | None = None,
    ) -> requests.Response:
        headers = sign(self._params(extra, content_type), self._secret.reveal())
        headers["Content-Type"] = content_type
        headers["User-Agent"] = SDK_USER_AGENT
        headers[HEADER_PREFIX + "version"] = SDK_VERSION
        try:
            response = self.session.request(
                method, url, headers=headers, data=data, timeout=self.timeout
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
        if str(reply.get("ErrorCode", "")) != "0":
            raise RejectedError(
                f"axis at {url} refused the request: ErrorCode {reply.get('ErrorCode')!r}{shown}"
            )
        return reply
