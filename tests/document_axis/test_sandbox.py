"""The sandbox axis itself: labelled, loopback only, strict about what it accepts, runnable."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
import requests

from lienthong.adapter import Secret
from lienthong.errors import RejectedError
from lienthong.plugins.document_axis.client import AxisAuthError, AxisClient, sha256_hex, sign
from lienthong.plugins.document_axis.sandbox import SandboxAxis


def signed(samples, organ: str, *, content_type: str = "application/json", **extra: str):
    """Headers as lienthong's client signs them: the SDK's form plus a nonce, epoch timestamp."""
    system = samples.system_of[organ]
    params = {
        "systemid": system,
        "servicetype": "eDoc",
        **extra,
        "timestamp": str(int(datetime.now(UTC).timestamp() * 1000)),
        "nonce": os.urandom(6).hex(),
        "Content-Type": content_type,
    }
    headers = sign(params, samples.systems[system])
    headers["Content-Type"] = content_type
    return headers


def sdk_headers(
    samples, organ: str, stamp: str, *, content_type: str = "application/json", **extra
):
    """Headers exactly as the vendor SDK writes them (WIRE.md): no nonce, its timestamp form."""
    system = samples.system_of[organ]
    pairs = {"systemid": system, **extra, "timestamp": stamp, "Content-Type": content_type}
    prefixed = {f"XroadVnpt-{k}": v for k, v in pairs.items()}
    payload = json.dumps(prefixed, separators=(",", ":"))
    digest = hmac.new(samples.systems[system].encode(), payload.encode(), hashlib.sha256)
    return {
        **prefixed,
        "Content-Type": content_type,
        "XroadVnpt-sign-header-key": ";".join(pairs),
        "XroadVnpt-sign-header": payload,
        "XroadVnpt-hash-header": digest.hexdigest(),
        "XroadVnpt-version": "3.0.201608",
        "User-Agent": "JAVASDKAgent/1.0.0 XRoad/VPCP",
    }


def test_labelled_as_sandbox_and_on_loopback(axis):
    assert axis.url.startswith("http://127.0.0.1:")
    reply = requests.post(axis.url + "/getAgenciesList", timeout=5)
    assert reply.headers["X-Lienthong-Sandbox"] == "axis"
    assert reply.status_code == 401
    assert reply.json() == {
        "status": "FAIL",
        "ErrorCode": "401",
        "ErrorDesc": "missing XroadVnpt signature headers",
    }


def test_url_before_start_says_what_to_do():
    with pytest.raises(RuntimeError, match="call start"):
        _ = SandboxAxis().url


def test_a_system_needs_its_agency():
    with pytest.raises(ValueError, match="system 'dms-x' needs the agency it acts for"):
        SandboxAxis({"dms-x": ("secret", "")})


def test_signed_names_must_match_the_key_list(axis, samples):
    headers = signed(samples, samples.A, messagetype="edoc")
    headers["XroadVnpt-sign-header-key"] = "timestamp;systemid"
    reply = requests.post(axis.url + "/getReceivedEdocList", headers=headers, timeout=5)
    assert reply.status_code == 401
    assert reply.json()["ErrorDesc"] == "XroadVnpt-sign-header-key does not list the signed names"


def test_unknown_call_is_404_after_authentication(axis, samples):
    reply = requests.post(axis.url + "/nope", headers=signed(samples, samples.A), timeout=5)
    assert reply.status_code == 404


def test_lists_are_post_and_download_is_get_as_the_sdk_calls_them(axis, samples):
    url = axis.url + "/getReceivedEdocList"
    assert requests.get(url, headers=signed(samples, samples.A), timeout=5).status_code == 404
    assert requests.post(url, headers=signed(samples, samples.A), timeout=5).status_code == 200


def test_the_sdks_exact_request_is_accepted_in_both_timestamp_forms(axis, client_for, samples):
    doc_id = client_for(samples.A).send(
        samples.document(samples.A, [samples.B]), organ_id=samples.A
    )
    url = axis.url + "/getReceivedEdocList"
    sdk_form = datetime.now().strftime("%d%m%YT%H%M%S") + "+0173"
    for stamp in (sdk_form, str(int(datetime.now(UTC).timestamp() * 1000))):
        headers = sdk_headers(samples, samples.B, stamp, messagetype="edoc")
        reply = requests.post(url, headers=headers, timeout=5)
        assert reply.status_code == 200, reply.text
        assert [i["docId"] for i in reply.json()["data"]] == [doc_id]
        assert {"status", "ErrorCode", "ErrorDesc"} <= set(reply.json())


def test_the_sdks_fixed_timestamp_is_not_locked_out(axis, samples):
    # The SDK fixes its timestamp when its service object is made, and sends no nonce.
    a_day_ago = (datetime.now() - timedelta(days=1)).strftime("%d%m%YT%H%M%S") + "+0042"
    headers = sdk_headers(samples, samples.B, a_day_ago, messagetype="edoc")
    url = axis.url + "/countReceiveEdoc"
    for _ in range(2):
        reply = requests.post(url, headers=headers, timeout=5)
        assert (reply.status_code, reply.json()["count"]) == (200, 0)


def test_with_require_nonce_a_request_without_one_is_refused(samples):
    with SandboxAxis(samples.bound, [samples.A], require_nonce=True) as strict:
        stamp = datetime.now().strftime("%d%m%YT%H%M%S") + "+0001"
        headers = sdk_headers(samples, samples.A, stamp, messagetype="edoc")
        reply = requests.post(strict.url + "/countReceiveEdoc", headers=headers, timeout=5)
    assert reply.status_code == 401
    assert reply.json()["ErrorDesc"] == "replayed or stale request: this axis requires a nonce"


def test_a_timestamp_in_neither_form_is_refused(axis, samples):
    headers = sdk_headers(samples, samples.A, "2026-12-02T05:45:18Z", messagetype="edoc")
    reply = requests.post(axis.url + "/countReceiveEdoc", headers=headers, timeout=5)
    assert reply.status_code == 401
    assert "no valid timestamp (ddMMyyyy'T'HHmmss+SSSS" in reply.json()["ErrorDesc"]


def test_the_sdks_send_octet_stream_with_crlf_and_unpadded_hash(axis, client_for, samples):
    body = samples.document(samples.A, [samples.B], "wire")
    digest = hashlib.sha256(body).digest()
    unpadded = "".join(f"{b:x}" for b in digest)
    stamp = datetime.now().strftime("%d%m%YT%H%M%S") + "+0101"
    headers = sdk_headers(
        samples,
        samples.A,
        stamp,
        content_type="application/octet-stream",
        messagetype="edoc",
        **{"hash-file": unpadded, "from": samples.A},
    )
    reply = requests.post(axis.url + "/sendEdoc", headers=headers, data=body + b"\r\n", timeout=5)
    assert reply.status_code == 200, reply.text
    doc_id = reply.json()["DocId"]
    assert client_for(samples.B).fetch(doc_id) == body


def test_a_refused_send_still_answers_a_docid(axis, samples):
    body = b"<not-closed"
    headers = signed(
        samples,
        samples.A,
        content_type="application/octet-stream",
        messagetype="edoc",
        **{"hash-file": sha256_hex(body), "from": samples.A},
    )
    reply = requests.post(axis.url + "/sendEdoc", headers=headers, data=body, timeout=5)
    assert reply.status_code == 400
    assert reply.json()["DocId"] == "" and "not well-formed" in reply.json()["ErrorDesc"]


def test_send_needs_the_file_as_octet_stream(axis, samples):
    body = samples.document(samples.A, [samples.B])
    headers = signed(
        samples, samples.A, messagetype="edoc", **{"hash-file": sha256_hex(body), "from": samples.A}
    )
    reply = requests.post(axis.url + "/sendEdoc", headers=headers, data=body, timeout=5)
    assert (reply.status_code, reply.json()["ErrorDesc"]) == (
        400,
        "sendEdoc needs the file as application/octet-stream",
    )


def test_send_refuses_a_dtd(axis, samples):
    body = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>'
    headers = signed(
        samples,
        samples.A,
        content_type="application/octet-stream",
        messagetype="edoc",
        **{"hash-file": sha256_hex(body), "from": samples.A},
    )
    reply = requests.post(axis.url + "/sendEdoc", headers=headers, data=body, timeout=5)
    assert reply.status_code == 400
    assert "DTD" in reply.json()["ErrorDesc"]
    assert axis.snapshot()["sent"] == {}


# --- each system acts for its own agency only (issue 12, item 11) ---


def test_a_system_cannot_list_fetch_or_acknowledge_another_agencys_documents(
    axis, client_for, samples
):
    doc_id = client_for(samples.A).send(
        samples.document(samples.A, [samples.B]), organ_id=samples.A
    )
    c = client_for(samples.C)
    assert c.received() == [] and c.count_received() == 0
    with pytest.raises(RejectedError, match=f"no document '{doc_id}' for agency '{samples.C}'"):
        c.fetch(doc_id)
    with pytest.raises(RejectedError, match="HTTP 404"):
        c.update_status(doc_id, "done")
    # Naming B's agency does not help: the axis knows C's system acts for C.
    for path in ("/getReceivedEdocList", "/getEdoc", "/updateStatus"):
        headers = signed(
            samples, samples.C, **{"from": samples.B, "docId": doc_id, "status": "done"}
        )
        reply = requests.post(axis.url + path, headers=headers, timeout=5)
        assert (reply.status_code, reply.json()["ErrorDesc"]) == (
            403,
            f"system 'dms-c' acts for agency '{samples.C}', not '{samples.B}'",
        ), path
    assert axis.snapshot()["inbox"][samples.B][0]["status"] == "pending"
    assert [i.doc_id for i in client_for(samples.B).received()] == [doc_id]


def test_a_system_cannot_send_for_another_agency(axis, client_for, samples):
    with pytest.raises(AxisAuthError, match=f"acts for agency '{samples.C}', not '{samples.A}'"):
        client_for(samples.C).send(samples.document(samples.A, [samples.B]), organ_id=samples.A)


def test_agency_not_registered_is_forbidden(samples):
    with SandboxAxis(samples.bound, [samples.B]) as axis:
        client = AxisClient(axis.url, "dms-a", Secret(samples.systems["dms-a"]))
        with pytest.raises(AxisAuthError, match="not registered.*check endpoint option 'organ_id'"):
            client.received()


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
    assert client_for(samples.B).fetch(doc_id) == b"\x00 not xml"


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
            "demo:demo-secret:000.00.00.H15",
            "--agency",
            "000.00.00.H15:UBND tỉnh",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        assert f"SANDBOX axis listening on http://127.0.0.1:{port}" in line
        client = AxisClient(f"http://127.0.0.1:{port}", "demo", Secret("demo-secret"))
        assert [(a.code, a.name) for a in client.agencies()] == [("000.00.00.H15", "UBND tỉnh")]
        assert client.check() is True
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
    assert "expected ID:SECRET:AGENCY" in result.stderr


def test_oversized_body_is_refused_unread(axis):
    port = int(axis.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(
            b"POST /sendEdoc HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 999999999\r\n\r\n"
        )
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413")
    assert b"X-Lienthong-Sandbox: axis" in answer
