"""The sandbox axis itself: labelled, loopback only, strict about what it accepts, runnable."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import UTC, datetime

import pytest
import requests

from lienthong.adapter import Secret
from lienthong.plugins.document_axis.client import AxisAuthError, AxisClient, sha256_hex, sign
from lienthong.plugins.document_axis.sandbox import SandboxAxis


def signed(samples, organ: str, **extra: str) -> dict[str, str]:
    system = samples.system_of[organ]
    params = {
        "timestamp": str(int(datetime.now(UTC).timestamp() * 1000)),
        "nonce": os.urandom(6).hex(),
        "systemid": system,
        "servicetype": "eDoc",
        "from": organ,
        **extra,
    }
    return sign(params, samples.systems[system])


def test_labelled_as_sandbox_and_on_loopback(axis):
    assert axis.url.startswith("http://127.0.0.1:")
    reply = requests.get(axis.url + "/getAgenciesList", timeout=5)
    assert reply.headers["X-Lienthong-Sandbox"] == "axis"
    assert reply.status_code == 401
    assert "missing XroadVnpt signature headers" in reply.json()["ErrorDesc"]


def test_url_before_start_says_what_to_do():
    with pytest.raises(RuntimeError, match="call start"):
        _ = SandboxAxis().url


def test_signed_names_must_match_the_key_list(axis, samples):
    headers = signed(samples, samples.A, messagetype="edoc")
    headers["XroadVnpt-sign-header-key"] = "timestamp;systemid"
    reply = requests.get(axis.url + "/getReceivedEdocList", headers=headers, timeout=5)
    assert reply.status_code == 401


def test_unknown_call_is_404_after_authentication(axis, samples):
    reply = requests.get(axis.url + "/nope", headers=signed(samples, samples.A), timeout=5)
    assert reply.status_code == 404


def test_agency_not_registered_is_forbidden(axis, samples):
    client = AxisClient(axis.url, "dms-a", Secret(samples.systems["dms-a"]))
    with pytest.raises(AxisAuthError, match="not registered.*check endpoint option 'organ_id'"):
        client.received(organ_id="000.00.77.H77")


def test_send_needs_multipart_and_xml(axis, samples):
    body = b"<not-closed"
    headers = signed(samples, samples.A, messagetype="edoc", **{"hash-file": sha256_hex(body)})
    reply = requests.post(axis.url + "/sendEdoc", headers=headers, data=body, timeout=5)
    assert (reply.status_code, reply.json()["ErrorDesc"]) == (
        400,
        "sendEdoc needs a multipart/form-data body",
    )
    headers = signed(samples, samples.A, messagetype="edoc", **{"hash-file": sha256_hex(body)})
    reply = requests.post(
        axis.url + "/sendEdoc", headers=headers, files={"file_doc": ("x.edxml", body)}, timeout=5
    )
    assert reply.status_code == 400
    assert "not well-formed" in reply.json()["ErrorDesc"]


def test_send_refuses_a_dtd(axis, samples):
    body = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>'
    headers = signed(samples, samples.A, messagetype="edoc", **{"hash-file": sha256_hex(body)})
    reply = requests.post(
        axis.url + "/sendEdoc", headers=headers, files={"file_doc": ("x.edxml", body)}, timeout=5
    )
    assert reply.status_code == 400
    assert "DTD" in reply.json()["ErrorDesc"]
    assert axis.snapshot()["sent"] == {}


def test_status_is_routed_to_the_answered_agency(axis, client_for, samples):
    status = samples.status("06", samples.C, samples.B, "doc-x")
    doc_id = client_for(samples.C).send(status, organ_id=samples.C, message_type="status")
    state = axis.snapshot()
    assert state["inbox"] == {
        samples.B: [
            {"docId": doc_id, "messageType": "status", "from": samples.C, "status": "pending"}
        ]
    }
    assert state["sent"] == {doc_id: (samples.C, "status")}


def test_deliver_bypasses_checks_for_hostile_tests(axis, client_for, samples):
    doc_id = axis.deliver("elsewhere", [samples.B], b"\x00 not xml")
    assert client_for(samples.B).fetch(doc_id, organ_id=samples.B) == b"\x00 not xml"


def test_concurrent_sends_with_one_key_store_one_copy(axis, client_for, samples):
    from concurrent.futures import ThreadPoolExecutor

    body = samples.status("01", samples.B, samples.A, "doc-y")
    clients = [client_for(samples.B) for _ in range(4)]
    with ThreadPoolExecutor(4) as pool:
        ids = set(
            pool.map(
                lambda c: c.send(body, organ_id=samples.B, message_type="status", key="same"),
                clients,
            )
        )
    assert len(ids) == 1
    assert len(axis.snapshot()["inbox"][samples.A]) == 1


def test_runs_as_a_command_for_the_demo(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lienthong.plugins.document_axis.sandbox",
            "--port",
            str(port),
            "--system",
            "demo:demo-secret",
            "--agency",
            "000.00.00.H41:UBND tỉnh",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        assert f"SANDBOX axis listening on http://127.0.0.1:{port}" in line
        client = AxisClient(f"http://127.0.0.1:{port}", "demo", Secret("demo-secret"))
        assert [(a.code, a.name) for a in client.agencies()] == [("000.00.00.H41", "UBND tỉnh")]
        assert client.check(organ_id="000.00.00.H41") is True
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_command_refuses_a_system_without_secret():
    result = subprocess.run(
        [sys.executable, "-m", "lienthong.plugins.document_axis.sandbox", "--system", "demo"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "expected ID:SECRET" in result.stderr


def test_oversized_body_is_refused_unread(axis):
    port = int(axis.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(
            b"POST /sendEdoc HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 999999999\r\n\r\n"
        )
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413")
    assert b"X-Lienthong-Sandbox: axis" in answer
