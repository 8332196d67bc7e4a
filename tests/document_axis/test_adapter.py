"""The axis adapter against the sandbox axis: receive, ack, park, send once, start checks."""

from __future__ import annotations

import time

import click
import pytest

from lienthong.adapter import Capability, Secret, Services, resolve_options
from lienthong.errors import ConfigError, RejectedError, TransientError
from lienthong.host import PluginHost
from lienthong.message import Message
from lienthong.plugins.document_axis import plugin
from lienthong.plugins.document_axis.adapter import AxisAdapter
from lienthong.plugins.document_axis.client import AxisAuthError, AxisClient


@pytest.fixture
def adapter_for(axis, samples):
    started: list[AxisAdapter] = []

    def make(organ: str, **overrides) -> AxisAdapter:
        system = samples.system_of[organ]
        settings, problems = resolve_options(
            AxisAdapter,
            {
                "url": axis.url,
                "system_id": system,
                "secret": samples.systems[system],
                "organ_id": organ,
                "sandbox": True,
                "timeout": 2,
                **overrides,
            },
            f"endpoints.axis-{organ}",
        )
        assert problems == []
        adapter = AxisAdapter(f"axis-{organ}", settings, Services())
        adapter.start()
        started.append(adapter)
        return adapter

    yield make
    for adapter in started:
        adapter.stop()


def pending(axis, organ):
    return {i["docId"]: i["status"] for i in axis.snapshot()["inbox"].get(organ, [])}


def test_declares_name_options_and_capabilities():
    assert AxisAdapter.name == "axis"
    assert AxisAdapter.capabilities == {Capability.RECEIVE, Capability.SEND, Capability.SYNC}
    options = {o.name: o for o in AxisAdapter.options}
    assert options["secret"].secret and not options["url"].secret
    assert {
        "url",
        "system_id",
        "secret",
        "organ_id",
        "timeout",
        "signature_policy",
        "max_attachment_bytes",
    } <= set(options)
    assert AxisAdapter("x", {}, Services()).is_transient(TransientError("x"))


def test_secret_option_is_wrapped_and_never_shown():
    settings, problems = resolve_options(
        AxisAdapter,
        {
            "url": "http://127.0.0.1:1",
            "system_id": "s",
            "secret": {"env": "AXIS_SECRET"},
            "organ_id": "000.00.00.H15",
        },
        "endpoints.axis",
        environ={"AXIS_SECRET": "topsecret"},
    )
    assert problems == []
    assert settings["secret"] == Secret("topsecret")
    assert "topsecret" not in repr(settings)


def test_receive_stores_then_acks_done_and_a_second_poll_is_empty(
    axis, client_for, adapter_for, samples, inbox
):
    body = samples.document(samples.A, [samples.B, samples.C])
    doc_id = client_for(samples.A).send(body, organ_id=samples.A)
    b = adapter_for(samples.B)

    assert b.receive(inbox) == 1
    [message] = inbox.accepted
    assert message.kind == "edxml.document"
    assert message.body == body
    assert (message.source, message.source_key) == ("axis-" + samples.B, doc_id)
    assert message.headers["document_id"] == samples.document_id_of(body)
    assert message.headers["from"] == samples.A
    assert message.headers["to"] == f"{samples.B},{samples.C}"
    assert "invalid" not in message.headers
    assert pending(axis, samples.B) == {doc_id: "done"}
    assert pending(axis, samples.C) == {doc_id: "pending"}

    assert b.receive(inbox) == 0
    assert inbox.calls == 1
    assert len(inbox.accepted) == 1


def test_statuses_come_back_with_response_for(axis, client_for, adapter_for, samples, inbox):
    body = samples.document(samples.A, [samples.B])
    document_id = samples.document_id_of(body)
    client_for(samples.A).send(body, organ_id=samples.A)
    b_client = client_for(samples.B)
    for code in ("01", "03", "06"):
        b_client.send(
            samples.status(code, samples.B, samples.A, document_id),
            organ_id=samples.B,
            message_type="status",
        )
    a = adapter_for(samples.A)

    assert a.receive(inbox) == 3
    assert [m.kind for m in inbox.accepted] == ["edxml.status"] * 3
    assert [m.headers["status_code"] for m in inbox.accepted] == ["01", "03", "06"]
    for message in inbox.accepted:
        assert message.headers["response_for"] == document_id
        assert message.headers["from"] == samples.B
        assert message.headers["to"] == samples.A
    assert set(pending(axis, samples.A).values()) == {"done"}
    assert a.receive(inbox) == 0


