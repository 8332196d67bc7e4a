"""The axis client over real HTTP against the sandbox axis: signing, routing, error classes."""

from __future__ import annotations

import hashlib
import hmac
import logging
import socket
from datetime import UTC, datetime, timedelta

import pytest
import requests

from lienthong.adapter import Secret
from lienthong.errors import FatalError, RejectedError, TransientError
from lienthong.plugins.document_axis import edxml
from lienthong.plugins.document_axis.client import (
    Agency,
    AxisAuthError,
    AxisClient,
    Wire,
    sdk_hash_file,
    sdk_timestamp,
    sha256_hex,
    sign,
)


def test_sign_writes_the_sdks_signed_header_form():
    # The WIRE.md example's shape: prefixed keys, Content-Type signed, bare names in the key list.
    params = {
        "systemid": "sys-a",
        "timestamp": "02122026T054518+0173",
        "Content-Type": "application/json",
    }
    headers = sign(params, "k")
    payload = (
        '{"XroadVnpt-systemid":"sys-a","XroadVnpt-timestamp":"02122026T054518+0173",'
        '"XroadVnpt-Content-Type":"application/json"}'
    )
    assert headers["XroadVnpt-sign-header"] == payload
    assert headers["XroadVnpt-sign-header-key"] == "systemid;timestamp;Content-Type"
    assert headers["XroadVnpt-systemid"] == "sys-a"
    assert headers["XroadVnpt-Content-Type"] == "application/json"
    expected = hmac.new(b"k", payload.encode(), hashlib.sha256).hexdigest()
    assert headers["XroadVnpt-hash-header"] == expected


def test_the_sdk_timestamp_is_local_time_with_milliseconds():
    when = datetime(2026, 12, 2, 5, 45, 18, 173_999).astimezone()
    assert sdk_timestamp(when) == "02122026T054518+0173"
    assert sdk_timestamp(when.astimezone(UTC)) == "02122026T054518+0173"


def test_hash_file_is_unpadded_as_the_sdk_writes_it():
    # Integer.toHexString per byte: a byte below 0x10 loses its leading zero.
    data = next(b for b in (bytes([n]) for n in range(256)) if hashlib.sha256(b).digest()[0] < 16)
    padded = hashlib.sha256(data).hexdigest()
    assert padded.startswith("0")
    assert sdk_hash_file(data) == "".join(format(b, "x") for b in hashlib.sha256(data).digest())
    assert sdk_hash_file(data)[0] == padded[1] and len(sdk_hash_file(data)) < 64
    assert Wire().hash_file == "unpadded"
    with pytest.raises(ValueError, match="hash_file 'base64' is not one of unpadded, padded"):
        Wire(hash_file="base64")


@pytest.mark.parametrize("form", ["unpadded", "padded"])
def test_the_sandbox_takes_either_hash_file_form(axis, samples, form):
    client = AxisClient(
        axis.url, "dms-a", Secret(samples.systems["dms-a"]), wire=Wire(hash_file=form)
    )
    try:
        doc_id = client.send(samples.document(samples.A, [samples.B]), organ_id=samples.A)
    finally:
        client.session.close()
    assert doc_id.startswith("sandbox-")


def test_signed_request_is_accepted(axis, client_for, samples):
    client = client_for(samples.A)
    assert client.received() == []
    assert axis.snapshot()["requests"] == [("POST", "/getReceivedEdocList", 200)]


def test_wrong_secret_is_a_clear_non_transient_error_after_one_request(axis, samples):
    client = AxisClient(axis.url, "dms-a", Secret("not-the-secret"))
    with pytest.raises(AxisAuthError) as caught:
        client.received()
    text = str(caught.value)
    assert f"axis at {axis.url}" in text and "refused system id 'dms-a'" in text
    assert "wrong secret or unknown system" in text
    assert "Hint: check endpoint option 'secret'" in text
    assert "not-the-secret" not in text and "secret-a" not in text
    assert isinstance(caught.value, FatalError)
    assert not isinstance(caught.value, TransientError)
    assert axis.request_count() == 1


def test_unknown_system_is_refused_the_same_way(axis, samples):
    client = AxisClient(axis.url, "dms-x", Secret("whatever"))
    with pytest.raises(AxisAuthError, match="refused system id 'dms-x'"):
        client.agencies()
    assert axis.request_count() == 1


