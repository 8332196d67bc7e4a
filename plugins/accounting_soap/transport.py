"""The HTTP side of a SOAP endpoint: a zeep transport and session the bus can trust.

The transport loads a WSDL's imports only from the WSDL's own origin, checks
every document with the bus's parser, and reads every answer with a size cap
and a deadline. The session keeps its own ``verify`` over the environment's CA
bundle variables.
"""

from __future__ import annotations

import logging
import math
import os
import time
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

import requests
import zeep

from lienthong import xml
from lienthong.errors import ConfigError

# zeep's transport logs every envelope whole at DEBUG, WS-Security password
# included: never let it below INFO, whatever level the bus runs at.
logging.getLogger("zeep.transports").setLevel(logging.INFO)


class AnswerTooLarge(Exception):
    """An answer went past ``max_answer_bytes``; the rest was not read."""

    def __init__(self, size: int, limit: int, *, declared: bool = False) -> None:
        said = f"declares {size:,} bytes" if declared else f"went past {limit:,} bytes"
        super().__init__(
            f"the answer {said}, over the limit of {limit:,} bytes (max_answer_bytes); "
            "the rest was not read"
        )


class _Origin:
    """Where a WSDL came from, and so where its imports may come from."""

    def __init__(self, wsdl: str) -> None:
        parts = urlsplit(wsdl)
        self.remote = parts.scheme in ("http", "https")
        if self.remote:
            self.scheme, self.host = parts.scheme, _host(parts)
            self.shown = f"{parts.scheme}://{parts.netloc}"
        else:
            path = url2pathname(parts.path) if parts.scheme == "file" else wsdl
            self.folder = os.path.realpath(os.path.dirname(path))
            self.shown = f"the folder {self.folder}"

    def refusal(self, url: str) -> str | None:
        """Why ``url`` may not be loaded for this WSDL; None when it may."""
        parts = urlsplit(url)
        if self.remote:
            try:
                host = _host(parts)
            except ValueError:
                return "it is not a valid URL"
            if parts.scheme != self.scheme or host != self.host:
                return f"it is not on {self.shown}"
            return None
        if parts.scheme not in ("", "file"):
            return "a WSDL read from a file may import only files"
        path = os.path.realpath(url2pathname(parts.path) if parts.scheme else url)
        if os.path.commonpath([path, self.folder]) != self.folder:
            return f"it is outside {self.shown}"
        return None


def _host(parts: Any) -> tuple[str, int | None]:
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return (parts.hostname or "", parts.port or default)


class HardenedTransport(zeep.Transport):
    """zeep's transport: imports only from the WSDL's origin, every document checked by the
    bus's parser, every answer read with a cap and a deadline."""

    def __init__(self, wsdl: str, where: str, max_bytes: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.origin = _Origin(wsdl)
        self.where = where
        self.max_bytes = max_bytes
        self.documents: dict[str, bytes] = {}

    def load(self, url: str) -> bytes:
        refusal = self.origin.refusal(url)
        if refusal:
            raise ConfigError(
                [
                    f"{self.where}: the WSDL refers to '{url}', which the bus does not load: "
                    f"{refusal}. A WSDL's imports and includes are loaded only from where the "
                    "WSDL itself came from. Hint: if the service really needs that schema, "
                    "save the WSDL and its schemas in one folder and give that file as 'wsdl'"
                ]
            )
        if urlsplit(url).scheme in ("http", "https", "file"):
            data = super().load(url)
        else:  # a plain path: zeep would read it whole, and expand '~'
            with open(url, "rb") as handle:
                data = handle.read(self.max_bytes + 1)
            if len(data) > self.max_bytes:
                raise AnswerTooLarge(len(data), self.max_bytes)
        xml.parse(data, what=f"WSDL/XSD document '{url}'")
        self.documents[url] = data
        return data

    def _load_remote_data(self, url: str) -> bytes:
        response = self.session.get(url, timeout=self.load_timeout, stream=True)
        try:
            response.raise_for_status()
            return self._read(response, self.load_timeout)
        finally:
            response.close()

    def post(self, address: str, message: Any, headers: Any) -> requests.Response:
        response = self.session.post(
            address, data=message, headers=headers, timeout=self.operation_timeout, stream=True
        )
        try:
            self._read(response, self.operation_timeout)
        except BaseException:
            response.close()
            raise
        return response

    def _read(self, response: requests.Response, timeout: float | None) -> bytes:
        """The whole body, or an error once it passes the cap or the deadline."""
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise AnswerTooLarge(int(declared), self.max_bytes, declared=True)
        deadline = time.monotonic() + (timeout or math.inf)
        chunks, size = [], 0
        for chunk in response.iter_content(64 * 1024):
            size += len(chunk)
            if size > self.max_bytes:
                raise AnswerTooLarge(size, self.max_bytes)
            if time.monotonic() > deadline:
                raise requests.exceptions.ReadTimeout(
                    f"the answer was still coming after {timeout} s ({size:,} bytes so far)"
                )
            chunks.append(chunk)
        data = b"".join(chunks)
        # What requests itself does once it has read a body: zeep reads .content.
        response._content = data
        return data


class Session(requests.Session):
    """A session whose own ``verify`` wins over ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``.

    Plain requests lets those variables override ``session.verify`` (requests
    issue #3829), which would silently drop ``ca_file`` and ``verify_tls: false``.
    """

    def merge_environment_settings(
        self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> dict[str, Any]:
        if verify is None:
            verify = self.verify
        return super().merge_environment_settings(url, proxies, stream, verify, cert)