def test_invalid_items_are_stored_parked_and_acked_fail(axis, adapter_for, samples, inbox):
    broken = (samples.data / "edxml/edoc_signed_template.edxml").read_bytes()
    no_subject = (
        samples.document(samples.A, [samples.B])
        .replace(b"<edXML:Subject>V/v k", b"<edXML:Comment>V/v k", 1)
        .replace(b"</edXML:Subject>", b"</edXML:Comment>", 1)
    )
    good = samples.document(samples.A, [samples.B], "9")
    broken_id = axis.deliver(samples.A, [samples.B], broken)
    no_subject_id = axis.deliver(samples.A, [samples.B], no_subject)
    good_id = axis.deliver(samples.A, [samples.B], good)
    b = adapter_for(samples.B)

    assert b.receive(inbox) == 3
    by_key = {m.source_key: m for m in inbox.accepted}
    assert "undeclared namespace prefix 'xlink'" in by_key[broken_id].headers["invalid"]
    assert "Subject" in by_key[no_subject_id].headers["invalid"]
    assert "invalid" not in by_key[good_id].headers
    assert set(inbox.parked) == {by_key[broken_id].id, by_key[no_subject_id].id}
    assert pending(axis, samples.B) == {broken_id: "fail", no_subject_id: "fail", good_id: "done"}
    assert b.receive(inbox) == 0


def test_attachment_over_the_limit_is_parked(axis, client_for, adapter_for, samples, inbox):
    doc_id = client_for(samples.A).send(
        samples.document(samples.A, [samples.B]), organ_id=samples.A
    )
    b = adapter_for(samples.B, max_attachment_bytes=1000)
    assert b.receive(inbox) == 1
    assert "over max_attachment_bytes 1,000" in inbox.accepted[0].headers["invalid"]
    assert pending(axis, samples.B) == {doc_id: "fail"}


def test_crash_before_ack_redelivers_and_the_store_dedups(
    axis, client_for, adapter_for, samples, inbox
):
    doc_id = client_for(samples.A).send(
        samples.document(samples.A, [samples.B]), organ_id=samples.A
    )
    b = adapter_for(samples.B)
    axis.inject(503, path="/updateStatus")
    with pytest.raises(TransientError, match="HTTP 503"):
        b.receive(inbox)
    assert len(inbox.accepted) == 1
    assert pending(axis, samples.B) == {doc_id: "pending"}

    assert b.receive(inbox) == 1
    assert len(inbox.accepted) == 1
    assert pending(axis, samples.B) == {doc_id: "done"}


def test_send_delivers_once_per_key(axis, adapter_for, samples, inbox):
    body = samples.document(samples.A, [samples.B])
    a = adapter_for(samples.A)
    message = Message(body=body, kind="edxml.document")
    a.send(message, key="m1:axis-a")
    a.send(message, key="m1:axis-a")
    assert len(pending(axis, samples.B)) == 1
    assert adapter_for(samples.B).receive(inbox) == 1


def test_send_whose_reply_was_lost_is_retried_with_the_same_key_and_sent_once(
    axis, adapter_for, samples
):
    a = adapter_for(samples.A, timeout=0.3)
    message = Message(body=samples.document(samples.A, [samples.B]), kind="edxml.document")
    axis.inject(None, delay=0.8, path="/sendEdoc")
    with pytest.raises(TransientError, match="did not answer"):
        a.send(message, key="k-1")
    deadline = time.monotonic() + 5
    while axis.request_count("/sendEdoc") == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(pending(axis, samples.B)) == 1, "the axis did the work though the reply was lost"
    a.send(message, key="k-1")
    assert len(pending(axis, samples.B)) == 1


def test_server_error_on_send_is_transient_and_sends_nothing(axis, adapter_for, samples):
    a = adapter_for(samples.A)
    message = Message(body=samples.document(samples.A, [samples.B]), kind="edxml.document")
    axis.inject(500, path="/sendEdoc")
    with pytest.raises(TransientError, match="HTTP 500"):
        a.send(message, key="k-2")
    assert pending(axis, samples.B) == {}
    a.send(message, key="k-2")
    assert len(pending(axis, samples.B)) == 1


def test_send_status(axis, adapter_for, samples, inbox):
    b = adapter_for(samples.B)
    b.send(
        Message(body=samples.status("03", samples.B, samples.A, "doc-1"), kind="edxml.status"),
        key="s1",
    )
    assert adapter_for(samples.A).receive(inbox) == 1
    assert inbox.accepted[0].headers["response_for"] == "doc-1"


def test_send_refuses_what_it_cannot_deliver(axis, adapter_for, samples):
    a = adapter_for(samples.A)
    with pytest.raises(RejectedError, match="cannot send a message of kind 'xml'"):
        a.send(Message(body=b"<x/>"), key="k")
    with pytest.raises(RejectedError, match="this endpoint sends for '000.00.00.H15'"):
        a.send(
            Message(body=samples.document(samples.B, [samples.C]), kind="edxml.document"), key="k2"
        )
    with pytest.raises(RejectedError, match="not well-formed"):
        a.send(Message(body=b"<edXML", kind="edxml.document"), key="k3")
    assert axis.request_count("/sendEdoc") == 0


