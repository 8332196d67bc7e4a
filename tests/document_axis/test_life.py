"""A document's whole life between agencies, each with its own bus, over the sandbox axis.

Agencies A, B and C run a bus each (own store, own folders): an ``axis``
endpoint, ``dms-out`` where the agency's document system (DMS) drops what it
sends (documents and statuses), and ``dms-in`` where the bus delivers what
arrives, named by what it is (``{edxml_action}-{key}.xml``: ``new-…``,
``revoke-…``, ``status-13-…``). The tests cover what issue 16 asks of it:
revocations, updates and replacements reaching the DMS as such and linked in
the history; the status 02 a sender gets when its document is refused; the
recall exchange (13, then 15 or 16) both ways; each recipient's 01 → 06 in
the history; and ``edxml overdue``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from lienthong import cli as cli_module
from lienthong.plugins.document_axis import edxml
from lienthong.plugins.document_axis.correlation import correlation_id
from lienthong.plugins.document_axis.overdue import overdue

NAMES = ("a", "b", "c")
RAW: dict[str, dict] = {}

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
    """A bus per agency; ``axis_options`` go to its axis endpoint."""

    def build(name: str, **axis_options):
        organ = dict(zip(NAMES, (samples.A, samples.B, samples.C), strict=True))[name]
        system = samples.system_of[organ]
        RAW[name] = {
            "axis": {
                "adapter": "axis",
                "url": axis.url,
                "system_id": system,
                "secret": samples.systems[system],
                "organ_id": organ,
                "organ_name": f"Agency {name.upper()}",
                "sandbox": True,
                "timeout": 2,
                **axis_options,
            },
            "dms-out": {"adapter": "folder", "path": f"{name}/dms-out", "kind": "edxml"},
            "dms-in": {
                "adapter": "folder",
                "path": f"{name}/dms-in",
                "direction": "out",
                "filename": "{edxml_action}-{key}.xml",
            },
        }
        return lienthong_bus(
            bus={"store": f"sqlite:///var/{name}.db", "var_dir": f"var/{name}"},
            endpoints=RAW[name],
            routes=ROUTES,
        )

    return build


def drop(tmp_path: Path, name: str, filename: str, body: bytes) -> None:
    folder = tmp_path / name / "dms-out"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / filename).write_bytes(body)


def inbox(tmp_path: Path, name: str, prefix: str) -> list[Path]:
    return sorted((tmp_path / name / "dms-in").glob(f"{prefix}-*.xml"))


def edxml_command(bus, name: str, *args: str):
    """Run ``lienthong edxml ...`` with agency ``name``'s config, as an operator would."""
    config = bus.config.base_dir / f"{name}.yaml"
    data = {"bus": {"store": f"sqlite:///var/{name}.db"}, "endpoints": RAW[name], "routes": ROUTES}
    config.write_text(json.dumps(data), encoding="utf-8")
    return CliRunner().invoke(cli_module.build(), ["--config", str(config), "edxml", *args])


def business_document(
    samples, sender: str, recipients: list[str], number: str, doc_type: str, concerns: str
) -> bytes:
    """A revocation (1), update (2) or replacement (3) of document ``concerns``."""
    document = edxml.read(samples.document(sender, recipients, number=number))
    assert isinstance(document, edxml.Document)
    reason = {"1": "Thu hồi văn bản", "2": "Cập nhật văn bản", "3": "Thay thế văn bản"}[doc_type]
    document.business = edxml.Business(doc_type=doc_type, reason=reason, document_id=concerns)
    if doc_type == "3":
        document.business.replacements = [
            edxml.Replacement(document_id=concerns, organ_ids=list(recipients))
        ]
    return edxml.build(document)


def status(code: str, sender: str, answered_organ: str, document_id: str, text: str = "") -> bytes:
    return edxml.build(
        edxml.Status(
            sender=edxml.Organization(organ_id=sender),
            response_for=edxml.ResponseFor(organ_id=answered_organ, document_id=document_id),
            staff=edxml.StaffInfo(department="Văn thư", staff="Văn thư"),
            status_code=code,
            description=text or f"trạng thái {code}",
            timestamp=datetime.now(UTC).strftime(edxml.TIMESTAMP_FORMAT),
        )
    )


