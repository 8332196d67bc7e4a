"""A small JSON ledger over HTTP and its adapter: the real system the contract suite's own tests use.

The ledger offers entries as a change feed (``GET /entries?after=SEQ&limit=N``)
and takes new ones (``POST /entries`` with an ``Idempotency-Key``), behind a
bearer token. :class:`LedgerAdapter` follows every rule of the suite;
``tests/core/broken_adapters.py`` breaks one rule at a time.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import requests
from lxml import etree

from lienthong import xml
from lienthong.adapter import (
    INVALID_HEADER,
    PAGE_SIZE,
    Capability,
    IncrementalAdapter,
    Option,
)
from lienthong.errors import FatalError, RejectedError, TransientError
from lienthong.message import Message

TOKEN = "ledger-token-4711"


class Ledger:
    """The ledger server on a free loopback port; tests read and seed its state directly."""

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.entries: list[dict[str, Any]] = []
        self.posts: list[dict[str, str]] = []
        self._keys: dict[str, int] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Ledger:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def offer(self, text: Any) -> None:
        """A new entry in the feed, as the ledger's own users would add it."""
        with self._lock:
            seq = len(self.entries) + 1
            self.entries.append({"seq": seq, "id": f"E{seq}", "text": text})

    def feed(self, after: int, limit: int) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.entries if e["seq"] > after][:limit]

    def post(self, text: str, key: str | None) -> tuple[int, dict[str, Any]]:
        if "REFUSE" in text:
            return 422, {"error": f"the ledger refuses entries that say REFUSE: {text!r}"}
        with self._lock:
            if key is not None and key in self._keys:
                return 200, {"id": self._keys[key]}
            self.posts.append({"key": key or "", "text": text})
            if key is not None:
                self._keys[key] = len(self.posts)
            return 201, {"id": len(self.posts)}


def _handler(ledger: Ledger) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self, status: int, data: Any) -> None:
            payload = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _authorised(self) -> bool:
            if self.headers.get("Authorization") == f"Bearer {ledger.token}":
                return True
            self._answer(401, {"error": "unknown token"})
            return False

        def do_GET(self) -> None:  # noqa: N802 (the stdlib's naming)
            if not self._authorised():
                return
            query = parse_qs(urlsplit(self.path).query)
            after = int(query.get("after", ["0"])[0] or 0)
            limit = int(query.get("limit", ["100"])[0])
            self._answer(200, {"entries": ledger.feed(after, limit)})

        def do_POST(self) -> None:  # noqa: N802
            if not self._authorised():
                return
            data = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            self._answer(*ledger.post(str(data["text"]), self.headers.get("Idempotency-Key")))

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    return Handler


class LedgerAdapter(IncrementalAdapter):
    """Reads a ledger's entries in order of their change number and posts entries to it."""

    name = "ledger"
    version = "1"
    summary = "A JSON ledger over HTTP (the contract suite's own test system)."
    options = (
        Option(
            "url", "the ledger's base URL", example="http://127.0.0.1:8080", pattern=r"https?://\S+"
        ),
        Option("token", "bearer token", secret=True, example={"env": "LEDGER_TOKEN"}),
        Option("kind", "kind of received messages", default="ledger.entry"),
        PAGE_SIZE,
        Option("timeout", "seconds to wait for each call", default=5.0, type=float, minimum=0.1),
    )
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.RECEIVE, Capability.SEND})
    transient_errors: ClassVar[tuple[type[BaseException], ...]] = (
        requests.ConnectionError,
        requests.Timeout,
    )
    replication_key = "seq"
    session: requests.Session | None = None

    def start(self) -> None:
        self.session = requests.Session()

    def stop(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        if self.session is None:
            raise FatalError(f"endpoint '{self.endpoint}' is not started")
        headers = {"Authorization": f"Bearer {self.settings['token'].reveal()}"}
        headers.update(kwargs.pop("headers", {}))
        response = self.session.request(
            method,
            self.settings["url"] + path,
            headers=headers,
            timeout=self.settings["timeout"],
            **kwargs,
        )
        if response.status_code in (401, 403):
            raise FatalError(
                f"endpoint '{self.endpoint}': the ledger refused the token "
                f"(HTTP {response.status_code}). Hint: check the option 'token'"
            )
        if response.status_code >= 500:
            raise TransientError(f"endpoint '{self.endpoint}': HTTP {response.status_code}")
        return response

    def read(self, since: str | None, limit: int) -> Sequence[Message]:
        params = {"after": since or "0", "limit": str(limit)}
        entries = self.call("GET", "/entries", params=params).json()["entries"]
        return [self.message(entry) for entry in entries]

    def message(self, entry: dict[str, Any]) -> Message:
        headers = {"seq": str(entry["seq"])}
        body = b""
        try:
            root = etree.Element("entry")
            etree.SubElement(root, "text").text = entry["text"]
            body = xml.serialize(root)
        except (TypeError, ValueError) as exc:
            headers[INVALID_HEADER] = f"entry {entry['id']} cannot be XML: {exc}"
        return Message(
            body=body, kind=self.settings["kind"], headers=headers, source_key=str(entry["id"])
        )

    def entry_text(self, message: Message) -> str:
        text = message.tree(max_bytes=self.services.max_message_bytes).findtext("text")
        if text is None:
            raise RejectedError(
                f"endpoint '{self.endpoint}': message {message.id} has no <text>. "
                "Hint: map it to <entry><text>...</text></entry>"
            )
        return text

    def send(self, message: Message, *, key: str) -> None:
        response = self.call(
            "POST",
            "/entries",
            json={"text": self.entry_text(message)},
            headers={"Idempotency-Key": key},
        )
        if 400 <= response.status_code < 500:
            raise RejectedError(
                f"endpoint '{self.endpoint}': the ledger refused message {message.id}: "
                f"{response.json().get('error')}"
            )
