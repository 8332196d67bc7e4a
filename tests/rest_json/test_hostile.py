"""Hostile JSON and HTTP from a polled system: each refused with a clear error, the bus running on.

A whole answer the adapter will not take (invalid UTF-8, nesting too deep to
read, a 2 GB Content-Length, an endless chunked body, a drip-fed body, a
redirect to another host) fails that poll with a logged reason and moves no
cursor; the next poll brings the real data. An item that is hostile on its own
(deep nesting, a huge number, a repeated key) is parked as a dead letter with
its reason, and the items beside it are delivered.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from lienthong.plugins.rest_json.onestop_sandbox import OneStopSandbox
from lienthong.plugins.rest_json.portal_sandbox import PortalSandbox
from tests.busproject import REPO
from tests.rest_json import configs


def answer_with(*items: str) -> bytes:
    """A one-stop answer whose item list holds these raw JSON texts."""
    return (
        '{"code":"200","status":"success","response":{"items":[' + ",".join(items) + "]}}"
    ).encode()


def dossier_texts(onestop: OneStopSandbox, count: int) -> list[str]:
    """Dossiers served only by an injected answer, not by the sandbox's own feed."""
    dossiers = [onestop.add_dossier() for _ in range(count)]
    for dossier in dossiers:
        onestop.dossiers.pop(dossier["dossierNo"])
    return [json.dumps(d, ensure_ascii=False) for d in dossiers]


@pytest.fixture
def bus(lienthong_bus: Any, onestop: OneStopSandbox, portal: PortalSandbox) -> Any:
    return lienthong_bus(
        mappings=REPO / "mappings",
        endpoints={
            "onestop-dossiers": configs.onestop_dossiers(
                onestop, max_response_bytes=200_000, timeout=2.0
            ),
            "portal": configs.portal(portal),
        },
        routes=configs.ROUTES[:1],
    )