def send(tmp_path, bus, name: str, filename: str, body: bytes) -> None:
    drop(tmp_path, name, filename, body)
    step = bus.run(once=True)
    assert (step.received, step.dead) == (1, 0), step


# --- business types --------------------------------------------------------------


@pytest.mark.parametrize(
    ("doc_type", "action", "relation"),
    [("1", "revoke", "revoked by"), ("2", "update", "updated by"), ("3", "replace", "replaced by")],
)
def test_a_revocation_update_or_replacement_reaches_the_dms_as_such(
    agencies, samples, tmp_path, doc_type, action, relation
):
    a, b = agencies("a"), agencies("b")
    original = samples.document(samples.A, [samples.B], number="100")
    original_id = samples.document_id_of(original)
    send(tmp_path, a, "a", "original.xml", original)
    b.run(once=True)
    [first] = inbox(tmp_path, "b", "new")
    assert first.read_bytes() == original

    later = business_document(samples, samples.A, [samples.B], "101", doc_type, original_id)
    later_id = samples.document_id_of(later)
    send(tmp_path, a, "a", f"{action}.xml", later)
    got = b.run(once=True)
    assert (got.received, got.delivered, got.dead) == (1, 1, 0)
    # The DMS gets it named for what it does, and it names the document it concerns.
    [arrived] = inbox(tmp_path, "b", action)
    received = edxml.read(arrived.read_bytes())
    assert isinstance(received, edxml.Document) and received.business is not None
    assert received.business.doc_type_name == action
    assert received.business.document_id == original_id
    [message] = b.store.messages_by_correlation(correlation_id(later_id))
    assert message["headers"]["edxml_business"] == action
    assert message["headers"]["edxml_concerns"] == original_id
    assert message["headers"]["edxml_action"] == action

    # Both histories link the two documents, each way.
    for bus, name in ((a, "a"), (b, "b")):
        data = json.loads(edxml_command(bus, name, "history", original_id, "--json").output)
        assert [(x["relation"], x["document_id"]) for x in data["links"]] == [(relation, later_id)]
        text = edxml_command(bus, name, "history", original_id).output
        assert f"{relation} {later_id} (from {samples.A}" in text
        data = json.loads(edxml_command(bus, name, "history", later_id, "--json").output)
        assert [(x["relation"], x["document_id"]) for x in data["links"]] == [
            (
                relation.split()[0]
                .replace("revoked", "revokes")
                .replace("updated", "updates")
                .replace("replaced", "replaces"),
                original_id,
            )
        ]


# --- status 02 by policy -----------------------------------------------------------