def test_start_refuses_a_wrong_secret(axis, samples):
    settings, _ = resolve_options(
        AxisAdapter,
        {
            "url": axis.url,
            "system_id": "dms-a",
            "secret": "wrong",
            "organ_id": samples.A,
            "sandbox": True,
        },
        "endpoints.axis",
    )
    adapter = AxisAdapter("axis", settings, Services())
    with pytest.raises(ConfigError, match="endpoints.axis.secret: .*refused system id 'dms-a'"):
        adapter.start()
    assert axis.request_count() == 1


def test_start_refuses_a_sandbox_unless_allowed(axis, samples):
    settings, _ = resolve_options(
        AxisAdapter,
        {
            "url": axis.url,
            "system_id": "dms-a",
            "secret": samples.systems["dms-a"],
            "organ_id": samples.A,
        },
        "endpoints.axis",
    )
    with pytest.raises(ConfigError, match="is a SANDBOX axis"):
        AxisAdapter("axis", settings, Services()).start()


def test_start_reports_every_bad_setting():
    settings, _ = resolve_options(
        AxisAdapter,
        {
            "url": "ftp://axis",
            "system_id": "s",
            "secret": "x",
            "organ_id": "1.2.3.4.5",
            "signature_policy": "maybe",
        },
        "endpoints.axis",
    )
    with pytest.raises(ConfigError) as caught:
        AxisAdapter("axis", settings, Services()).start()
    text = str(caught.value)
    assert "3 configuration problems" in text
    assert "'ftp://axis' is not an http(s) URL" in text
    assert "'maybe' is not one of require, verify-if-present, off" in text
    assert "'1.2.3.4.5' is not an agency code" in text


def test_plugin_registers_the_adapter_and_commands():
    host = PluginHost(load_builtins=False, load_entry_points=False)
    host.add(plugin, "document_axis")
    host.refresh()
    assert host.adapter("axis") is AxisAdapter

    @click.group()
    def cli() -> None:
        """A stand-in for the lienthong command."""

    host.register_commands(cli)
    assert "edxml" in cli.commands


def test_batch_size_bounds_one_poll(axis, client_for, adapter_for, samples, inbox):
    a = client_for(samples.A)
    for number in ("1", "2", "3"):
        a.send(samples.document(samples.A, [samples.B], number), organ_id=samples.A)
    b = adapter_for(samples.B, batch_size=2)
    assert b.receive(inbox) == 2
    assert b.receive(inbox) == 1
    assert b.receive(inbox) == 0
    assert len({m.headers["document_id"] for m in inbox.accepted}) == 3


def _key(common_name: str):
    from lienthong.plugins.document_axis.signature import throwaway_key

    return throwaway_key(common_name)


@pytest.fixture(scope="module")
def ca():
    from lienthong.plugins.document_axis.sandbox_ca import SandboxCA

    return SandboxCA()


@pytest.fixture(scope="module")
def signer(ca):
    return ca.issue("CN=Van thu UBND tinh,C=VN")


def _pem(key, path):
    from cryptography.hazmat.primitives.serialization import Encoding

    path.write_bytes(key.certificate.public_bytes(Encoding.PEM))
    return str(path)


def _trust(ca, tmp_path) -> dict:
    """Options trusting the SANDBOX CA, its clerks signing for agency A."""
    return {
        "trust_anchors": [_pem(ca.root, tmp_path / "ca.pem")],
        "signer_agencies": {"C=VN": ["000.00.00.H15"]},
    }


def test_signed_document_from_a_trusted_signer_is_accepted(
    axis, client_for, adapter_for, samples, inbox, ca, signer, tmp_path
):
    from lienthong.plugins.document_axis.signature import sign

    body = sign(samples.document(samples.A, [samples.B]), signer)
    doc_id = client_for(samples.A).send(body, organ_id=samples.A)
    b = adapter_for(samples.B, signature_policy="require", **_trust(ca, tmp_path))
    assert b.receive(inbox) == 1
    message = inbox.accepted[0]
    assert "invalid" not in message.headers
    assert "Van thu UBND tinh" in message.headers["signed_by"]
    assert pending(axis, samples.B) == {doc_id: "done"}


