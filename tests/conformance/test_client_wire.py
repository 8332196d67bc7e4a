"""lienthong's axis client writes every call as the vendor SDK writes it.

The SDK (``java/SdkCalls.java``, each call on a fresh service object so that a
request carries only what its call needs) and then lienthong's client make the
same calls against one recording server. For each call, lienthong's request is
checked against the SDK's: method, content type, the signed names and their
headers, the prefixed JSON keys and key list, the HMAC, the timestamp form, the
identification headers and the body. The SDK's own ``filePath`` (where it saves a
file locally) is the only name lienthong leaves out.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from lienthong.adapter import Secret
from lienthong.plugins.document_axis.client import Agency, AxisClient, Wire

SYSTEM, SECRET, AGENCY = "sys-a", "wire-secret-0123", "000.00.00.H41"
NEW_AGENCY, DOC_ID = "000.00.99.H41", "d-1"
SDK_TIMESTAMP = re.compile(r"\d{8}T\d{6}\+\d{4}")
#: Signed by the SDK for its own use (where getEdoc/downloadEdoc save the file).
SDK_LOCAL = {"filePath"}
#: What lienthong adds when its Wire says so.
EXTRAS = {"nonce", "idempotency-key"}
PREFIX = "XroadVnpt-"


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def signed(self) -> dict[str, str]:
        return json.loads(self.headers[PREFIX + "sign-header"])


class Recorder:
    """A server that answers every call as the axis would and keeps each request."""

    def __init__(self, fetched: bytes) -> None:
        self.requests: list[Request] = []
        self.fetched = fetched
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path.split("?", 1)[0]
                recorder.requests.append(
                    Request(self.command, path, dict(self.headers.items()), body)
                )
                if path == "/downloadEdoc":
                    payload, ctype = recorder.fetched, "application/xml"
                else:
                    answer: dict[str, Any] = {
                        "status": "OK",
                        "ErrorCode": "0",
                        "ErrorDesc": "",
                        "DocId": DOC_ID,
                        "count": 0,
                        "data": [],
                    }
                    if path == "/getEdoc":
                        answer["data"] = base64.b64encode(recorder.fetched).decode()
                    payload, ctype = json.dumps(answer).encode(), "application/json"
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _serve  # noqa: N815 (the stdlib's naming)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def by_path(self) -> dict[str, Request]:
        found = {r.path: r for r in self.requests}
        assert len(found) == len(self.requests), [r.path for r in self.requests]
        return found

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def differences(ours: Request, sdk: Request, extras: set[str]) -> list[str]:
    """How ``ours`` differs from the SDK's request for the same call; empty when alike."""
    found = []
    if ours.method != sdk.method:
        found.append(f"method {ours.method}, the SDK's {sdk.method}")
    for header in ("Content-Type", "User-Agent", PREFIX + "version"):
        if ours.headers.get(header) != sdk.headers.get(header):
            found.append(
                f"{header} {ours.headers.get(header)!r}, the SDK's {sdk.headers.get(header)!r}"
            )
    signed = ours.signed
    if not all(k.startswith(PREFIX) for k in signed):
        found.append(f"signed JSON keys without the {PREFIX} prefix: {sorted(signed)}")
    names = {k.removeprefix(PREFIX) for k in signed}
    wanted = {k.removeprefix(PREFIX) for k in sdk.signed} - SDK_LOCAL
    if names - extras != wanted:
        found.append(f"signed names {sorted(names)}, the SDK's {sorted(wanted)}")
    if set(ours.headers[PREFIX + "sign-header-key"].split(";")) != names:
        found.append("sign-header-key does not list the signed names")
    for key, value in signed.items():
        if ours.headers.get(key) != value:
            found.append(f"header {key} is {ours.headers.get(key)!r}, signed {value!r}")
    payload = ours.headers[PREFIX + "sign-header"]
    digest = hmac.new(SECRET.encode(), payload.encode(), hashlib.sha256).hexdigest()
    if ours.headers[PREFIX + "hash-header"] != digest:
        found.append("hash-header is not the HMAC-SHA256 of sign-header")
    if not SDK_TIMESTAMP.fullmatch(signed.get(PREFIX + "timestamp", "")):
        found.append(
            f"timestamp {signed.get(PREFIX + 'timestamp')!r} is not ddMMyyyy'T'HHmmss+SSSS"
        )
    for name in wanted - {"timestamp"}:
        if signed.get(PREFIX + name) != sdk.signed.get(PREFIX + name):
            found.append(
                f"{name} is {signed.get(PREFIX + name)!r}, the SDK's {sdk.signed.get(PREFIX + name)!r}"
            )
    if ours.path == "/registerAgency":
        if json.loads(ours.body) != json.loads(sdk.body):
            found.append(f"body {ours.body!r}, the SDK's {sdk.body!r}")
    elif ours.body != sdk.body:
        found.append(f"body of {len(ours.body)} bytes, the SDK's {len(sdk.body)}")
    return found


