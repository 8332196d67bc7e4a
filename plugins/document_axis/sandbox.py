"""SANDBOX axis: a small local server speaking the national document axis's REST surface.

This is a sandbox for tests and demos, never the real axis: every reply carries
``X-Lienthong-Sandbox: axis``. It listens on 127.0.0.1 only. It accepts what
the axis vendor's Java SDK (SDKVXP 2.0.1) sends and answers what it reads; the
conformance tests (``tests/conformance/``) drive the SDK itself against it.

Features:
    - the calls of the SDK: sendEdoc, getReceivedEdocList, getSentEdocList,
      countReceiveEdoc, countReceiveStatus, getEdoc, updateStatus,
      getAgenciesList, registerAgency, deleteAgency (POST), downloadEdoc (GET),
      each in :mod:`.sandbox_calls`;
    - checks the HMAC headers in the SDK's signed form (prefixed JSON keys,
      ``Content-Type`` signed) against per-system secrets (401 when wrong), and
      both timestamp forms (the SDK's ``ddMMyyyy'T'HHmmss+SSSS``, or epoch
      milliseconds);
    - replay protection for clients that sign a ``nonce``: a stale timestamp or a
      repeated nonce is refused (401 "replayed or stale request"). The SDK sends
      no nonce and reuses one timestamp for the life of its service object, so
      its requests cannot be checked that way: they are accepted, unless
      ``require_nonce`` is set (docs/axis.md, "Replay protection");
    - binds each system to its agency: lists, fetches and acknowledgements are
      that agency's only, and a ``from`` naming another agency is refused (403);
    - a file whose SHA-256 differs from ``hash-file`` (padded or the SDK's
      unpadded hex) is refused (400); the SDK's trailing CRLF is not part of it;
    - routes a document to every ``To/OrganId`` and a status to
      ``ResponseFor/OrganId``, keeping a received list per agency; a status
      about the sender's own document (13, a recall request) goes to the
      agencies that document went to;
    - every answer carries ``status``, ``ErrorCode`` and ``ErrorDesc`` (and
      ``DocId`` for sendEdoc, even on failure): the SDK reads them unchecked;
    - deduplicates ``sendEdoc`` on (system, ``idempotency-key``);
    - fault injection (:meth:`SandboxAxis.inject`) and a request log for tests.

Run it for a demo::

    python -m lienthong.plugins.document_axis.sandbox --port 8088 \\
        --system dms-a:secret-a:000.00.00.H15 --agency 000.00.00.H15 --agency 000.00.00.G22
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import itertools
import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from lienthong import xml
from lienthong.errors import RejectedError

from .client import HASH_HEADER, HEADER_PREFIX, SANDBOX_HEADER, SIGN_HEADER, SIGN_KEYS_HEADER
from .sandbox_calls import ROUTES, Refused, first, now_text

#: Larger request bodies are refused unread (413): the sandbox is no place for a memory test.
MAX_BODY_BYTES = 20 * 1024 * 1024
_SDK_TIMESTAMP = re.compile(r"(\d{8}T\d{6})\+(\d{4})")


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
    title: str = ""
    notation: str = ""
    document_id: str = ""


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


def parse_timestamp(value: str) -> float:
    """Seconds since the epoch of a signed ``timestamp`` in either form; ValueError if neither.

    The SDK's ``ddMMyyyy'T'HHmmss+SSSS`` has no zone: it is the sender's local
    time, read here as this host's.
    """
    if value.isdigit():
        return int(value) / 1000
    found = _SDK_TIMESTAMP.fullmatch(value)
    if not found:
        raise ValueError(value)
    local = datetime.strptime(found.group(1), "%d%m%YT%H%M%S")
    return local.timestamp() + int(found.group(2)) / 1000


class SandboxAxis:
    """A sandbox axis on a free loopback port; ``with SandboxAxis(...) as axis: axis.url``."""

    def __init__(
        self,
        systems: Mapping[str, tuple[str, str]] | None = None,
        agencies: Iterable[str] = (),
        *,
        port: int = 0,
        max_age: float = 300.0,
        require_nonce: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``systems`` maps each system id to ``(secret, agency code)``: the agency it acts for."""
        self.lock = threading.RLock()
        self.systems: dict[str, tuple[str, str]] = {}
        for system_id, (secret, agency) in (systems or {}).items():
            self.add_system(system_id, secret, agency)
        self.max_age = max_age
        self.require_nonce = require_nonce
        self.clock = clock
        self.port = port
        self.agencies: dict[str, dict[str, str]] = {}
        self.docs: dict[str, StoredDoc] = {}
        self.requests: list[tuple[str, str, int]] = []
        self.faults: list[Fault] = []
        self._nonces: dict[str, float] = {}
        #: sendEdoc's idempotency keys: (system, key) -> the DocId first answered.
        self.sent_keys: dict[tuple[str, str], str] = {}
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

    def add_system(self, system_id: str, secret: str, agency: str) -> None:
        """Let ``system_id`` call with ``secret``, acting for ``agency`` (and no other)."""
        if not agency:
            raise ValueError(f"system {system_id!r} needs the agency it acts for")
        with self.lock:
            self.systems[system_id] = (secret, agency)

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
        title, notation, document_id = _title_and_notation(content)
        with self.lock:
            doc_id = f"sandbox-{next(self._ids):06d}"
            stamp = now_text()
            self.docs[doc_id] = StoredDoc(
                doc_id,
                message_type,
                sender,
                list(recipients),
                content,
                stamp,
                status=dict.fromkeys(recipients, "pending"),
                updated=dict.fromkeys(recipients, stamp),
                title=title,
                notation=notation,
                document_id=document_id,
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
        """Check the signed headers; the signed parameters by their bare names.

        The SDK keys its JSON ``XroadVnpt-<name>``; a bare ``<name>`` is taken too.
        """
        payload = headers.get(SIGN_HEADER)
        keys = headers.get(SIGN_KEYS_HEADER)
        given = headers.get(HASH_HEADER)
        if not payload or not keys or not given:
            raise Refused(401, "missing XroadVnpt signature headers")
        try:
            signed = json.loads(payload)
        except ValueError as exc:
            raise Refused(401, "XroadVnpt-sign-header is not JSON") from exc
        if not isinstance(signed, dict) or not all(isinstance(v, str) for v in signed.values()):
            raise Refused(401, "XroadVnpt-sign-header is not a JSON object of strings")
        params = {k.removeprefix(HEADER_PREFIX): v for k, v in signed.items()}
        if len(params) != len(signed) or sorted(params) != sorted(keys.split(";")):
            raise Refused(401, "XroadVnpt-sign-header-key does not list the signed names")
        for name, value in params.items():
            if headers.get(HEADER_PREFIX + name) != value:
                raise Refused(401, f"header {HEADER_PREFIX}{name} differs from the signed value")
        system = params.get("systemid", "")
        with self.lock:
            known = self.systems.get(system)
        if known is None:
            raise Refused(401, f"unknown system '{system}'")
        expected = hmac.new(known[0].encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, given):
            raise Refused(401, f"signature does not match for system '{system}'")
        self._check_replay(system, params)
        return params

    def _check_replay(self, system: str, params: dict[str, str]) -> None:
        """Refuse a stale or repeated request from a client that signs a nonce.

        Without a nonce (the SDK) nothing tells a replay from a retry, and the
        SDK's timestamp is fixed when its service object is made: such requests
        pass, unless ``require_nonce``.
        """
        try:
            stamp = parse_timestamp(params["timestamp"])
        except (KeyError, ValueError) as exc:
            raise Refused(
                401,
                "replayed or stale request: no valid timestamp (ddMMyyyy'T'HHmmss+SSSS, "
                "or milliseconds since the epoch)",
            ) from exc
        nonce = params.get("nonce")
        if not nonce:
            if self.require_nonce:
                raise Refused(401, "replayed or stale request: this axis requires a nonce")
            return
        now = self.clock()
        if abs(now - stamp) > self.max_age:
            raise Refused(401, f"replayed or stale request: timestamp is {now - stamp:.0f} s off")
        seen = f"{system}:{nonce}:{params['timestamp']}"
        with self.lock:
            self._nonces = {n: t for n, t in self._nonces.items() if now - t <= self.max_age}
            if seen in self._nonces:
                raise Refused(401, "replayed or stale request: this signature was already used")
            self._nonces[seen] = now

    def handle(self, method: str, path: str, headers: Any, body: bytes) -> tuple[int, Any]:
        params = self.authenticate(headers)
        route = ROUTES.get((method, path))
        if route is None:
            raise Refused(404, f"no call {method} {path} on this axis")
        return 200, route(self, params, headers, body)


def _title_and_notation(content: bytes) -> tuple[str, str, str]:
    """Subject, number/notation (the sent list) and DocumentId; empty for what is not edXML."""
    try:
        root = xml.parse(content, what="file_doc").getroot()
    except RejectedError:
        return "", "", ""
    number, notation = (
        first(root, "ed:Code/ed:CodeNumber"),
        first(root, "ed:Code/ed:CodeNotation"),
    )
    return (
        first(root, "ed:Subject"),
        "/".join(p for p in (number, notation) if p),
        first(root, "ed:DocumentId"),
    )


def _fail(code: int, desc: str, path: str) -> dict[str, Any]:
    """A refusal the SDK can read: it dereferences the three fields, and DocId on sendEdoc."""
    reply: dict[str, Any] = {"status": "FAIL", "ErrorCode": str(code), "ErrorDesc": desc}
    if path == "/sendEdoc":
        reply["DocId"] = ""
    return reply


class _Handler(BaseHTTPRequestHandler):
    axis: SandboxAxis
    protocol_version = "HTTP/1.1"

    def _serve(self, method: str) -> None:
        path = self.path.split("?", 1)[0]
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            self._answer(413, _fail(413, f"body over {MAX_BODY_BYTES:,} bytes", path))
            return
        body = self.rfile.read(length) if length else b""
        fault = self.axis._take_fault(path)
        if fault is not None and fault.delay:
            time.sleep(fault.delay)
        if fault is not None and fault.status is not None:
            status, reply = fault.status, _fail(fault.status, "injected fault", path)
        else:
            try:
                status, reply = self.axis.handle(method, path, self.headers, body)
            except Refused as refused:
                status, reply = refused.code, _fail(refused.code, refused.desc, path)
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
        metavar="ID:SECRET:AGENCY",
        help="a system allowed to call, its shared secret and the agency it acts for (repeatable)",
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
        help="seconds after which a request signed with a nonce is refused as stale",
    )
    parser.add_argument(
        "--require-nonce",
        action="store_true",
        help="refuse requests without a signed nonce (the vendor SDK sends none)",
    )
    args = parser.parse_args(argv)
    systems = {}
    for item in args.system:
        system_id, secret, agency = (item.split(":", 2) + ["", ""])[:3]
        if not system_id or not secret or not agency:
            parser.error(f"--system {item!r}: expected ID:SECRET:AGENCY")
        systems[system_id] = (secret, agency)
    axis = SandboxAxis(
        systems, port=args.port, max_age=args.max_age, require_nonce=args.require_nonce
    )
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
