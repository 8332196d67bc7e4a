"""End to end over real HTTP: three agencies' buses exchange a signed document through the sandbox axis.

Agencies A, B and C each run their own lienthong bus (own store, own folders):
an ``axis`` endpoint for the agency, and drop folders standing for its
document-management system (DMS): ``dms-out`` where the DMS drops edXML to
send, ``dms-in`` where the bus delivers what arrives.
"""

from __future__ import annotations

import base64
import copy
import io
import json
import struct
import time
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from lienthong import cli as cli_module
from lienthong import xml
from lienthong.message import Message
from lienthong.plugins.document_axis import plugin
from lienthong.plugins.document_axis.correlation import correlation_id
from lienthong.plugins.document_axis.sandbox_ca import SandboxCA
from lienthong.plugins.document_axis.signature import KeyMaterial, sign

ED = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
HEADER = f"{{{ED}}}edXMLEnvelope/{{{ED}}}edXMLHeader/{{{ED}}}MessageHeader"
NAMES = ("a", "b", "c")


@pytest.fixture(scope="module")
def ca() -> SandboxCA:
    return SandboxCA()


@pytest.fixture(scope="module")
def signer(ca: SandboxCA) -> KeyMaterial:
    """Agency A's clerk, with a certificate from the SANDBOX CA that B and C trust."""
    return ca.issue("CN=Văn thư UBND tỉnh thử nghiệm,O=UBND tỉnh,C=VN")


@pytest.fixture
def root_file(ca: SandboxCA, tmp_path: Path) -> str:
    return str(ca.write(tmp_path / "pki")["root"])


#: Each agency's endpoints as its config file would hold them.
RAW: dict[str, dict] = {}


def endpoints(axis, samples, name: str, **axis_options) -> dict:
    organ = dict(zip(NAMES, (samples.A, samples.B, samples.C), strict=True))[name]
    system = samples.system_of[organ]
    RAW[name] = {
        "axis": {
            "adapter": "axis",
            "url": axis.url,
            "system_id": system,
            "secret": samples.systems[system],
            "organ_id": organ,
            "sandbox": True,
            "timeout": 2,
            **axis_options,
        },
        "dms-out": {"adapter": "folder", "path": f"{name}/dms-out", "kind": "edxml"},
        "dms-in": {
            "adapter": "folder",
            "path": f"{name}/dms-in",
            "direction": "out",
            "filename": "{edxml_kind}-{key}.xml",
        },
    }
    return RAW[name]


# The DMS drops documents and statuses in one folder; the headers the
# document_axis plugin sets (edxml_kind) decide how each goes to the axis.
ROUTES = [
    {
        "name": "documents-out",
        "from": "dms-out",
        "headers": {"edxml_kind": "document"},
        "to": [{"endpoint": "axis", "kind": "edxml.document"}],
    },
    {
        "name": "statuses-out",
        "from": "dms-out",
        "headers": {"edxml_kind": "status"},
        "to": [{"endpoint": "axis", "kind": "edxml.status"}],
    },
    {"name": "from-axis", "from": "axis", "to": [{"endpoint": "dms-in"}]},
]


@pytest.fixture
def agencies(lienthong_bus, axis, samples):
    """A bus per agency, each with its own store and folders."""

    def build(name: str, bus: dict | None = None, **axis_options):
        return lienthong_bus(
            bus={"store": f"sqlite:///var/{name}.db", "var_dir": f"var/{name}", **(bus or {})},
            endpoints=endpoints(axis, samples, name, **axis_options),
            routes=ROUTES,
        )

    return build


def drop(tmp_path: Path, name: str, filename: str, body: bytes) -> None:
    folder = tmp_path / name / "dms-out"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / filename).write_bytes(body)


def history(bus, name: str, document_id: str, *args: str):
    """Run ``lienthong edxml history`` with agency ``name``'s config, as an operator would."""
    config = bus.config.base_dir / f"{name}.yaml"
    data = {"bus": {"store": f"sqlite:///var/{name}.db"}, "endpoints": RAW[name], "routes": ROUTES}
    config.write_text(json.dumps(data), encoding="utf-8")
    return CliRunner().invoke(
        cli_module.build(), ["--config", str(config), "edxml", "history", document_id, *args]
    )


