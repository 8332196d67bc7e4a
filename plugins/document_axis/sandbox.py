"""SANDBOX axis: a small local server speaking the national document axis's REST surface.

This is a sandbox for tests and demos, never the real axis: every reply carries
``X-Lienthong-Sandbox: axis``. It listens on 127.0.0.1 only.

Features:
    - the calls of :mod:`.client`: sendEdoc, getReceivedEdocList, getSentEdocList,
      countReceiveEdoc, countReceiveStatus, getEdoc, downloadEdoc, updateStatus,
      getAgenciesList, registerAgency, deleteAgency;
    - checks the HMAC headers against per-system secrets (401 when wrong), refuses
      timestamps older than ``max_age`` and repeated nonces (401 "replayed or
      stale request"), and a file whose SHA-256 differs from ``hash-file`` (400);
    - routes a document to every ``To/OrganId`` and a status to
      ``ResponseFor/OrganId``, keeping a received list per agency;
    - deduplicates ``sendEdoc`` on (system, ``idempotency-key``);
    - fault injection (:meth:`SandboxAxis.inject`) and a request log for tests.

Run it for a demo::

    python -m lienthong.plugins.document_axis.sandbox --port 8088 \\
        --system dms-a:secret-a --agency 000.00.00.H41 --agency 000.00.00.G22
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from lienthong import xml
from lienthong.errors import RejectedError

from .client import (
    HASH_HEADER,
    HEADER_PREFIX,
    IDEMPOTENCY_PARAM,
    SANDBOX_HEADER,
    SIGN_HEADER,
    SIGN_KEYS_HEADER,
)

NS = {"ed": "http://www.mic.gov.vn/TBT/QCVN_102_2016"}
#: Larger request bodies are refused unread (413): the sandbox is no place for a memory test.
MAX_BODY_BYTES = 20 * 1024 * 1024


class _Refused(Exception):
    def __init__(self, code: int, desc: str) -> None:
        super().__init__(desc)
        self.code = code
        self.desc = desc


@dataclass
class StoredDoc:
    """One document or status the sandbox holds, with each recipient's transport status."""

    doc_id: str
    message_type: str
    sender: str
    recipients: list[str]
    content: bytes
    created: str
    status: dict[str, str] = field(default_factory=dict)
    updated: dict[str, str] = field(default_factory=dict)


@dataclass
class Fault:
    """A fault to inject into the next ``count`` requests whose path matches.

    ``status`` None handles the request normally after the delay: the reply
    arrives too late, but the axis did the work (a lost reply).
    """

    status: int | None = 500
    delay: float = 0.0
    count: int = 1
    path: str | None = None


def _now_text() -> str:
    return datetime.now(UTC).strftime("%Y/%m/%d %H:%M:%S")