def test_a_parked_unsigned_document_brings_its_sender_a_02_with_the_reason(
    agencies, axis, samples, tmp_path
):
    a, b = agencies("a"), agencies("b")  # B: the default policy; a decision must be signed
    document = edxml.read(samples.document(samples.A, [samples.B], number="215"))
    assert isinstance(document, edxml.Document)
    document.type_name = "Quyết định"
    body = edxml.build(document)
    document_id = document.document_id
    assert document_id
    send(tmp_path, a, "a", "decision.xml", body)
    got = b.run(once=True)
    assert (got.received, got.delivered) == (1, 0)
    [dead] = b.store.dead_letters()
    assert "signature missing" in dead["reason"]

    # A's bus takes the 02 in and hands it to A's DMS, which reads the reason.
    step = a.run(once=True)
    assert (step.received, step.delivered, step.dead) == (1, 1, 0)
    [refused] = inbox(tmp_path, "a", "status-02")
    answer = edxml.read(refused.read_bytes())
    assert isinstance(answer, edxml.Status)
    assert answer.status_code == "02" and answer.sender.organ_id == samples.B
    assert answer.sender.organ_name == "Agency B"
    assert answer.response_for.document_id == document_id
    assert answer.response_for.organ_id == samples.A
    assert answer.description is not None
    assert answer.description.startswith(
        "Từ chối tiếp nhận văn bản điện tử: văn bản chưa được ký số"
    )
    assert "Đề nghị cơ quan gửi kiểm tra, khắc phục và gửi lại." in answer.description
    assert "signature missing" in answer.description  # the technical detail follows

    # A's history: its document, then B's refusal; B's: the refusal it sent.
    a_data = json.loads(edxml_command(a, "a", "history", document_id, "--json").output)
    assert [
        (e["status_code"], e["sender"]) for e in a_data["events"] if e["event"] == "status"
    ] == [("02", samples.B)]
    assert [s["code"] for s in a_data["life"][samples.B]] == ["02"]
    b_text = edxml_command(b, "b", "history", document_id).output
    assert f"status 02    sent to {samples.A} via axis: refused" in b_text
    assert "chưa được ký số" in b_text

    # The same document once more (the real axis does not deduplicate): no second 02.
    axis.deliver(samples.A, [samples.B], body)
    again = b.run(once=True)
    assert again.received == 1
    assert a.run(once=True).received == 0
    assert sum(1 for _, (s, kind) in axis.snapshot()["sent"].items() if kind == "status") == 1


def test_a_document_not_addressed_to_the_agency_is_refused_as_such(
    agencies, axis, samples, tmp_path
):
    a, b = agencies("a"), agencies("b")
    body = samples.document(samples.A, [samples.C], number="300")
    axis.deliver(samples.A, [samples.B], body)  # the axis hands B what names only C
    assert b.run(once=True).received == 1
    [dead] = b.store.dead_letters()
    assert "recipient unknown" in dead["reason"] and samples.C in dead["reason"]
    assert a.run(once=True).received == 1
    [refused] = inbox(tmp_path, "a", "status-02")
    answer = edxml.read(refused.read_bytes())
    assert isinstance(answer, edxml.Status)
    assert "văn bản không gửi đến cơ quan này" in (answer.description or "")


def test_on_refuse_silent_parks_without_telling_the_sender(agencies, axis, samples, tmp_path):
    a, b = agencies("a"), agencies("b", on_refuse="silent")
    axis.deliver(samples.A, [samples.B], b"<not-edxml/>")
    assert b.run(once=True).received == 1
    assert len(b.store.dead_letters()) == 1
    assert a.run(once=True).received == 0
    assert all(kind != "status" for _, kind in axis.snapshot()["sent"].values())


def test_what_the_bus_parks_after_intake_is_not_the_senders_to_fix(
    lienthong_bus, axis, samples, tmp_path
):
    """A document no route takes is this agency's problem: no 02 goes out."""
    agencies_ = {
        "axis": {
            "adapter": "axis",
            "url": axis.url,
            "system_id": samples.system_of[samples.B],
            "secret": samples.systems[samples.system_of[samples.B]],
            "organ_id": samples.B,
            "sandbox": True,
        },
        "dms-in": {"adapter": "folder", "path": "b/dms-in", "direction": "out"},
    }
    b = lienthong_bus(
        endpoints=agencies_,
        routes=[{"name": "statuses", "from": "axis", "kind": "edxml.status", "to": ["dms-in"]}],
    )
    axis.deliver(samples.A, [samples.B], samples.document(samples.A, [samples.B]))
    assert b.run(once=True).received == 1
    [dead] = b.store.dead_letters()
    assert "no route matches" in dead["reason"]
    assert all(kind != "status" for _, kind in axis.snapshot()["sent"].values())


# --- recall: 13, then 15 or 16 ------------------------------------------------------