def test_signed_document_to_two_agencies_and_their_statuses_back(
    agencies, axis, samples, signer, root_file, tmp_path
):
    a = agencies("a")
    b, c = agencies("b", trust_anchors=[root_file]), agencies("c", trust_anchors=[root_file])
    body = sign(samples.document(samples.A, [samples.B, samples.C]), signer)
    document_id = samples.document_id_of(body)
    drop(tmp_path, "a", "cv-7816.xml", body)

    sent = a.run(once=True)
    assert (sent.received, sent.delivered, sent.dead) == (1, 1, 0)
    for bus, name in ((b, "b"), (c, "c")):
        got = bus.run(once=True)
        assert (got.received, got.delivered, got.dead) == (1, 1, 0)
        [delivered] = (tmp_path / name / "dms-in").glob("document-*.xml")
        assert delivered.read_bytes() == body
        [message] = bus.store.messages_by_correlation(correlation_id(document_id))
        assert "Văn thư UBND tỉnh thử nghiệm" in message["headers"]["signed_by"]
        assert message["headers"]["edxml_kind"] == "document"

    # Each recipient's DMS reports its progress; A's bus polls between steps.
    for code in ("01", "03", "06"):
        for bus, name, organ in ((b, "b", samples.B), (c, "c", samples.C)):
            drop(
                tmp_path,
                name,
                f"status-{code}.xml",
                samples.status(code, organ, samples.A, document_id),
            )
            step = bus.run(once=True)
            assert (step.received, step.delivered, step.dead) == (1, 1, 0)
        step = a.run(once=True)
        assert (step.received, step.delivered, step.dead) == (2, 2, 0)
    assert len(list((tmp_path / "a/dms-in").glob("status-*.xml"))) == 6
    assert {i["status"] for i in axis.snapshot()["inbox"][samples.A]} == {"done"}

    # One correlation for the document and every status, in every store.
    rows = a.store.messages_by_correlation(correlation_id(document_id))
    assert len(rows) == 7
    assert {r["correlation_id"] for r in rows} == {correlation_id(document_id)}
    assert len(b.store.messages_by_correlation(correlation_id(document_id))) == 4

    result = history(a, "a", document_id)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"document {document_id}"
    body_lines = lines[2 : lines.index("life:")]
    # Each recipient's statuses, in order, with times.
    life = lines[lines.index("life:") + 1 :]
    assert [ln.split()[0] for ln in life] == [samples.B, samples.C]
    assert all(ln.split()[1::4] == ["01", "03", "06"] for ln in life)
    assert "document" in body_lines[0] and f"from {samples.A} via dms-out" in body_lines[0]
    assert "sent" in body_lines[1] and "document to axis" in body_lines[1]
    statuses = [ln for ln in body_lines if ln.split()[2] == "status"]
    assert [(ln.split()[3], ln.split()[5]) for ln in statuses] == [
        (code, organ) for code in ("01", "03", "06") for organ in (samples.B, samples.C)
    ]
    assert "arrived" in statuses[0] and "accepted" in statuses[2] and "completed" in statuses[-1]

    data = json.loads(history(a, "a", document_id, "--json").output)
    assert data["correlation_id"] == correlation_id(document_id)
    events = data["events"]
    assert [e["at"] for e in events] == sorted(e["at"] for e in events)
    assert events[0]["event"] == "document" and events[1]["event"] == "sent"
    assert events[1]["endpoint"] == "axis"
    status_events = [(e["status_code"], e["sender"]) for e in events if e["event"] == "status"]
    assert status_events == [
        (code, organ) for code in ("01", "03", "06") for organ in (samples.B, samples.C)
    ]
    # Each status was handed on to A's DMS too.
    assert sum(e["event"] == "delivered" for e in events) == 6

    # B's own history: received, then its own statuses sent to the axis.
    b_data = json.loads(history(b, "b", correlation_id(document_id), "--json").output)
    assert b_data["document_id"] == document_id
    assert [e["event"] for e in b_data["events"]] == [
        "document",
        "delivered",
        "status",
        "sent",
        "status",
        "sent",
        "status",
        "sent",
    ]


def test_history_of_an_unknown_document_says_what_to_check(agencies, tmp_path):
    a = agencies("a")
    result = history(a, "a", "000.00.00.H15,2020/01/01,1/XX")
    assert result.exit_code == 1
    assert "no message in this store belongs to document" in result.output
    assert "Hint:" in result.output