def test_stale_timestamp_is_refused_as_replay(axis, samples):
    past = datetime.now(UTC) - timedelta(minutes=10)
    client = AxisClient(axis.url, "dms-a", Secret(samples.systems["dms-a"]), clock=lambda: past)
    with pytest.raises(AxisAuthError, match="replayed or stale request"):
        client.received()


def test_a_captured_request_with_a_nonce_cannot_be_replayed(axis, samples):
    params = {
        "systemid": "dms-a",
        "servicetype": "eDoc",
        "messagetype": "edoc",
        "timestamp": sdk_timestamp(datetime.now(UTC)),
        "nonce": "fixed",
        "Content-Type": "application/json",
    }
    headers = sign(params, samples.systems["dms-a"])
    first = requests.post(axis.url + "/getReceivedEdocList", headers=headers, timeout=5)
    again = requests.post(axis.url + "/getReceivedEdocList", headers=headers, timeout=5)
    assert first.status_code == 200
    assert again.status_code == 401
    assert "replayed or stale request" in again.json()["ErrorDesc"]


def test_tampered_parameter_breaks_the_signature(axis, samples):
    stamp = str(int(datetime.now(UTC).timestamp() * 1000))
    params = {
        "timestamp": stamp,
        "nonce": "n1",
        "systemid": "dms-a",
        "servicetype": "eDoc",
        "from": samples.A,
        "messagetype": "edoc",
    }
    headers = sign(params, samples.systems["dms-a"])
    headers["XroadVnpt-from"] = samples.B
    reply = requests.post(axis.url + "/getReceivedEdocList", headers=headers, timeout=5)
    assert reply.status_code == 401


def test_hash_file_mismatch_is_rejected(axis, samples):
    body = samples.document(samples.A, [samples.B])
    stamp = str(int(datetime.now(UTC).timestamp() * 1000))
    params = {
        "timestamp": stamp,
        "nonce": "n2",
        "systemid": "dms-a",
        "servicetype": "eDoc",
        "from": samples.A,
        "messagetype": "edoc",
        "hash-file": sha256_hex(b"other"),
        "Content-Type": "application/octet-stream",
    }
    headers = sign(params, samples.systems["dms-a"])
    headers["Content-Type"] = "application/octet-stream"
    reply = requests.post(axis.url + "/sendEdoc", headers=headers, data=body, timeout=5)
    assert reply.status_code == 400
    assert "hash-file" in reply.json()["ErrorDesc"]
    assert axis.snapshot()["inbox"] == {}


def test_document_to_two_agencies_and_statuses_back(axis, client_for, samples):
    a, b, c = client_for(samples.A), client_for(samples.B), client_for(samples.C)
    body = samples.document(samples.A, [samples.B, samples.C])
    document_id = samples.document_id_of(body)
    doc_id = a.send(body, organ_id=samples.A)

    for client, organ in ((b, samples.B), (c, samples.C)):
        assert client.count_received() == 1
        [item] = client.received()
        assert (item.doc_id, item.from_, item.to, item.status) == (
            doc_id,
            samples.A,
            organ,
            "pending",
        )
        assert client.fetch(doc_id) == body
        assert client.download(doc_id) == body
        client.update_status(doc_id, "done")
        assert client.received() == []

    sent = a.sent()
    assert {(i.to_code, i.receive_status) for i in sent} == {
        (samples.B, "done"),
        (samples.C, "done"),
    }
    assert {(i.sender_doc_id, i.from_code, i.send_status) for i in sent} == {
        (doc_id, samples.A, "done")
    }
    assert {i.title for i in sent} == {edxml.read(body).subject}

    for code in ("01", "03", "06"):
        b.send(
            samples.status(code, samples.B, samples.A, document_id),
            organ_id=samples.B,
            message_type="status",
        )
    c.send(
        samples.status("01", samples.C, samples.A, document_id),
        organ_id=samples.C,
        message_type="status",
    )
    assert a.count_received(message_type="status") == 4
    assert a.received(message_type="edoc") == []
    seen = []
    for item in a.received(message_type="status"):
        text = a.fetch(item.doc_id).decode("utf-8")
        assert f"<edXML:DocumentId>{document_id}</edXML:DocumentId>" in text
        code = text.split("<edXML:StatusCode>")[1].split("<")[0]
        seen.append((item.from_, code))
        a.update_status(item.doc_id, "done")
    assert sorted(seen) == [
        (samples.B, "01"),
        (samples.B, "03"),
        (samples.B, "06"),
        (samples.C, "01"),
    ]
    assert a.received(message_type="status") == []


