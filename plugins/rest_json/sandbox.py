"""SANDBOX JSON/REST server: the base of the one-stop-shop and national portal sandboxes.

For tests and demos only; never configure a sandbox as a production endpoint.
Every answer carries ``X-Lienthong-Sandbox: <name>`` so nobody mistakes one for
the real system.

:class:`JsonSandbox` is a small JSON-over-HTTP server on the standard library's
``ThreadingHTTPServer`` (HTTP/1.1, kept-alive connections, HTTPS with
``tls_cert``/``tls_key`` and client certificates with ``client_ca``): routes by
method and path pattern, request bodies capped, and fault injection for tests
(:meth:`JsonSandbox.inject` queues answers such as a 429 with ``Retry-After``;
:attr:`JsonSandbox.raw` answers raw bytes, for hostile cases). ``GET
/_sandbox/stats`` answers the sandbox's own counters, so a benchmark in another
process can check the sandbox's state.

Run the sandboxes by hand: ``python -m lienthong.plugins.rest_json.sandbox --help``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import re
import signal
import socket
import ssl
import sys
import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

log = logging.getLogger(__name__)

SANDBOX_HEADER = "X-Lienthong-Sandbox"
MAX_REQUEST_BYTES = 4 * 1024 * 1024


@dataclass
class SandboxRequest:
    """One request as a handler sees it."""

    method: str
    target: str  # path and query, as sent
    path: str
    query: dict[str, str]
    headers: Any
    body: bytes
    params: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        """The body as JSON; a :class:`Reply` 400 if it is not."""
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise Reply(400, {"message": f"the body is not JSON: {exc}"}) from exc


class Reply(Exception):
    """An answer: raise it from anywhere in a handler, or return it."""

    def __init__(
        self,
        status: int,
        body: Any = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = dict(headers or {})
        self.raw = raw

    def payload(self) -> bytes:
        if self.raw is not None:
            return self.raw
        if self.body is None:
            return b""
        return json.dumps(self.body, ensure_ascii=False).encode("utf-8")


Handler = Callable[[SandboxRequest], Reply]


@dataclass
class Injected:
    """A queued answer for the next matching requests (``times`` of them)."""

    reply: Reply
    times: int
    path: re.Pattern[str] | None


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64
    ssl_context: ssl.SSLContext | None = None

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        if self.ssl_context is not None:
            connection = self.ssl_context.wrap_socket(
                connection, server_side=True, do_handshake_on_connect=False
            )
        return connection, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError | ssl.SSLError | TimeoutError):
            log.debug("client %s went away", client_address)
        else:
            log.exception("sandbox server failed on a request from %s", client_address)


class JsonSandbox:
    """A JSON/REST SANDBOX server: subclasses add routes in ``__init__`` with :meth:`route`."""

    name = "json"

    def __init__(
        self,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        tls_cert: Path | str | None = None,
        tls_key: Path | str | None = None,
        client_ca: Path | str | None = None,
    ) -> None:
        self.host = host
        self._port = port
        self._routes: list[tuple[str, re.Pattern[str], str, Handler]] = []
        self._injected: deque[Injected] = deque()
        #: Answer every request with exactly these bytes, written to the socket as they are.
        self.raw: bytes | None = None
        self.calls: dict[str, int] = {}
        self.lock = threading.RLock()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._ssl_context = _server_context(tls_cert, tls_key, client_ca)
        self.route("GET", r"/_sandbox/stats", self._stats, "stats")

    # --- lifecycle ---

    def start(self) -> JsonSandbox:
        """Listen (a free port the first time, the same port after a restart)."""
        httpd = _HTTPServer((self.host, self._port), _make_handler(self))
        self._port = httpd.server_address[1]
        httpd.ssl_context = self._ssl_context
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, args=(0.05,), name=f"{self.name}-sandbox", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        with self.lock:
            connections, self._connections = self._connections, set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> JsonSandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        scheme = "https" if self._ssl_context is not None else "http"
        return f"{scheme}://{self.host}:{self._port}"

    # --- routes and faults ---

    def route(self, method: str, pattern: str, handler: Handler, name: str) -> None:
        """Answer ``method`` on paths matching ``pattern`` (named groups become params)."""
        self._routes.append((method, re.compile(pattern + r"\Z"), name, handler))

    def inject(
        self,
        status: int,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        times: int = 1,
        path: str | None = None,
        raw: bytes | None = None,
    ) -> None:
        """Answer the next ``times`` requests (on paths matching ``path``) with this, unheard."""
        with self.lock:
            self._injected.append(
                Injected(
                    Reply(status, body, headers, raw), times, re.compile(path) if path else None
                )
            )

    def _take_injected(self, path: str) -> Reply | None:
        with self.lock:
            for entry in self._injected:
                if entry.path is None or entry.path.search(path):
                    entry.times -= 1
                    if entry.times <= 0:
                        self._injected.remove(entry)
                    return entry.reply
        return None

    def count(self, name: str) -> None:
        with self.lock:
            self.calls[name] = self.calls.get(name, 0) + 1

    def stats(self) -> dict[str, Any]:
        """What a test or a benchmark checks; subclasses add their state."""
        with self.lock:
            return {"sandbox": self.name, "calls": dict(self.calls)}

    def _stats(self, request: SandboxRequest) -> Reply:
        return Reply(200, self.stats())

    def dispatch(self, method: str, target: str, headers: Any, body: bytes) -> Reply:
        parts = urlsplit(target)
        path = parts.path
        injected = self._take_injected(path)
        if injected is not None:
            return injected
        allowed = []
        for route_method, pattern, name, handler in self._routes:
            match = pattern.match(path)
            if match is None:
                continue
            if route_method != method:
                allowed.append(route_method)
                continue
            request = SandboxRequest(
                method,
                target,
                path,
                dict(parse_qsl(parts.query)),
                headers,
                body,
                {k: unquote(v) for k, v in match.groupdict().items()},
            )
            self.count(name)
            try:
                return handler(request)
            except Reply as reply:
                return reply
            except Exception:
                log.exception("sandbox %s: handler %s failed", self.name, name)
                return Reply(500, {"message": "internal error in the sandbox"})
        if allowed:
            return Reply(
                405, {"message": f"{method} not allowed here"}, {"Allow": ", ".join(allowed)}
            )
        return Reply(404, {"message": f"no such resource: {path}"})


def _server_context(
    cert: Path | str | None, key: Path | str | None, client_ca: Path | str | None
) -> ssl.SSLContext | None:
    if cert is None:
        if client_ca is not None:
            raise ValueError("client_ca needs tls_cert (client certificates only exist over HTTPS)")
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    if client_ca is not None:
        context.load_verify_locations(client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def _make_handler(sandbox: JsonSandbox) -> type[BaseHTTPRequestHandler]:
    class RequestHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True
        server_version = f"lienthong-sandbox-{sandbox.name}"
        timeout = 60

        def setup(self) -> None:
            super().setup()
            with sandbox.lock:
                sandbox._connections.add(self.connection)

        def finish(self) -> None:
            with sandbox.lock:
                sandbox._connections.discard(self.connection)
            super().finish()

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s " + format, self.address_string(), *args)

        def _handle(self) -> None:
            if sandbox.raw is not None:
                self.wfile.write(sandbox.raw)
                self.close_connection = True
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if length < 0 or length > MAX_REQUEST_BYTES:
                self._send(Reply(413, {"message": "request body too large"}))
                self.close_connection = True
                return
            body = self.rfile.read(length) if length else b""
            self._send(sandbox.dispatch(self.command, self.path, self.headers, body))

        def _send(self, reply: Reply) -> None:
            if reply.raw is not None and reply.status == 0:
                self.wfile.write(reply.raw)  # a hostile answer, headers and all
                self.close_connection = True
                return
            payload = reply.payload()
            self.send_response(reply.status)
            self.send_header(SANDBOX_HEADER, sandbox.name)
            if reply.raw is None:
                self.send_header("Content-Type", "application/json; charset=utf-8")
            for name, value in reply.headers.items():
                self.send_header(name, value)
            if "Content-Length" not in reply.headers:
                self.send_header("Content-Length", str(len(payload)))
            # Headers and body in one write (end_headers would send them apart: two
            # packets, two wake-ups of the client per answer).
            buffered: list[bytes] = self._headers_buffer  # type: ignore[has-type,attr-defined]
            buffered.append(b"\r\n")
            self.wfile.write(b"".join(buffered) + payload)
            buffered.clear()

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    return RequestHandler


def lgsp(response: Any, *, code: str = "200", status: str = "success") -> dict[str, Any]:
    """The provincial platform's envelope: ``{code, status, correlationId, response}``."""
    return {"code": code, "status": status, "correlationId": uuid.uuid4().hex, "response": response}


