"""The vendor's SDK (SDKVXP 2.0.1) runs a whole exchange against the sandbox axis.

Sender and receiver are two systems, each bound to its agency, driving the SDK
exactly as an agency's system does (``java/SdkExchange.java``): agency list,
register, delete, send, count, list, fetch, processing, done, sent list.
Every answer must carry ``ErrorCode`` "0" and the fetched file must be the
sent one, byte for byte.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lienthong.plugins.document_axis import edxml
from lienthong.plugins.document_axis.sandbox import SandboxAxis

A, B = "000.00.00.H41", "000.00.01.H41"
NEW_AGENCY = "000.00.99.H41"
SYSTEMS = {"sdk-a": ("sdk-secret-a-0123", A), "sdk-b": ("sdk-secret-b-4567", B)}


def document() -> bytes:
    """A document from A to B with a raw PDF and a zipped note, as lienthong builds one."""
    doc = edxml.Document(
        sender=edxml.Organization(organ_id=A, organ_name="UBND tỉnh Nghệ An"),
        recipients=[edxml.Organization(organ_id=B, organ_name="Sở Tài chính")],
        document_id=f"{A},2026/12/01,7816/UBND-VP",
        code_number="7816",
        code_notation="UBND-VP",
        promulgation_date="2026/12/01",
        document_type="1",
        subject="V/v báo cáo dự toán ngân sách năm 2027",
        attachments=[
            edxml.Attachment.from_file("bao-cao.pdf", b"%PDF-1.4\n%%EOF\n"),
            edxml.Attachment.from_file("ghi-chu.txt", "Ghi chú".encode()),
        ],
    )
    return edxml.build(doc)


def results(lines: list[str]) -> dict[str, dict[str, str]]:
    """``RESULT step k=v k=v ...`` lines by step; a value runs to the next `` k=``."""
    found = {}
    for line in lines:
        if not line.startswith("RESULT "):
            continue
        step, _, rest = line[len("RESULT ") :].partition(" ")
        fields: dict[str, str] = {}
        key = None
        for token in rest.split(" "):
            name, eq, value = token.partition("=")
            if eq and name.isidentifier():
                key = name
                fields[key] = value
            elif key is not None:
                fields[key] += " " + token
        found[step] = fields
    return found


@pytest.fixture
def sandbox():
    with SandboxAxis(SYSTEMS, [A, B]) as axis:
        yield axis


def test_the_sdks_whole_exchange_succeeds_against_the_sandbox(
    vendor, sandbox: SandboxAxis, tmp_path: Path
) -> None:
    sent = tmp_path / "gui-di.edxml"
    sent.write_bytes(document())
    store = tmp_path / "store"
    store.mkdir()
    lines = vendor.run(
        "SdkExchange",
        sandbox.url,
        "sdk-a",
        SYSTEMS["sdk-a"][0],
        A,
        "sdk-b",
        SYSTEMS["sdk-b"][0],
        str(sent),
        str(store),
        NEW_AGENCY,
    )
    steps = results(lines)
    assert list(steps) == [
        "agencies",
        "register",
        "agencies-after-register",
        "delete",
        "send",
        "count",
        "received",
        "fetch",
        "processing",
        "done",
        "sent",
    ], lines
    failed = {step: f for step, f in steps.items() if f.get("ErrorCode") != "0"}
    assert failed == {}, "\n".join(lines)
    assert steps["agencies"]["count"] == "2"
    assert steps["agencies-after-register"]["listed"] == "true"
    assert NEW_AGENCY not in sandbox.agencies
    doc_id = steps["send"]["DocId"]
    assert doc_id.startswith("sandbox-")
    assert steps["count"]["count"] == "1"
    received = steps["received"]
    assert (received["found"], received["from"], received["to"]) == (doc_id, A, B)
    assert received["itemstatus"] == "pending"
    fetched = Path(steps["fetch"]["filePath"])
    assert fetched.read_bytes() == sent.read_bytes()
    assert steps["sent"] == {
        "status": "OK",
        "ErrorCode": "0",
        "ErrorDesc": "",
        "from": A,
        "to": B,
        "receiveStatus": "done",
    }
    assert sandbox.snapshot()["inbox"][B] == [
        {"docId": doc_id, "messageType": "edoc", "from": A, "status": "done"}
    ]
    # Every call the SDK made was one the sandbox routes, as the SDK makes it.
    assert [(m, p) for m, p, _ in sandbox.snapshot()["requests"]] == [
        ("POST", "/getAgenciesList"),
        ("POST", "/registerAgency"),
        ("POST", "/getAgenciesList"),
        ("POST", "/deleteAgency"),
        ("POST", "/sendEdoc"),
        ("POST", "/countReceiveEdoc"),
        ("POST", "/getReceivedEdocList"),
        ("POST", "/getEdoc"),
        ("POST", "/updateStatus"),
        ("POST", "/updateStatus"),
        ("POST", "/getSentEdocList"),
    ]


def test_the_sdk_with_a_wrong_secret_gets_a_readable_refusal(
    vendor, sandbox: SandboxAxis, tmp_path: Path
) -> None:
    sent = tmp_path / "gui-di.edxml"
    sent.write_bytes(document())
    lines = vendor.run(
        "SdkExchange",
        sandbox.url,
        "sdk-a",
        "not-the-secret",
        A,
        "sdk-b",
        SYSTEMS["sdk-b"][0],
        str(sent),
        str(tmp_path),
        NEW_AGENCY,
    )
    steps = results(lines)
    # The SDK reads status/ErrorCode/ErrorDesc (and DocId) unchecked: all are there.
    assert steps["agencies"]["ErrorCode"] == "401"
    assert "signature does not match for system 'sdk-a'" in steps["agencies"]["ErrorDesc"]
    assert steps["send"]["ErrorCode"] == "401" and steps["send"]["DocId"] == ""