class SandboxAxis:
    """A sandbox axis on a free loopback port; ``with SandboxAxis(...) as axis: axis.url``."""

    def __init__(
        self,
        systems: dict[str, str] | None = None,
        agencies: Iterable[str] = (),
        *,
        port: int = 0,
        max_age: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.systems = dict(systems or {})
        self.max_age = max_age
        self.clock = clock
        self.port = port
        self.lock = threading.RLock()
        self.agencies: dict[str, dict[str, str]] = {}
        self.docs: dict[str, StoredDoc] = {}
        self.requests: list[tuple[str, str, int]] = []
        self.faults: list[Fault] = []
        self._nonces: dict[str, float] = {}
        self._keys: dict[tuple[str, str], str] = {}
        self._ids = itertools.count(1)
        for code in agencies:
            self.register_agency(code, code)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---

    def start(self) -> SandboxAxis:
        handler = type("Handler", (_Handler,), {"axis": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self._server.daemon_threads = True
        # A short poll interval keeps stop() quick: tests start and stop many sandboxes.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="sandbox-axis",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> SandboxAxis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the sandbox axis is not started. Hint: call start() first")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # --- set-up and inspection for tests ---

    def add_system(self, system_id: str, secret: str) -> None:
        with self.lock:
            self.systems[system_id] = secret

    def register_agency(self, code: str, name: str, pid: str = "", mail: str = "") -> None:
        with self.lock:
            record = self.agencies.get(code)
            ident = record["id"] if record else str(len(self.agencies) + 1)
            self.agencies[code] = {
                "id": ident,
                "pid": pid,
                "code": code,
                "name": name,
                "mail": mail,
            }

    def deliver(
        self, sender: str, recipients: list[str], content: bytes, message_type: str = "edoc"
    ) -> str:
        """Put an item straight into agencies' received lists, as if another axis relayed it.

        Skips every check ``sendEdoc`` makes, so tests can hand a receiver what a
        careless sender elsewhere might (bytes that are not even XML).
        """
        with self.lock:
            doc_id = f"sandbox-{next(self._ids):06d}"
            stamp = _now_text()
            self.docs[doc_id] = StoredDoc(
                doc_id,
                message_type,
                sender,
                list(recipients),
                content,
                stamp,
                status=dict.fromkeys(recipients, "pending"),
                updated=dict.fromkeys(recipients, stamp),
            )
        return doc_id

    def inject(
        self,
        status: int | None = 500,
        *,
        delay: float = 0.0,
        count: int = 1,
        path: str | None = None,
    ) -> None:
        """Make the next ``count`` requests (to ``path``, if given) wait ``delay`` s, then fail.

        With ``status`` None they are handled normally after the delay.
        """
        with self.lock:
            self.faults.append(Fault(status=status, delay=delay, count=count, path=path))

    def snapshot(self) -> dict[str, Any]:
        """A copy of the state: agencies, each agency's received items and statuses, requests."""
        with self.lock:
            inbox: dict[str, list[dict[str, str]]] = {}
            for doc in self.docs.values():
                for agency in doc.recipients:
                    inbox.setdefault(agency, []).append(
                        {
                            "docId": doc.doc_id,
                            "messageType": doc.message_type,
                            "from": doc.sender,
                            "status": doc.status[agency],
                        }
                    )
            return {
                "agencies": sorted(self.agencies),
                "inbox": inbox,
                "sent": {d.doc_id: (d.sender, d.message_type) for d in self.docs.values()},
                "requests": list(self.requests),
            }

    def request_count(self, path: str | None = None) -> int:
        with self.lock:
            return sum(1 for _, p, _ in self.requests if path is None or p == path)

    # --- request handling (runs on the server's threads) ---

    def _take_fault(self, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.path in (None, path):
                    fault.count -= 1
                    if fault.count <= 0:
                        self.faults.remove(fault)
                    return fault
        return None

    def authenticate(self, headers: Any) -> dict[str, str]:
        """Check the signed headers and return the signed parameters."""
        payload = headers.get(SIGN_HEADER)
        keys = headers.get(SIGN_KEYS_HEADER)
        given = headers.get(HASH_HEADER)
        if not payload or not keys or not given:
            raise _Refused(401, "missing XroadVnpt signature headers")
        try:
            params = json.loads(payload)
        except ValueError as exc:
            raise _Refused(401, "XroadVnpt-sign-header is not JSON") from exc
        if not isinstance(params, dict) or list(params) != keys.split(";"):
            raise _Refused(401, "XroadVnpt-sign-header-key does not list the signed names")
        for name, value in params.items():
            if headers.get(HEADER_PREFIX + name) != value:
                raise _Refused(401, f"header {HEADER_PREFIX}{name} differs from the signed value")
        system = params.get("systemid", "")
        with self.lock:
            secret = self.systems.get(system)
        if secret is None:
            raise _Refused(401, f"unknown system '{system}'")
        expected = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, given):
            raise _Refused(401, f"signature does not match for system '{system}'")
        try:
            stamp = int(params["timestamp"]) / 1000
        except (KeyError, ValueError) as exc:
            raise _Refused(401, "replayed or stale request: no valid timestamp") from exc
        now = self.clock()
        if abs(now - stamp) > self.max_age:
            raise _Refused(401, f"replayed or stale request: timestamp is {now - stamp:.0f} s off")
        nonce = f"{system}:{params.get('nonce', '')}:{params['timestamp']}"
        with self.lock:
            self._nonces = {n: t for n, t in self._nonces.items() if now - t <= self.max_age}
            if nonce in self._nonces:
                raise _Refused(401, "replayed or stale request: this signature was already used")
            self._nonces[nonce] = now
        return params

    def handle(self, method: str, path: str, headers: Any, body: bytes) -> tuple[int, Any]:
        params = self.authenticate(headers)
        route = _ROUTES.get((method, path))
        if route is None:
            raise _Refused(404, f"no call {method} {path} on this axis")
        return 200, route(self, params, headers, body)

    def _from(self, params: dict[str, str]) -> str:
        agency = params.get("from", "")
        with self.lock:
            known = agency in self.agencies
        if not known:
            raise _Refused(403, f"agency '{agency}' is not registered on this axis")
        return agency

    def _send(self, params: dict[str, str], headers: Any, body: bytes) -> dict[str, Any]:
        sender = self._from(params)
        content = _file_part(headers.get("Content-Type", ""), body, "file_doc")
        if hashlib.sha256(content).hexdigest() != params.get("hash-file"):
            raise _Refused(400, "hash-file does not match the SHA-256 of file_doc")
        message_type = params.get("messagetype")
        if message_type not in ("edoc", "status"):
            raise _Refused(400, f"messagetype {message_type!r} is not edoc or status")
        try:
            root = xml.parse(content, what="file_doc").getroot()
        except RejectedError as exc:
            raise _Refused(400, str(exc)) from exc
        header = "ed:edXMLEnvelope/ed:edXMLHeader/ed:MessageHeader/"
        origin = root.xpath(f"string({header}ed:From/ed:OrganId)", namespaces=NS).strip()
        if origin != sender:
            raise _Refused(400, f"From/OrganId '{origin}' is not the calling agency '{sender}'")
        where = "ed:To/ed:OrganId" if message_type == "edoc" else "ed:ResponseFor/ed:OrganId"
        recipients = [t.strip() for t in root.xpath(f"{header}{where}/text()", namespaces=NS)]
        if not recipients:
            raise _Refused(400, f"no {where.replace('ed:', '')} to route the {message_type} to")
        system = params["systemid"]
        key = params.get(IDEMPOTENCY_PARAM)
        with self.lock:
            unknown = [r for r in recipients if r not in self.agencies]
            if unknown:
                raise _Refused(400, f"unknown recipient agency {', '.join(unknown)}")
            if key and (system, key) in self._keys:
                return {
                    "status": "OK",
                    "ErrorCode": "0",
                    "ErrorDesc": "duplicate",
                    "DocId": self._keys[(system, key)],
                }
            doc_id = self.deliver(sender, recipients, content, message_type)
            if key:
                self._keys[(system, key)] = doc_id
        return {"status": "OK", "ErrorCode": "0", "ErrorDesc": "", "DocId": doc_id}

    def _item(self, doc: StoredDoc, agency: str) -> dict[str, str]:
        return {
            "docId": doc.doc_id,
            "serviceType": "eDoc",
            "messageType": doc.message_type,
            "created_time": doc.created,
            "updated_time": doc.updated[agency],
            "from": doc.sender,
            "to": agency,
            "status": doc.status[agency],
            "status_desc": "",
        }

    def _received(self, params: dict[str, str], headers: Any, body: bytes) -> dict[str, Any]:
        agency = self._from(params)
        kind = params.get("messagetype", "edoc")
        with self.lock:
            data = [
                self._item(d, agency)
                for d in self.docs.values()
                if d.message_type == kind
                and agency in d.recipients
                and d.status[agency] in ("pending", "processing")
            ]
        return {"status": "OK", "data": data}

    def _count(self, params: dict[str, str], headers: Any, body: bytes) -> dict[str, Any]:
        return {"status": "OK", "total": len(self._received(params, headers, body)["data"])}

    def _sent(self, params: dict[str, str], headers: Any, body: bytes) -> dict[str, Any]:
        agency = self._from(params)
        kind = params.get("messagetype", "edoc")
        with self.lock:
            data = [
                self._item(d, r)
                for d in self.docs.values()
                if d.message_type == kind and d.sender == agency
                for r in d.recipients
            ]
        return {"status": "OK", "data": data}

    def _doc_for(self, params: dict[str, str]) -> tuple[StoredDoc, str]:
        agency = self._from(params)
        doc_id = params.get("docId", "")
        with self.lock:
            doc = self.docs.get(doc_id)
        if doc is None or agency not in doc.recipients:
            raise _Refused(404, f"no document '{doc_id}' for agency '{agency}'")
        return doc, agency

    def _get(self, params: dict[str, str], headers: Any, body: bytes) -> dict[str, Any]:
        doc, _ = self._doc_for(params)
        return {
            "status": "OK",
            "data": base64.b64encode(doc.content).decode("ascii"),
            "hash": hashlib.sha256(doc.content).hexdigest(),
            "messageType": doc.message_type,
        }

    def _download(self, params: dict[str, str], headers: Any, body: bytes) -> bytes:
        return self._doc_for(params)[0].content

    def _update(self, params: dict[str, str], headers: Any, body: bytes) -> dict[str, Any]:
        doc, agency = self._doc_for(params)
        status = params.get("status")
        if status not in ("done", "fail", "processing"):
            raise _Refused(400, f"status {status!r} is not done, fail or processing")
        with self.lock:
            doc.status[agency] = status
            doc.updated[agency] = _now_text()
        return {"status": "OK", "ErrorCode": "0", "ErrorDesc": ""}

    def _agencies(self, params: dict[str, str], headers: Any, body: bytes) -> dict[str, Any]:
        with self.lock:
            return {"status": "OK", "data": [dict(a) for a in self.agencies.values()]}

    def _register(self, params: dict[str, str], headers: Any, body: bytes) -> dict[str, Any]:
        if hashlib.sha256(body).hexdigest() != params.get("hash-file"):
            raise _Refused(400, "hash-file does not match the SHA-256 of the body")
        try:
            record = json.loads(body)
            code, name = str(record["code"]), str(record["name"])
        except (ValueError, KeyError, TypeError) as exc:
            raise _Refused(400, "registerAgency needs a JSON body with code and name") from exc
        self.register_agency(code, name, str(record.get("pid", "")), str(record.get("mail", "")))
        return {"status": "OK", "ErrorCode": "0", "ErrorDesc": ""}

    def _delete(self, params: dict[str, str], headers: Any, body: bytes) -> dict[str, Any]:
        code = params.get("code", "")
        with self.lock:
            if self.agencies.pop(code, None) is None:
                raise _Refused(404, f"no agency '{code}'")
        return {"status": "OK", "ErrorCode": "0", "ErrorDesc": ""}


_Route = Callable[[SandboxAxis, dict[str, str], Any, bytes], Any]
_ROUTES: dict[tuple[str, str], _Route] = {
    ("POST", "/sendEdoc"): SandboxAxis._send,
    ("GET", "/getReceivedEdocList"): SandboxAxis._received,
    ("GET", "/getSentEdocList"): SandboxAxis._sent,
    ("GET", "/countReceiveEdoc"): SandboxAxis._count,
    ("GET", "/countReceiveStatus"): SandboxAxis._count,
    ("GET", "/getEdoc"): SandboxAxis._get,
    ("GET", "/downloadEdoc"): SandboxAxis._download,
    ("POST", "/updateStatus"): SandboxAxis._update,
    ("GET", "/getAgenciesList"): SandboxAxis._agencies,
    ("POST", "/registerAgency"): SandboxAxis._register,
    ("POST", "/deleteAgency"): SandboxAxis._delete,
}


def _file_part(content_type: str, body: bytes, name: str) -> bytes:
    """The bytes of the multipart part called ``name``."""
    if not content_type.startswith("multipart/form-data"):
        raise _Refused(400, "sendEdoc needs a multipart/form-data body")
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    for part in message.iter_parts():  # type: ignore[attr-defined]
        if part.get_param("name", header="content-disposition") == name:
            payload = part.get_payload(decode=True)
            return payload if isinstance(payload, bytes) else b""
    raise _Refused(400, f"sendEdoc needs a file part '{name}'")


class _Handler(BaseHTTPRequestHandler):
    axis: SandboxAxis
    protocol_version = "HTTP/1.1"

    def _serve(self, method: str) -> None:
        path = self.path.split("?", 1)[0]
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            self._answer(
                413,
                {
                    "status": "FAIL",
                    "ErrorCode": "413",
                    "ErrorDesc": f"body over {MAX_BODY_BYTES:,} bytes",
                },
            )
            return
        body = self.rfile.read(length) if length else b""
        fault = self.axis._take_fault(path)
        if fault is not None and fault.delay:
            time.sleep(fault.delay)
        if fault is not None and fault.status is not None:
            status, reply = (
                fault.status,
                {"status": "FAIL", "ErrorCode": str(fault.status), "ErrorDesc": "injected fault"},
            )
        else:
            try:
                status, reply = self.axis.handle(method, path, self.headers, body)
            except _Refused as refused:
                status, reply = (
                    refused.code,
                    {"status": "FAIL", "ErrorCode": str(refused.code), "ErrorDesc": refused.desc},
                )
        self._answer(status, reply)

    def _answer(self, status: int, reply: Any) -> None:
        with self.axis.lock:
            self.axis.requests.append((self.command, self.path.split("?", 1)[0], status))
        if isinstance(reply, bytes):
            payload, ctype = reply, "application/xml"
        else:
            payload, ctype = json.dumps(reply, ensure_ascii=False).encode(), "application/json"
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header(SANDBOX_HEADER, "axis")
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (its timeout): nothing left to tell it

    def do_GET(self) -> None:  # noqa: N802 (the stdlib's naming)
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._serve("POST")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Quiet: the request log is :attr:`SandboxAxis.requests`."""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m lienthong.plugins.document_axis.sandbox",
        description="Run a SANDBOX national document axis on 127.0.0.1 (tests and demos only).",
    )
    parser.add_argument("--port", type=int, default=8088)
    parser.add_argument(
        "--system",
        action="append",
        default=[],
        metavar="ID:SECRET",
        help="a system allowed to call, with its shared secret (repeatable)",
    )
    parser.add_argument(
        "--agency",
        action="append",
        default=[],
        metavar="CODE[:NAME]",
        help="an agency to register (repeatable)",
    )
    parser.add_argument(
        "--max-age",
        type=float,
        default=300.0,
        help="seconds after which a signed request is refused as stale",
    )
    args = parser.parse_args(argv)
    systems = {}
    for item in args.system:
        system_id, sep, secret = item.partition(":")
        if not sep or not system_id or not secret:
            parser.error(f"--system {item!r}: expected ID:SECRET")
        systems[system_id] = secret
    axis = SandboxAxis(systems, port=args.port, max_age=args.max_age)
    for item in args.agency:
        code, _, name = item.partition(":")
        axis.register_agency(code, name or code)
    axis.start()
    print(
        f"SANDBOX axis listening on {axis.url} (systems: {', '.join(systems) or 'none'})",
        flush=True,
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        axis.stop()


if __name__ == "__main__":
    main()
