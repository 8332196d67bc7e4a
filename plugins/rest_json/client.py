"""The HTTP client of the REST adapter: one call out, one bounded answer back.

Built on urllib3, the client underneath requests, used directly: requests adds
about half a millisecond per call in its session machinery, which at the
province's year of one-stop traffic (near a million calls) is minutes. urllib3's
pool is thread-safe, keeps connections alive, and reads no environment variable
that could swap the CA bundle behind the config's back (requests lets
``REQUESTS_CA_BUNDLE`` override ``verify``; see the SOAP adapter).

What the client guarantees, whatever the server does:

- TLS verified against the system's CAs or ``ca_file``; client certificates;
- never follows a redirect to another origin (scheme, host, port): the call
  fails before anything is sent there; same-origin redirects are followed (at
  most three), keeping the method and body only for 307 and 308;
- an answer larger than ``max_bytes`` is refused, from its ``Content-Length``
  before reading a byte, or as soon as the read passes the limit;
- a whole answer arrives within ``timeout`` seconds, even from a server that
  drips a byte at a time;
- ``Retry-After`` (seconds or an HTTP date) is read and capped.
"""

from __future__ import annotations

import email.utils
import logging
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import urllib3
import urllib3.connection
from urllib3.exceptions import (
    HTTPError,
    InsecureRequestWarning,
    NewConnectionError,
    ProtocolError,
    SSLError,
)
from urllib3.exceptions import (
    TimeoutError as Urllib3Timeout,
)

log = logging.getLogger(__name__)

MAX_REDIRECTS = 3
_READ_CHUNK = 256 * 1024


class _OneWrite:
    """Sends a request's headers and its body in one write, not two.

    urllib3 writes the headers, then the body: two packets, two wake-ups of the
    server, per call. With ``Content-Length`` set here and the body held until
    the headers go, the whole request leaves in one ``sendall``.
    """

    _held: bytes | None = None

    def request(
        self, method: str, url: str, body: Any = None, headers: Any = None, **kw: Any
    ) -> None:
        if isinstance(body, bytes) and body and not kw.get("chunked"):
            headers = {**(headers or {}), "Content-Length": str(len(body))}
            self._held = body
            body = None
        super().request(method, url, body, headers, **kw)  # type: ignore[misc]

    def send(self, data: Any) -> None:
        held, self._held = self._held, None
        super().send(data + held if held is not None else data)  # type: ignore[misc]


class _HTTPConnection(_OneWrite, urllib3.connection.HTTPConnection):
    pass


class _HTTPSConnection(_OneWrite, urllib3.connection.HTTPSConnection):
    pass