def test_processing_stays_listed_and_fail_leaves_the_list(axis, client_for, samples):
    a, b = client_for(samples.A), client_for(samples.B)
    first = a.send(samples.document(samples.A, [samples.B], "1"), organ_id=samples.A)
    second = a.send(samples.document(samples.A, [samples.B], "2"), organ_id=samples.A)
    b.update_status(first, "processing")
    b.update_status(second, "fail")
    assert [(i.doc_id, i.status) for i in b.received()] == [(first, "processing")]
    with pytest.raises(ValueError, match="'read' is not one of done, fail, processing"):
        b.update_status(first, "read")


def test_same_idempotency_key_sends_once(axis, client_for, samples):
    a = client_for(samples.A)
    body = samples.document(samples.A, [samples.B])
    first = a.send(body, organ_id=samples.A, key="delivery-42")
    again = a.send(body, organ_id=samples.A, key="delivery-42")
    other = a.send(body, organ_id=samples.A, key="delivery-43")
    assert first == again != other
    assert len(axis.snapshot()["inbox"][samples.B]) == 2


def test_unknown_recipient_and_wrong_sender_are_rejected(axis, client_for, samples):
    a = client_for(samples.A)
    with pytest.raises(RejectedError, match=r"unknown recipient agency 000\.00\.99\.H99"):
        a.send(samples.document(samples.A, ["000.00.99.H99"]), organ_id=samples.A)
    with pytest.raises(RejectedError, match="is not the calling agency"):
        a.send(samples.document(samples.B, [samples.C]), organ_id=samples.A)
    assert not isinstance(RejectedError("x"), TransientError)


def test_fetching_another_agencys_document_is_refused(axis, client_for, samples):
    a, c = client_for(samples.A), client_for(samples.C)
    doc_id = a.send(samples.document(samples.A, [samples.B]), organ_id=samples.A)
    with pytest.raises(RejectedError, match="HTTP 404"):
        c.fetch(doc_id)


def test_server_error_is_transient_and_not_retried_by_the_client(axis, client_for, samples):
    a = client_for(samples.A)
    axis.inject(500)
    with pytest.raises(TransientError, match="HTTP 500"):
        a.received()
    assert axis.request_count() == 1
    assert a.received() == []


def test_slow_answer_past_the_timeout_is_transient(axis, client_for, samples):
    a = client_for(samples.A, timeout=0.2)
    axis.inject(None, delay=1.0)
    with pytest.raises(TransientError, match=r"did not answer in 0\.2 s"):
        a.received()


def test_unreachable_axis_is_transient():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = AxisClient(f"http://127.0.0.1:{port}", "dms-a", Secret("s"), timeout=2)
    with pytest.raises(TransientError, match="cannot be reached"):
        client.agencies()


def test_agencies_register_list_delete(axis, client_for, samples):
    a = client_for(samples.A)
    a.register_agency(Agency("000.00.16.H51", "Sở Tư pháp", pid="1", mail="stp@example.vn"))
    found = {x.code: x for x in a.agencies()}
    assert found["000.00.16.H51"].name == "Sở Tư pháp"
    assert set(found) == {samples.A, samples.B, samples.C, "000.00.16.H51"}
    a.delete_agency("000.00.16.H51")
    assert "000.00.16.H51" not in {x.code for x in a.agencies()}
    with pytest.raises(RejectedError, match="no agency '000.00.16.H51'"):
        a.delete_agency("000.00.16.H51")


def test_secret_never_shows(axis, samples):
    client = AxisClient(axis.url, "dms-a", Secret("hunter2-secret"))
    assert "hunter2" not in repr(client)
    assert "hunter2" not in repr(vars(client))
    with pytest.raises(TypeError, match="Secret"):
        AxisClient(axis.url, "dms-a", "plain-string")  # type: ignore[arg-type]


def test_secret_never_reaches_the_logs(axis, samples, caplog):
    caplog.set_level(logging.DEBUG)
    good = AxisClient(axis.url, "dms-a", Secret(samples.systems["dms-a"]))
    good.received()
    with pytest.raises(AxisAuthError):
        AxisClient(axis.url, "dms-a", Secret("hunter2-secret")).agencies()
    assert caplog.records, "the client logs its calls at debug level"
    assert "hunter2" not in caplog.text
    assert samples.systems["dms-a"] not in caplog.text