def test_a_recall_is_agreed_by_one_recipient_and_refused_by_another(
    agencies, axis, samples, tmp_path
):
    a, b, c = agencies("a"), agencies("b"), agencies("c")
    body = samples.document(samples.A, [samples.B, samples.C], number="400")
    document_id = samples.document_id_of(body)
    send(tmp_path, a, "a", "document.xml", body)
    for bus in (b, c):
        bus.run(once=True)

    # A's DMS asks every recipient to recall it: the axis takes the 13 to B and C.
    send(tmp_path, a, "a", "recall.xml", status("13", samples.A, samples.A, document_id, "Thu hồi"))
    for bus, name in ((b, "b"), (c, "c")):
        got = bus.run(once=True)
        assert (got.received, got.delivered, got.dead) == (1, 1, 0)
        [request] = inbox(tmp_path, name, "status-13")
        asked = edxml.read(request.read_bytes())
        assert isinstance(asked, edxml.Status) and asked.document_id == document_id

    # B agrees (15), C refuses (16); A's bus takes both back to A's DMS.
    send(tmp_path, b, "b", "agree.xml", status("15", samples.B, samples.A, document_id))
    send(tmp_path, c, "c", "refuse.xml", status("16", samples.C, samples.A, document_id))
    got = a.run(once=True)
    assert (got.received, got.delivered, got.dead) == (2, 2, 0)
    assert len(inbox(tmp_path, "a", "status-15")) == len(inbox(tmp_path, "a", "status-16")) == 1

    data = json.loads(edxml_command(a, "a", "history", document_id, "--json").output)
    assert {party: [s["code"] for s in steps] for party, steps in data["life"].items()} == {
        samples.B: ["15"],
        samples.C: ["16"],
        samples.A: ["13"],
    }
    text = edxml_command(a, "a", "history", document_id).output
    assert "status 15" in text and "agrees to the update/recall request" in text
    assert "status 16" in text and "refuses the update/recall request" in text
    # B's side: the request it got and its answer.
    b_data = json.loads(edxml_command(b, "b", "history", document_id, "--json").output)
    assert [
        (e["status_code"], e["sender"]) for e in b_data["events"] if e["event"] == "status"
    ] == [
        ("13", samples.A),
        ("15", samples.B),
    ]


# --- the whole life, and overdue ------------------------------------------------------