def lgsp_error(http: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    body = {
        "code": str(http),
        "status": "error",
        "correlationId": uuid.uuid4().hex,
        "message": message,
    }
    return Reply(http, body, headers)


def main(argv: list[str] | None = None) -> None:
    """Serve the sandboxes until stopped; print where, as one JSON line, for scripts."""
    from .onestop_sandbox import OneStopSandbox
    from .portal_sandbox import PortalSandbox

    parser = argparse.ArgumentParser(description="SANDBOX one-stop-shop system and national portal")
    parser.add_argument("--onestop-port", type=int, default=0)
    parser.add_argument("--portal-port", type=int, default=0)
    parser.add_argument("--year", type=int, default=0, help="serve a synthetic year of N dossiers")
    parser.add_argument("--steps", type=int, default=5, help="steps per dossier in --year")
    parser.add_argument(
        "--hold", action="store_true", help="--year: show nothing until POST /_sandbox/release"
    )
    parser.add_argument("--lean", action="store_true", help="portal keeps counts, not records")
    parser.add_argument("--token-ttl", type=float, default=3600.0)
    parser.add_argument(
        "--portal-latency-ms", type=float, default=0.0, help="the portal's wait per service call"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    onestop = OneStopSandbox(port=args.onestop_port, token_ttl=args.token_ttl)
    if args.year:
        onestop.synthetic_year(
            args.year, steps_per_dossier=args.steps, released=0 if args.hold else None
        )
    else:
        onestop.seed_demo()
    portal = PortalSandbox(
        port=args.portal_port,
        lean=args.lean,
        session_ttl=args.token_ttl,
        latency=args.portal_latency_ms / 1000,
    )
    onestop.start()
    portal.start()
    print(json.dumps({"onestop": onestop.url, "portal": portal.url}), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        onestop.stop()
        portal.stop()


if __name__ == "__main__":
    main()