class _HTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class CallFailed(Exception):
    """The call did not produce an answer; ``kind`` says how: connect, timeout, tls, protocol."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


class AnswerRefused(Exception):
    """The server answered, but with something the client will not take (size, redirect)."""


@dataclass
class Request:
    """One HTTP call: an absolute URL, headers, and the body as bytes (or none)."""

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None


@dataclass
class Answer:
    """What came back: status, headers (case-insensitive), the whole body, the final URL."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str

    def retry_after(self, cap: float) -> float | None:
        """Seconds the server asked to wait (``Retry-After``), at most ``cap``; None if unsaid."""
        value = (self.headers.get("Retry-After") or "").strip()
        if not value:
            return None
        if value.isdigit():
            seconds = float(value)
        else:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                return None
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            seconds = (when - datetime.now(UTC)).total_seconds()
        return min(max(seconds, 0.0), cap)


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the default port filled in: what a redirect may not change."""
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


class HttpClient:
    """Sends :class:`Request` objects for one endpoint; safe to share between threads."""

    def __init__(
        self,
        *,
        timeout: float,
        max_bytes: int,
        verify: bool = True,
        ca_file: Path | None = None,
        client_cert: Path | None = None,
        client_key: Path | None = None,
        proxy: str = "",
    ) -> None:
        self.timeout = timeout
        self.max_bytes = max_bytes
        options: dict[str, object] = {
            "retries": False,  # the bus retries, with back-off: never two layers of it
            "timeout": urllib3.Timeout(connect=timeout, read=timeout),
            "cert_reqs": "CERT_REQUIRED" if verify else "CERT_NONE",
            "maxsize": 8,
        }
        if ca_file is not None:
            options["ca_certs"] = str(ca_file)
        if client_cert is not None:
            options["cert_file"] = str(client_cert)
            if client_key is not None:
                options["key_file"] = str(client_key)
        if not verify:
            # The adapter logged why this is dangerous when it started; one warning is enough.
            warnings.filterwarnings("ignore", category=InsecureRequestWarning)
        self._pool: urllib3.PoolManager = (
            urllib3.ProxyManager(proxy, **options)  # type: ignore[arg-type]
            if proxy
            else urllib3.PoolManager(**options)  # type: ignore[arg-type]
        )
        if not proxy:
            self._pool.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
        self._proxied = bool(proxy)
        # The connection pool of each origin, looked up once: PoolManager.request parses
        # the URL and finds the pool again on every call (~80 us of a ~250 us call).
        self._origins: dict[str, urllib3.HTTPConnectionPool] = {}

    def close(self) -> None:
        self._pool.clear()
        self._origins.clear()

    def send(self, request: Request) -> Answer:
        """Make the call (following same-origin redirects); raise CallFailed or AnswerRefused."""
        deadline = time.monotonic() + self.timeout
        current = request
        for _ in range(MAX_REDIRECTS + 1):
            answer = self._once(current, deadline)
            if answer.status not in (301, 302, 303, 307, 308):
                return answer
            current = self._redirected(current, answer)
        raise AnswerRefused(
            f"{request.url} redirected more than {MAX_REDIRECTS} times. Hint: point the "
            "endpoint's base_url at where the service now answers"
        )

    def _redirected(self, request: Request, answer: Answer) -> Request:
        location = answer.headers.get("Location") or ""
        if not location:
            raise AnswerRefused(f"{request.url} answered HTTP {answer.status} without a Location")
        target = urljoin(request.url, location)
        if origin(target) != origin(request.url):
            raise AnswerRefused(
                f"{request.url} redirected (HTTP {answer.status}) to another host, {target}: "
                "refused, nothing was sent there. Hint: if the service really moved, set the "
                "endpoint's base_url to its new address"
            )
        if answer.status in (307, 308):
            return Request(request.method, target, request.headers, request.body)
        if request.method in ("GET", "HEAD") or answer.status == 303:
            headers = {k: v for k, v in request.headers.items() if k.lower() != "content-type"}
            return Request("GET" if request.method != "HEAD" else "HEAD", target, headers)
        raise AnswerRefused(
            f"{request.url} redirected a {request.method} (HTTP {answer.status}) to {target}, "
            "which would drop its body. Hint: set the endpoint's base_url to the new address"
        )

    def _urlopen(self, request: Request) -> urllib3.BaseHTTPResponse:
        if self._proxied:  # through a proxy the full URL is the request target
            return self._pool.urlopen(
                request.method,
                request.url,
                body=request.body,
                headers=request.headers,
                redirect=False,
                preload_content=False,
            )
        parts = urlsplit(request.url)
        key = f"{parts.scheme}://{parts.netloc}"
        pool = self._origins.get(key)
        if pool is None:
            pool = self._origins[key] = self._pool.connection_from_url(key)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return pool.urlopen(
            request.method,
            target,
            body=request.body,
            headers=request.headers,
            redirect=False,
            preload_content=False,
            retries=False,
        )

    def _once(self, request: Request, deadline: float) -> Answer:
        try:
            response = self._urlopen(request)
        except SSLError as exc:
            raise CallFailed(f"TLS with {request.url} failed: {exc}", "tls") from exc
        except NewConnectionError as exc:
            raise CallFailed(f"cannot connect to {request.url}: {exc}", "connect") from exc
        except Urllib3Timeout as exc:
            raise CallFailed(
                f"{request.url} did not answer within {self.timeout:g} s", "timeout"
            ) from exc
        except (ProtocolError, HTTPError, OSError) as exc:
            raise CallFailed(f"the connection to {request.url} failed: {exc}", "protocol") from exc
        try:
            body = self._read(response, request.url, deadline)
        finally:
            response.release_conn()
        return Answer(response.status, response.headers, body, request.url)

    def _read(self, response: urllib3.BaseHTTPResponse, url: str, deadline: float) -> bytes:
        declared = response.headers.get("Content-Length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                size = -1
            if size > self.max_bytes or size < 0:
                response.close()  # never read it; the connection is dropped, not reused
                raise AnswerRefused(
                    f"{url} announced an answer of {declared} bytes (Content-Length), over the "
                    f"limit of {self.max_bytes:,}: refused before reading it. Hint: raise "
                    "max_response_bytes if the service really sends that much"
                )
        chunks: list[bytes] = []
        total = 0
        try:
            while True:
                chunk = response.read1(_READ_CHUNK)
                if not chunk:
                    break
                total += len(chunk)
                if total > self.max_bytes:
                    response.close()
                    raise AnswerRefused(
                        f"{url} sent an answer over the limit of {self.max_bytes:,} bytes: "
                        "refused. Hint: raise max_response_bytes if that is expected"
                    )
                chunks.append(chunk)
                if time.monotonic() > deadline:
                    response.close()
                    raise CallFailed(
                        f"{url} took longer than {self.timeout:g} s to send its answer", "timeout"
                    )
        except Urllib3Timeout as exc:
            raise CallFailed(f"{url} stopped sending its answer", "timeout") from exc
        except (ProtocolError, HTTPError, OSError) as exc:
            raise CallFailed(f"the answer from {url} was cut: {exc}", "protocol") from exc
        return b"".join(chunks)