def test_a_wrong_secret_is_one_clear_error_per_attempt_without_a_retry_storm(
    agencies, axis, samples, tmp_path, caplog
):
    a = agencies(
        "a",
        bus={
            "breaker_failures": 2,
            "breaker_reset_seconds": 60,
            "retry": {"initial_delay": 0.05, "max_delay": 0.1},
        },
    )
    axis.add_system(samples.system_of[samples.A], "rotated-by-the-axis-operator", samples.A)
    drop(tmp_path, "a", "cv.xml", samples.document(samples.A, [samples.B]))
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        a.run_cycle()
        time.sleep(0.05)

    # The endpoint's polls and sends share its circuit: after two failed calls of
    # either kind (here a poll, then a send) it opens, and nothing more is called.
    sends = axis.request_count("/sendEdoc")
    assert sends == 1
    [row] = a.store.messages_by_correlation(
        correlation_id(samples.document_id_of(samples.document(samples.A, [samples.B])))
    )
    dead_or_pending = a.store.trace(row["id"])
    [delivery] = dead_or_pending["deliveries"]
    assert delivery["state"] == "pending"
    assert [x["outcome"] for x in delivery["attempt_log"]] == ["transient"] * sends
    error = delivery["attempt_log"][0]["error"]
    assert "refused system id 'dms-a': wrong secret" in error
    assert "Hint: check endpoint option 'secret'" in error
    assert "rotated" not in error and samples.systems["dms-a"] not in caplog.text
    health = a.store.endpoint_health()
    assert health["axis"]["state"] == "open"


def hostile(samples, number: str, change) -> bytes:
    """A document from A to B, altered by ``change(root)``."""
    root = xml.parse(samples.document(samples.A, [samples.B], number)).getroot()
    change(root)
    return xml.serialize(root)


def _attachment(root):
    return root.find(f"{{{ED}}}AttachmentEncoded/{{{ED}}}Attachment")


def _zip(name: str, payload: bytes) -> str:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, payload)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def test_hostile_documents_from_the_axis_are_parked_acked_fail_and_the_good_one_goes_on(
    agencies, axis, samples, signer, tmp_path
):
    def bomb(root):
        _attachment(root).find(f"{{{ED}}}ContentTransferEncoded").text = _zip(
            "209.doc", b"\0" * 3_000_000
        )

    def lying_bomb(root):
        # The ZIP claims 100 bytes in both its headers; the stream holds 3 MB.
        data = bytearray(base64.b64decode(_zip("209.doc", b"\0" * 3_000_000)))
        struct.pack_into("<I", data, 22, 100)
        struct.pack_into("<I", data, data.rfind(b"PK\x01\x02") + 24, 100)
        encoded = _attachment(root).find(f"{{{ED}}}ContentTransferEncoded")
        encoded.text = base64.b64encode(bytes(data)).decode("ascii")

    def climbing(root):
        _attachment(root).find(f"{{{ED}}}AttachmentName").text = "../../etc/cron.d/job"

    def bad_base64(root):
        _attachment(root).find(f"{{{ED}}}ContentTransferEncoded").text = "@@not base64!!"

    def no_recipient(root):
        for to in root.findall(f"{HEADER}/{{{ED}}}To"):
            to.getparent().remove(to)

    signed = sign(samples.document(samples.A, [samples.B], "11"), signer)
    cases = {
        "tampered": (
            signed.replace(b"V/v k", b"V/v K", 1),
            "signature",
        ),
        "zip bomb": (hostile(samples, "12", bomb), "over the limit of 1,000,000"),
        "lying zip bomb": (hostile(samples, "18", lying_bomb), "ZIP entry '209.doc'"),
        "climbing name": (hostile(samples, "13", climbing), "climbs out of its folder"),
        "bad base64": (hostile(samples, "14", bad_base64), "not valid base64"),
        "no recipient": (hostile(samples, "15", no_recipient), "To is missing"),
        "unknown namespace": (
            samples.document(samples.A, [samples.B], "16").replace(
                ED.encode(), b"http://example.org/not-edxml"
            ),
            "not valid edXML",
        ),
    }
    assert cases["tampered"][0] != signed
    good = samples.document(samples.A, [samples.B], "17")
    doc_ids = {
        name: axis.deliver(samples.A, [samples.B], body) for name, (body, _) in cases.items()
    }
    good_id = axis.deliver(samples.A, [samples.B], good)

    b = agencies("b", max_attachment_bytes=1_000_000)
    total = b.run(once=True)
    assert (total.received, total.delivered, total.dead) == (8, 1, 7)
    [delivered] = (tmp_path / "b/dms-in").glob("*.xml")
    assert delivered.read_bytes() == good

    parked = {d["message_id"]: d for d in b.store.dead_letters()}
    assert len(parked) == 7
    for name, doc_id in doc_ids.items():
        message = b.store.trace(next(m for m in parked if b.store.message(m).source_key == doc_id))
        reason = parked[message["id"]]["reason"]
        expected = cases[name][1]
        if name == "unknown namespace":
            assert "root element" in reason, reason
        else:
            assert expected in reason, (name, reason)
        assert reason.startswith("invalid at the source"), reason
    inbox = {i["docId"]: i["status"] for i in axis.snapshot()["inbox"][samples.B]}
    assert inbox == {**dict.fromkeys(doc_ids.values(), "fail"), good_id: "done"}
    assert b.run(once=True).received == 0

    # The parked ones belong to their document's history, dead letter and all.
    result = history(b, "b", samples.document_id_of(cases["zip bomb"][0]))
    assert result.exit_code == 0, result.output
    assert "dead letter" in result.output and "over the limit" in result.output
    assert "lienthong dlq show" in result.output