@pytest.fixture(scope="module")
def file_to_send(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A file whose SHA-256 has a byte below 0x10, so the two hash-file forms differ."""
    folder = tmp_path_factory.mktemp("wire")
    for n in range(1000):
        data = f'<?xml version="1.0"?>\n<doc n="{n}"/>\n'.encode()
        if min(hashlib.sha256(data).digest()) < 16:
            path = folder / "doc.edxml"
            path.write_bytes(data)
            return path
    raise AssertionError("no such file among 1000 tries")


@pytest.fixture(scope="module")
def sdk_requests(vendor, file_to_send: Path, tmp_path_factory) -> dict[str, Request]:
    recorder = Recorder(file_to_send.read_bytes())
    store = tmp_path_factory.mktemp("sdk-store")
    try:
        lines = vendor.run(
            "SdkCalls",
            recorder.url,
            SYSTEM,
            SECRET,
            AGENCY,
            str(file_to_send),
            str(store),
            DOC_ID,
            NEW_AGENCY,
        )
    finally:
        recorder.close()
    assert all(line.endswith("ErrorCode=0") for line in lines), lines
    return recorder.by_path()


@pytest.fixture
def ours(file_to_send: Path) -> Iterator[Any]:
    def record(wire: Wire) -> dict[str, Request]:
        recorder = Recorder(file_to_send.read_bytes())
        client = AxisClient(recorder.url, SYSTEM, Secret(SECRET), wire=wire)
        try:
            client.agencies()
            client.register_agency(
                Agency(
                    code=NEW_AGENCY, name="Sở Khoa học và Công nghệ", mail="skhcn@example.gov.vn"
                ),
                parent_code=AGENCY,
            )
            client.delete_agency(NEW_AGENCY)
            assert client.send(file_to_send.read_bytes(), organ_id=AGENCY, key="k-1") == DOC_ID
            client.count_received()
            client.count_received(message_type="status")
            client.received()
            client.sent()
            assert client.fetch(DOC_ID) == file_to_send.read_bytes()
            client.update_status(DOC_ID, "done")
            assert client.download(DOC_ID) == file_to_send.read_bytes()
        finally:
            client.session.close()
            recorder.close()
        return recorder.by_path()

    yield record


def test_the_client_makes_every_call_the_sdk_makes(sdk_requests, ours) -> None:
    assert sorted(ours(Wire())) == sorted(sdk_requests)


def test_with_the_extras_off_every_request_is_written_as_the_sdk_writes_it(
    sdk_requests, ours
) -> None:
    mine = ours(Wire(nonce=False, idempotency_key=False))
    found = {path: differences(mine[path], sdk, set()) for path, sdk in sdk_requests.items()}
    assert {path: diff for path, diff in found.items() if diff} == {}


def test_by_default_the_only_difference_is_the_signed_nonce_and_idempotency_key(
    sdk_requests, ours
) -> None:
    mine = ours(Wire())
    found = {path: differences(mine[path], sdk, EXTRAS) for path, sdk in sdk_requests.items()}
    assert {path: diff for path, diff in found.items() if diff} == {}
    assert PREFIX + "idempotency-key" in mine["/sendEdoc"].signed
    assert all(PREFIX + "nonce" in r.signed for r in mine.values())


def test_padded_hash_file_is_the_one_difference_a_setting_makes(sdk_requests, ours) -> None:
    mine = ours(Wire(hash_file="padded", nonce=False, idempotency_key=False))
    assert differences(mine["/sendEdoc"], sdk_requests["/sendEdoc"], set()) == [
        "hash-file is {!r}, the SDK's {!r}".format(
            mine["/sendEdoc"].signed[PREFIX + "hash-file"],
            sdk_requests["/sendEdoc"].signed[PREFIX + "hash-file"],
        )
    ]