@pytest.fixture
def drip_server() -> Iterator[str]:
    """A server that answers a Content-Length of 100 one byte every 0.3 s."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            with connection:
                connection.recv(65536)
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
                for _ in range(100):
                    if stop.wait(0.3):
                        break
                    try:
                        connection.sendall(b" ")
                    except OSError:
                        break

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(timeout=5)
    listener.close()


WHOLE_ANSWERS = {
    "invalid UTF-8": (
        {"status": 200, "raw": b'{"code":"200","response":{"items":[{"dossierNo":"\xff\xfe"}]}}'},
        "not valid UTF-8: byte 0xff",
    ),
    "nesting too deep to read": (
        {
            "status": 200,
            "raw": b'{"code":"200","response":' + b"[" * 50_000 + b"]" * 50_000 + b"}",
        },
        "nested too deeply to read",
    ),
    "a 2 GB Content-Length": (
        {
            "status": 0,
            "raw": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Content-Length: 2147483648\r\n\r\n{",
        },
        "announced an answer of 2147483648 bytes (Content-Length), over the limit of 200,000",
    ),
    "an endless chunked answer": (
        {
            "status": 0,
            "raw": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"".join(b"4000\r\n" + b"[" * 0x4000 + b"\r\n" for _ in range(16)),
        },
        "sent an answer over the limit of 200,000 bytes",
    ),
    "a redirect to another host": (
        {"status": 302, "headers": {"Location": "http://localhost:{other}/api/v1/dossiers"}},
        "redirected (HTTP 302) to another host, http://localhost:{other}/api/v1/dossiers: refused",
    ),
    "an HTML error page": (
        {"status": 200, "raw": b"<html><body>Gateway error</body></html>"},
        "HTTP 200 but the answer is not valid JSON: Expecting value (line 1, column 1)",
    ),
}


@pytest.mark.parametrize("case", list(WHOLE_ANSWERS))
def test_a_hostile_answer_fails_the_poll_clearly_and_the_next_poll_works(
    bus: Any,
    onestop: OneStopSandbox,
    portal: PortalSandbox,
    caplog: pytest.LogCaptureFixture,
    case: str,
) -> None:
    injected, expected = WHOLE_ANSWERS[case]
    with PortalSandbox() as other:  # another host: it must never be called
        other_port = str(other.port)
        if "headers" in injected:
            injected = {
                **injected,
                "headers": {"Location": injected["headers"]["Location"].format(other=other_port)},
            }
        number = onestop.add_dossier()["dossierNo"]
        onestop.inject(path="/dossiers", **injected)
        started = time.monotonic()
        with caplog.at_level(logging.ERROR, logger="lienthong.bus"):
            bus.run(once=True)
        assert time.monotonic() - started < 10, "refused without reading the whole thing"
        assert expected.format(other=other_port) in caplog.text
        assert "endpoint onestop-dossiers" in caplog.text
        assert other.calls == {}, "nothing was sent to the other host"
    assert portal.dossiers == {}, "the cursor did not move past the failed poll"
    bus.run(once=True)
    assert list(portal.dossiers) == [number], "the bus runs on: the next poll brings the data"


def test_an_answer_drip_fed_past_the_timeout_is_cut(
    make_adapter: Any, drip_server: str, onestop: OneStopSandbox
) -> None:
    from lienthong.errors import TransientError
    from lienthong.testing import RecordingInbox

    raw = configs.onestop_dossiers(onestop, timeout=1.0)
    raw["base_url"] = drip_server
    raw.update(auth="none")
    for option in ("login_path", "client_id", "client_secret"):
        raw.pop(option)
    adapter = make_adapter(raw)
    started = time.monotonic()
    with pytest.raises(TransientError, match="took longer than 1 s to send its answer"):
        adapter.receive(RecordingInbox())
    assert time.monotonic() - started < 5


HOSTILE_ITEMS = {
    "deep nesting": (
        '"nested":' + "[" * 200 + "]" * 200,
        "nesting is deeper than the limit of 64 levels",
    ),
    "a huge number": (
        '"fee":' + "9" * 100_000,
        "a number of 100,000 characters is over the limit of 100",
    ),
    "a repeated key": ('"dossierStatus":"done"', "has the key 'dossierStatus' twice"),
}


@pytest.mark.parametrize("case", list(HOSTILE_ITEMS))
def test_a_hostile_item_is_parked_with_its_reason_and_its_neighbours_delivered(
    bus: Any, onestop: OneStopSandbox, portal: PortalSandbox, case: str
) -> None:
    member, expected = HOSTILE_ITEMS[case]
    good, other = dossier_texts(onestop, 2)
    hostile = other[:-1] + "," + member + "}"
    onestop.inject(200, raw=answer_with(good, hostile), path="/dossiers")
    bus.run(once=True)
    [dead] = bus.store.dead_letters()
    assert dead["stage"] == "accept"
    assert expected in dead["reason"]
    assert list(portal.dossiers) == [json.loads(good)["dossierNo"]]
    kept = bus.store.dead_letter(dead["id"])
    assert kept["body"].startswith(b"{"), "kept as the JSON that came, to look at and replay"


def test_a_hostile_answer_to_a_send_is_retried_and_the_message_kept(
    bus: Any, onestop: OneStopSandbox, portal: PortalSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    number = onestop.add_dossier()["dossierNo"]
    portal.inject(
        0,
        raw=b"HTTP/1.1 200 OK\r\nContent-Length: 2147483648\r\n\r\n{",
        path="/integration",
    )
    with caplog.at_level(logging.ERROR):
        bus.run(once=True)
    assert "announced an answer of 2147483648 bytes" in caplog.text
    deadline = time.monotonic() + 20
    while number not in portal.dossiers:
        assert time.monotonic() < deadline, "the message was delivered after the fault"
        bus.run(once=True)
    assert bus.store.dead_letters() == []