def test_the_sending_endpoint_signs_with_its_key(
    axis, adapter_for, samples, inbox, ca, signer, tmp_path
):
    from cryptography.hazmat.primitives import serialization

    key_file = tmp_path / "signer.key"
    key_file.write_bytes(
        signer.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"mat-khau"),
        )
    )
    cert_file = _pem(signer, tmp_path / "signer.pem")
    with open(cert_file, "ab") as chain:  # the intermediate too, so receivers can build the chain
        chain.write(ca.intermediate.certificate.public_bytes(serialization.Encoding.PEM))
    a = adapter_for(
        samples.A,
        signing_key=str(key_file),
        signing_cert=cert_file,
        signing_password="mat-khau",
    )
    a.send(Message(body=samples.document(samples.A, [samples.B]), kind="edxml.document"), key="k1")
    b = adapter_for(samples.B, signature_policy="require", **_trust(ca, tmp_path))
    assert b.receive(inbox) == 1
    [message] = inbox.accepted
    assert "invalid" not in message.headers
    assert "Van thu UBND tinh" in message.headers["signed_by"]


def test_a_signing_key_that_cannot_be_loaded_refuses_to_start(adapter_for, samples, tmp_path):
    (tmp_path / "broken.pem").write_text("not a key")
    with pytest.raises(ConfigError, match="signing_key"):
        adapter_for(samples.A, signing_key=str(tmp_path / "broken.pem"))


def test_signature_problems_park_the_document(
    axis, client_for, adapter_for, samples, inbox, ca, signer, tmp_path
):
    from lienthong.plugins.document_axis.signature import sign

    stranger = sign(samples.document(samples.A, [samples.B], "1"), _key("Someone else"))
    unsigned = samples.document(samples.A, [samples.B], "2")
    client = client_for(samples.A)
    stranger_id = client.send(stranger, organ_id=samples.A)
    unsigned_id = client.send(unsigned, organ_id=samples.A)
    b = adapter_for(samples.B, signature_policy="require", **_trust(ca, tmp_path))
    assert b.receive(inbox) == 2
    by_key = {m.source_key: m.headers.get("invalid", "") for m in inbox.accepted}
    assert "signature" in by_key[stranger_id].lower()
    assert "signature missing" in by_key[unsigned_id]
    assert pending(axis, samples.B) == {stranger_id: "fail", unsigned_id: "fail"}


def test_vendor_placeholder_signature_fails_verify_if_present(axis, adapter_for, samples, inbox):
    sample = (samples.data / "edxml/edoc_new.edxml").read_bytes()
    doc_id = axis.deliver(samples.A, [samples.B], sample)
    b = adapter_for(samples.B)
    assert b.settings["signature_policy"] == "verify-if-present"
    assert b.receive(inbox) == 1
    assert "signature" in inbox.accepted[0].headers["invalid"].lower()
    assert pending(axis, samples.B) == {doc_id: "fail"}


def test_an_endpoint_whose_system_acts_for_another_agency_stops_with_a_clear_error(
    axis, adapter_for, samples, inbox
):
    # B's system, configured as if it received for C: the axis lists B's documents.
    doc_id = AxisClient(axis.url, "dms-a", Secret(samples.systems["dms-a"])).send(
        samples.document(samples.A, [samples.B]), organ_id=samples.A
    )
    wrong = adapter_for(samples.B, organ_id=samples.C)
    with pytest.raises(AxisAuthError) as caught:
        wrong.receive(inbox)
    assert caught.value.option == "organ_id"
    assert f"lists item {doc_id} for agency '{samples.B}' to system 'dms-b'" in str(caught.value)
    assert f"receives for '{samples.C}'" in str(caught.value)
    assert inbox.accepted == [] and pending(axis, samples.B) == {doc_id: "pending"}


def test_sending_for_an_agency_the_system_does_not_act_for_is_refused(axis, adapter_for, samples):
    wrong = adapter_for(samples.B, organ_id=samples.C)
    message = Message(
        body=samples.document(samples.C, [samples.A]), kind="edxml.document", source="dms"
    )
    with pytest.raises(AxisAuthError, match="acts for agency '000.00.00.G22', not '000.00.15.H51'"):
        wrong.send(message, key="k-1")


@pytest.mark.parametrize("form", ["padded", "unpadded"])
def test_the_hash_file_form_is_a_setting(axis, adapter_for, samples, form):
    adapter = adapter_for(samples.A, hash_file=form)
    assert adapter.client is not None and adapter.client.wire.hash_file == form


def test_an_unknown_hash_file_form_is_a_config_problem(axis, samples):
    settings, problems = resolve_options(
        AxisAdapter,
        {
            "url": axis.url,
            "system_id": "dms-a",
            "secret": samples.systems["dms-a"],
            "organ_id": samples.A,
            "sandbox": True,
            "hash_file": "base64",
        },
        "endpoints.axis",
    )
    assert problems == []
    with pytest.raises(ConfigError, match="hash_file: 'base64' is not one of unpadded, padded"):
        AxisAdapter("axis", settings, Services()).start()