def test_sync_read_lists_the_axis_agencies_as_directory_records(agencies, axis, samples):
    axis.register_agency(samples.A, "UBND tỉnh Đắk Lắk", mail="vanthu@daklak.gov.vn")
    parent_id = axis.agencies[samples.A]["id"]
    axis.register_agency(samples.C, "Sở Tư pháp", pid=parent_id, mail="stp@daklak.gov.vn")
    axis.register_agency("000.00.99.H15", "Đơn vị mồ côi", pid="999")
    adapter = agencies("a").adapters["axis"]

    batch = adapter.sync_read("agency", None)
    assert batch.complete is True and batch.cursor is None
    records = {r.key: dict(r.fields) for r in batch.records}
    assert set(records) == {samples.A, samples.B, samples.C, "000.00.99.H15"}
    assert records[samples.A] == {
        "code": samples.A,
        "name": "UBND tỉnh Đắk Lắk",
        "mailbox": "vanthu@daklak.gov.vn",
        "parent": None,
    }
    assert records[samples.C]["parent"] == samples.A
    assert records[samples.B]["mailbox"] is None
    assert records["000.00.99.H15"]["parent"] is None  # names a parent the axis does not list
    # The fields are the email directory's agency fields, so a sync compares like with like.
    from lienthong.plugins.email_directory.attrmap import DEFAULT_MAPS

    directory_fields = set(DEFAULT_MAPS["agency"]) - {"objectclass", "key"}
    assert directory_fields <= set(records[samples.A])
    # A delta read is the same complete snapshot: the axis has no change feed.
    assert adapter.sync_read("agency", "anything").complete is True


def test_sync_read_of_another_entity_is_a_config_error(agencies):
    from lienthong.errors import ConfigError

    adapter = agencies("a").adapters["axis"]
    with pytest.raises(ConfigError, match="no entity 'account'.*Hint: use 'agency'"):
        adapter.sync_read("account", None)


# --- the correlation hook on its own --------------------------------------------


def test_prepare_message_correlates_documents_and_statuses(samples):
    document = samples.document(samples.A, [samples.B])
    document_id = samples.document_id_of(document)
    message = Message(body=document)
    plugin.lienthong_prepare_message(message=message)
    assert message.correlation_id == correlation_id(document_id)
    assert len(message.correlation_id) <= 64
    assert message.headers == {
        "edxml_document_id": document_id,
        "edxml_kind": "document",
        "edxml_from": samples.A,
        "edxml_business": "new",
        "edxml_action": "new",
        "edxml_to": samples.B,
    }
    status = Message(body=samples.status("03", samples.B, samples.A, document_id))
    plugin.lienthong_prepare_message(message=status)
    assert status.correlation_id == message.correlation_id
    assert status.headers["edxml_kind"] == "status"
    assert status.headers["edxml_status"] == "03"
    assert status.headers["edxml_from"] == samples.B


@pytest.mark.parametrize(
    "body",
    [
        b"<application><applicant>Nguy\xe1\xbb\x85n</applicant></application>",
        b'<edXML xmlns="http://example.org/other"><x/></edXML>',
        f'<edXML xmlns="{ED}"><edXMLEnvelope/></edXML>'.encode(),
        f'<edXML xmlns="{ED}"><edXMLEnvelope><edXMLHeader><MessageHeader>'
        f"<DocumentId> </DocumentId></MessageHeader></edXMLHeader></edXMLEnvelope></edXML>".encode(),
    ],
    ids=["other XML", "other namespace", "no header", "empty DocumentId"],
)
def test_prepare_message_leaves_everything_else_alone(body):
    message = Message(body=body, headers={"x": "1"})
    before = copy.deepcopy((message.correlation_id, message.headers))
    plugin.lienthong_prepare_message(message=message)
    assert (message.correlation_id, message.headers) == before