def test_each_recipients_life_and_the_documents_overdue(agencies, axis, samples, tmp_path):
    a, b, c = agencies("a"), agencies("b"), agencies("c")
    first = samples.document(samples.A, [samples.B, samples.C], number="500")
    second = samples.document(samples.A, [samples.B], number="501")
    first_id, second_id = samples.document_id_of(first), samples.document_id_of(second)
    send(tmp_path, a, "a", "first.xml", first)
    send(tmp_path, a, "a", "second.xml", second)
    b.run(once=True)
    c.run(once=True)
    for code in ("01", "03", "04", "05", "06"):
        send(tmp_path, b, "b", f"first-{code}.xml", status(code, samples.B, samples.A, first_id))
    for code in ("01", "03"):
        send(tmp_path, c, "c", f"first-{code}.xml", status(code, samples.C, samples.A, first_id))
    send(tmp_path, b, "b", "second-06.xml", status("06", samples.B, samples.A, second_id))
    a.run(once=True)

    data = json.loads(edxml_command(a, "a", "history", first_id, "--json").output)
    life = {party: [s["code"] for s in steps] for party, steps in data["life"].items()}
    assert life == {samples.B: ["01", "03", "04", "05", "06"], samples.C: ["01", "03"]}
    times = [s["at"] for s in data["life"][samples.B]]
    assert times == sorted(times)
    text = edxml_command(a, "a", "history", first_id).output
    assert "life:" in text
    assert f"  {samples.C:<15} 01 " in text and " -> 03 " in text

    # Only the first document lacks a 06, from C only; nothing is overdue a day ahead.
    [late] = overdue(a.store.engine, 0)
    assert (late.document_id, late.direction, late.waiting) == (first_id, "out", {samples.C: "03"})
    assert overdue(a.store.engine, 1) == []
    listed = json.loads(edxml_command(a, "a", "overdue", "--days", "0", "--json").output)
    assert [(o["document_id"], o["waiting"]) for o in listed] == [
        (
            first_id,
            [
                {
                    "party": samples.C,
                    "last_status": "03",
                    "meaning": listed[0]["waiting"][0]["meaning"],
                }
            ],
        )
    ]
    text = edxml_command(a, "a", "overdue", "--days", "0").output
    assert text.startswith("1 document(s) without a status 06 after 0 day(s)")
    assert f"{samples.C}: last status 03 (accepted" in text
    # On the receiving side: B finished both, C neither (it sent 01 and 03 only); a
    # second copy of the document (the real axis does not deduplicate) is one entry.
    axis.deliver(samples.A, [samples.C], first)
    assert c.run(once=True).received == 1
    assert overdue(b.store.engine, 0) == []
    [c_late] = overdue(c.store.engine, 0)
    assert (c_late.document_id, c_late.direction, c_late.waiting) == (
        first_id,
        "in",
        {samples.C: "03"},
    )
    later = datetime.now(UTC) + timedelta(days=3)
    assert [o.document_id for o in overdue(a.store.engine, 2, later)] == [first_id]

    # 'lienthong trace' of the document shows each status of its life, with who sent it.
    [document] = [
        m
        for m in a.store.messages_by_correlation(correlation_id(first_id))
        if m["source"] == "dms-out"
    ]
    config = a.config.base_dir / "a.yaml"
    traced = CliRunner().invoke(
        cli_module.build(), ["--config", str(config), "trace", document["id"]]
    )
    assert traced.exit_code == 0, traced.output
    assert f": document from {samples.A}" in traced.output.splitlines()[0]
    related = [ln for ln in traced.output.splitlines() if ln.startswith("  related")]
    labels = [ln.split(": ", 1)[1] for ln in related]
    assert labels == [
        f"status {code} ({meaning}) from {sender}"
        for code, meaning, sender in [
            ("01", "arrived", samples.B),
            ("03", "accepted and entered in the incoming register", samples.B),
            ("04", "assigned for handling by leadership", samples.B),
            ("05", "being processed", samples.B),
            ("06", "processing completed", samples.B),
            ("01", "arrived", samples.C),
            ("03", "accepted and entered in the incoming register", samples.C),
        ]
    ]


def test_a_plugin_describes_what_it_knows_and_leaves_the_rest(lienthong_host):
    """``lienthong_describe_message``: the first label wins; ``None`` passes to the next."""
    from lienthong.hookspecs import hookimpl

    class Plugin:
        @hookimpl
        def lienthong_describe_message(self, kind, headers):
            return "a custom record" if kind == "custom" else None

    lienthong_host.add(Plugin(), "test-describe")
    lienthong_host.refresh()
    assert lienthong_host.describe_message(kind="custom", headers={}) == "a custom record"
    status = {"edxml_kind": "status", "edxml_status": "13", "edxml_from": "000.00.00.H15"}
    assert lienthong_host.describe_message(kind="edxml.status", headers=status) == (
        "status 13 (the sender asks to recall the document, with a reason) from 000.00.00.H15"
    )
    assert lienthong_host.describe_message(kind="xml", headers={}) == ""


# --- the refusal's words (pure logic) ---------------------------------------------------


def test_each_kind_of_problem_has_its_reason_in_vietnamese():
    from lienthong.plugins.document_axis import refusal

    problems = [
        "signature missing: a 'Quyết định' requires ...",
        "signature invalid: the message was changed ...",
        "signature untrusted: no valid chain ...",
        "signature not bound: signer ...",
        "sender mismatch: the document's From ...",
        "recipient unknown: the document is addressed to ...",
        "line 3: /edXML/edXMLEnvelope: schema: ...",
    ]
    assert refusal.reasons(problems) == [text for _, text in refusal.REASONS] + [
        refusal.INVALID_REASON
    ]
    assert refusal.reasons(["line 1: /: not well-formed XML"]) == [refusal.INVALID_REASON]
    long = refusal.description(["x" * 1000])
    assert long.endswith("...") and len(long) < 600
