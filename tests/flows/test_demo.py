"""The main job on the embedded default: its summary matches what the sandboxes hold.

The demo runs the shipped reference flows (a copy on free ports) against real
sandboxes: the axis over HTTP with HMAC headers, SOAP accounting services, a
real slapd and an SMTP server. Each check reads a sandbox's own state and
compares it with what the demo printed.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ldap
import pytest
import yaml
from click.testing import CliRunner

from lienthong import cli as cli_module
from lienthong.message import Message
from lienthong.plugins.demo.flows import (
    MARKER,
    NGHEAN,
    SGD,
    STC,
    SYT,
    UBND,
    Demo,
    DemoError,
    Summary,
)
from lienthong.plugins.demo.plugin import demo
from lienthong.plugins.email_directory import mail
from lienthong.plugins.email_directory.slapd import find_binary
from tests.flows.flowconfig import REPO, write_config

pytestmark = pytest.mark.skipif(
    not find_binary("slapd"),
    reason="slapd not found: apt-get install slapd ldap-utils (.ci/run installs it)",
)


def _ldap(demo_run: Demo, base: str) -> dict[str, dict[str, list[str]]]:
    server = demo_run.sandboxes.slapd
    conn = ldap.initialize(server.url)
    conn.simple_bind_s(server.rootdn, server.password)
    try:
        found = conn.search_s(base, ldap.SCOPE_ONELEVEL, "(objectClass=*)")
    finally:
        conn.unbind_s()
    return {dn: {k: [v.decode() for v in vs] for k, vs in attrs.items()} for dn, attrs in found}


@pytest.fixture(scope="module")
def one_cycle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Summary, dict[str, Any]]]:
    """The demo's summary after one cycle, and the sandboxes' state read back."""
    config = write_config(tmp_path_factory.mktemp("demo"))
    lines: list[str] = []
    with Demo(config, echo=lines.append) as run:
        run.cycle()
        summary = run.summary()
        state = {
            "axis": run.sandboxes.axis.snapshot(),
            "reports_sent": [
                d.content
                for d in run.sandboxes.axis.docs.values()
                if STC in d.recipients and d.message_type == "edoc"
            ],
            "pki": run.pki,
            "estimates": {n: s.estimates() for n, s in run.sandboxes.accounting.items()},
            "vouchers": {n: s.vouchers() for n, s in run.sandboxes.accounting.items()},
            "agencies": _ldap(run, "ou=agencies,dc=daklak,dc=gov,dc=vn"),
            "people": _ldap(run, "ou=syt,ou=people,dc=daklak,dc=gov,dc=vn"),
            "mails": list(run.sandboxes.mail.mails),
            "envelopes": list(run.sandboxes.mail.envelopes),
            "lines": lines,
            "text": "\n".join(summary.lines()),
            "var": run.var_dir,
            "statuses": _statuses_on_axis(run),
            "refusals": [
                d.content
                for d in run.sandboxes.axis.docs.values()
                if d.message_type == "status" and b"<edXML:StatusCode>02<" in d.content
            ],
            "onestop": _onestop_state(run),
        }
    yield summary, state


def _onestop_state(run: Demo) -> dict[str, Any]:
    """What the one-stop system and the portal hold, and the letters of ours to UBND tỉnh."""
    onestop, portal = run.sandboxes.onestop, run.sandboxes.portal
    return {
        "dossiers": {n: dict(d) for n, d in onestop.dossiers.items()},
        "steps": [dict(s) for s in onestop.steps],
        "portal": {n: dict(d) for n, d in portal.dossiers.items()},
        "progress": {n: [dict(p) for p in ps] for n, ps in portal.progress.items()},
        "portal_stats": portal.stats(),
        "letters": [
            d
            for d in run.sandboxes.axis.docs.values()
            if d.message_type == "edoc" and d.recipients == [UBND]
        ],
    }


def _statuses_on_axis(run: Demo) -> list[tuple[str, str, str, str]]:
    """Every status the sandbox axis carried: (sender, code, document answered, description)."""
    from lienthong.plugins.document_axis import edxml

    found = []
    for doc in run.sandboxes.axis.docs.values():
        if doc.message_type == "status":
            status = edxml.read(doc.content)
            assert isinstance(status, edxml.Status)
            found.append(
                (
                    doc.sender,
                    status.status_code or "",
                    status.document_id or "",
                    status.description or "",
                )
            )
    return found


@pytest.fixture(scope="module")
def three_cycles(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Summary, list[tuple[str, str, str, str]], Demo]]:
    """Three cycles: a recall (13) in the second, the revocation in the third."""
    config = write_config(tmp_path_factory.mktemp("demo3"))
    with Demo(config, echo=lambda _: None) as run:
        for _ in range(3):
            run.cycle()
        yield run.summary(), _statuses_on_axis(run), run


def test_documents_and_their_status_01_match_the_axis(one_cycle) -> None:
    summary, state = one_cycle
    axis = state["axis"]
    ours = {SYT: "syt", SGD: "sgd"}
    edocs = {
        organ: [i for i in axis["inbox"].get(organ, []) if i["messageType"] == "edoc"]
        for organ in ours
    }
    # Every document the axis holds for our agencies was taken: done, or fail when parked.
    assert sorted((d.agency, bool(d.deliveries)) for d in summary.documents) == sorted(
        (organ, item["status"] == "done") for organ, items in edocs.items() for item in items
    )
    assert len(summary.documents) == 6
    delivered = [d for d in summary.documents if d.deliveries]
    assert all(set(d.deliveries.values()) == {"delivered"} for d in delivered)
    # Each good document answered with one status 01 to its sender, on the axis, the
    # unsigned one with a 02; the clerks then accepted (03) and assigned (04) each.
    codes = Counter(code for sender, code, _, _ in state["statuses"] if sender in ours)
    assert summary.statuses_sent == codes["01"] == 5
    assert summary.statuses_out == dict(codes) == {"01": 5, "02": 1, "03": 5, "04": 5}
    # Budget decisions went on to the agency's accounting package, the others did not.
    budget = [d for d in delivered if "dự toán" in d.subject]
    assert len(budget) == 2
    assert all(any(k.startswith("estimate") for k in d.deliveries) for d in budget)
    assert not any(
        k.startswith("estimate") for d in delivered if d not in budget for k in d.deliveries
    )


def test_estimates_posted_are_the_ones_the_accounting_packages_hold(one_cycle) -> None:
    summary, state = one_cycle
    estimates = state["estimates"]
    assert {e: s for e, s in summary.estimates} == {
        "acct-syt": "delivered",
        "acct-sgd": "delivered",
    }
    [syt] = estimates["acct-syt"]
    [sgd] = estimates["acct-sgd"]
    assert (syt["agencyCode"], syt["amount"], syt["chapter"], syt["fiscalYear"]) == (
        SYT,
        "1250000000",
        "423",
        "2026",
    )
    assert (sgd["agencyCode"], sgd["amount"], sgd["chapter"]) == (SGD, "2500000000", "422")
    assert syt["decisionNumber"] == "215/QĐ-UBND"
    assert syt["externalReference"]  # the delivery key: posted once


def test_reports_cover_every_voucher_and_reach_the_finance_department(one_cycle) -> None:
    summary, state = one_cycle
    read = {r.agency: r.vouchers for r in summary.reports}
    assert (
        read
        == {name: len(v) for name, v in state["vouchers"].items()}
        == {
            "acct-syt": 2,
            "acct-sgd": 1,
        }
    )
    finance_inbox = state["axis"]["inbox"][STC]
    assert len(finance_inbox) == len(summary.reports) == 2
    assert {i["from"] for i in finance_inbox} == {SYT, SGD}
    assert {i["status"] for i in finance_inbox} == {"done"}
    from lienthong.plugins.document_axis.signature import verify
    from lienthong.plugins.document_axis.trust import Trust

    for body in state["reports_sent"]:  # signed by the sending endpoint, verifiably
        info = verify(body, trust=Trust([state["pki"].ca.root.certificate]))
        assert info.subject in {
            "CN=Văn thư điện tử,O=Sở Y tế,L=Đắk Lắk,C=VN",
            "CN=Văn thư điện tử,O=Sở Giáo dục và Đào tạo,L=Đắk Lắk,C=VN",
        }
    for report in summary.reports:
        assert report.state == "delivered"
        assert sorted(report.statuses) == [f"01 from {STC}", f"03 from {STC}"]
    # The statuses came back to each agency over the axis and were taken.
    for organ in (SYT, SGD):
        answers = [
            i
            for i in state["axis"]["inbox"][organ]
            if i["messageType"] == "status" and i["from"] == STC
        ]
        assert len(answers) == 2 and {i["status"] for i in answers} == {"done"}


def test_directory_holds_what_the_syncs_report(one_cycle) -> None:
    summary, state = one_cycle
    agencies = state["agencies"]
    assert len(agencies) == summary.syncs["agencies-from-axis"]["create"] == 6
    mailboxes = {a["businessCategory"][0]: a["mail"][0] for a in agencies.values()}
    assert mailboxes[SYT] == "syt@daklak.gov.vn"
    assert mailboxes[NGHEAN] == "ubnd@nghean.gov.vn"  # the correspondent province
    people = {a["uid"][0]: a for a in state["people"].values()}
    counts = summary.syncs["staff-syt"]
    assert (counts["create"], counts["update"], counts["disable"]) == (2, 1, 1)
    assert {"lthoa", "pvduc"} <= set(people)  # created
    assert people["ttb"]["title"] == ["Trưởng phòng Kế hoạch - Tài chính"]  # updated
    assert people["dtminh"]["employeeType"] == ["disabled"]  # left: not in the staff list
    assert people["nva"]["employeeType"] == ["active"]


def test_mails_went_to_the_agency_mailboxes_with_the_attachments(one_cycle) -> None:
    summary, state = one_cycle
    assert len(summary.mails) == len(state["mails"]) == 6  # and a citizen's result (flow 4)
    agency = [
        (m, rcpts)
        for m, (_, rcpts) in zip(state["mails"], state["envelopes"], strict=True)
        if all(r.endswith("@daklak.gov.vn") for r in rcpts)
    ]
    mails = [m for m, _ in agency]
    recipients = sorted(r for _, rcpts in agency for r in rcpts)
    assert recipients == sorted(["syt@daklak.gov.vn"] * 4 + ["sgddt@daklak.gov.vn"])
    assert sorted(to for to, _, _ in summary.mails if to[0].endswith("@daklak.gov.vn")) == sorted(
        [r] for r in recipients
    )
    for message in mails:
        [attachment] = list(message.iter_attachments())
        # A PDF travels raw on the axis, as the vendor's library writes it, and is mailed so.
        assert attachment.get_filename().endswith(".pdf")
        assert attachment.get_content()[:5] == b"%PDF-"
        assert message["Subject"].startswith("Văn bản đến ")
    assert len({m["Message-ID"] for m in state["mails"]}) == 6
    assert len(list((state["var"] / "mailbox").glob("*.eml"))) == 6


def test_dead_letters_are_the_unsigned_document_only(one_cycle) -> None:
    summary, state = one_cycle
    [dead] = summary.dead_letters
    assert dead["source"] == "axis-sgd" and dead["stage"] == "accept"
    assert "signature missing" in dead["reason"] and "Hint:" in dead["reason"]
    # Polls that found no new voucher make no message: nothing parked for them.
    assert "acct-" not in state["text"].split("== dead letters")[1]
    assert "#" in state["text"] and "signature missing" in state["text"]


# --- the command -----------------------------------------------------------------


def _group():
    group = cli_module.build()
    group.add_command(demo)
    return group


def test_the_command_runs_once_and_prints_what_moved(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    result = CliRunner().invoke(_group(), ["--config", str(config), "demo", "--once"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "-- cycle 1" in out and "-- cycle 2" not in out
    assert "== documents received from the axis: 6" in out
    assert "== budget estimates posted: 2" in out
    assert "== vouchers read: 3, in 2 report(s)" in out
    assert "== sync staff-syt: created 2, updated 1, disabled 1" in out
    assert "== mails sent: 6" in out
    assert "== one-stop dossiers synced to the portal: 3 (4 of 4 version(s) delivered), " in out
    assert "progress steps: 10 of 10 delivered" in out
    assert "== opinions asked through the axis: 1; answers posted back" in out
    assert "== results mailed to citizens: 1" in out
    assert "== statuses our agencies sent: 16 (01 ×5, 02 ×1, 03 ×5, 04 ×5)" in out
    assert "== dead letters: 1" in out
    assert (tmp_path / "var" / MARKER).exists()
    # A second run starts afresh: same figures, not doubled.
    again = CliRunner().invoke(_group(), ["--config", str(config), "demo", "--once"])
    assert again.exit_code == 0, again.output
    assert "== mails sent: 6" in again.output and "== dead letters: 1" in again.output


def test_a_taken_port_is_refused_naming_it(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    port = int(yaml.safe_load(config.read_text())["endpoints"]["axis-syt"]["url"].rsplit(":", 1)[1])
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen()
        result = CliRunner().invoke(_group(), ["--config", str(config), "demo", "--once"])
    assert result.exit_code == 3
    assert f"port {port} on 127.0.0.1 (endpoints.axis-syt.url) is in use" in result.output
    assert "Hint:" in result.output


def test_a_var_folder_the_demo_did_not_make_is_never_wiped(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    precious = tmp_path / "var" / "lienthong.db"
    precious.parent.mkdir()
    precious.write_bytes(b"production data")
    with pytest.raises(DemoError, match="was not made by a demo"), Demo(config, echo=print):
        pass
    assert precious.read_bytes() == b"production data"


def test_the_demo_refuses_a_production_config(tmp_path: Path) -> None:
    config = write_config(tmp_path, broker="amqp://guest:guest@127.0.0.1:5672//")
    result = CliRunner().invoke(_group(), ["--config", str(config), "demo", "--once"])
    assert result.exit_code == 4
    assert "runs on the embedded default" in result.output


def test_loopback_only(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    config.write_text(config.read_text().replace("127.0.0.1", "10.1.2.3", 1))
    with pytest.raises(DemoError, match="not a loopback URL"):
        Demo(config, echo=lambda _: None)


# --- the mail envelope's own recipients (pure logic) ---------------------------


def test_an_envelope_names_its_recipients_over_the_source_headers() -> None:
    body = (
        b'<mail xmlns="urn:lienthong:mail"><to_agency> 000.00.15.H15 </to_agency>'
        b"<to>a@daklak.gov.vn</to><subject>x</subject></mail>"
    )
    message = Message(body=body, headers={"to": "000.00.15.H15,000.00.16.H15"})
    assert mail.envelope_recipients(message) == (["000.00.15.H15"], ["a@daklak.gov.vn"])
    bare = Message(body=b'<mail xmlns="urn:lienthong:mail"><subject>x</subject></mail>')
    assert mail.envelope_recipients(bare) is None
    assert mail.envelope_recipients(Message(body=b"<report/>")) is None


def test_without_once_the_bus_keeps_running_until_ctrl_c_and_stops_cleanly(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path)
    program = (
        "import sys; from lienthong import cli; from lienthong.plugins.demo.plugin import demo; "
        "group = cli.build(); group.add_command(demo); group(sys.argv[1:])"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", program, "--config", str(config), "demo"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + 60
    for line in process.stdout:
        seen.append(line)
        if "press Ctrl-C to stop" in line or time.monotonic() > deadline:
            break
    assert "-- cycle 3" in "".join(seen), "".join(seen)
    process.send_signal(signal.SIGINT)
    rest, _ = process.communicate(timeout=30)
    assert process.returncode == 0, "".join(seen) + rest
    assert "stopped: the batch in hand was finished" in rest
    # The summary once more, after the stop: 7 to agencies, 2 results to citizens.
    assert "== mails sent: 9" in rest
    # Every sandbox went with it: the ports are free again.
    axis_url = yaml.safe_load(config.read_text())["endpoints"]["axis-syt"]["url"]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", int(axis_url.rsplit(":", 1)[1])))


# --- the status traffic: refusals, the whole life, a recall, a revocation -----------


def test_the_unsigned_document_brings_its_sender_a_02_with_the_reason(one_cycle) -> None:
    summary, state = one_cycle
    [(sender, code, document, reason)] = [s for s in state["statuses"] if s[1] == "02"]
    assert sender == SGD and "1187/UBND-VX" in document
    assert reason.startswith("Từ chối tiếp nhận văn bản điện tử: văn bản chưa được ký số")
    [(refused, to, said)] = summary.refusals
    assert (refused, to, said) == (document, UBND, reason)
    # Signed with the refusing endpoint's own key, as everything it sends.
    from lienthong.plugins.document_axis.signature import verify
    from lienthong.plugins.document_axis.trust import Trust

    [body] = state["refusals"]
    info = verify(body, trust=Trust([state["pki"].ca.root.certificate]))
    assert info.subject == "CN=Văn thư điện tử,O=Sở Giáo dục và Đào tạo,L=Đắk Lắk,C=VN"
    assert f"  02 to {UBND} for {document}: Từ chối tiếp nhận" in state["text"]


def test_the_summary_prints_the_status_traffic_the_axis_carried(three_cycles) -> None:
    summary, statuses, _ = three_cycles
    ours = {SYT, SGD}
    sent = Counter(code for sender, code, _, _ in statuses if sender in ours)
    assert summary.statuses_out == dict(sent)
    assert set(sent) == {"01", "02", "03", "04", "05", "06", "15"}
    # Finance answered our reports with the whole life; UBND tỉnh asked a recall.
    received = Counter((code, sender) for code, sender, _ in summary.statuses_in)
    on_axis = Counter((code, sender) for sender, code, _, _ in statuses if sender not in ours)
    assert received == on_axis
    assert {code for code, sender in received if sender == STC} == {"01", "03", "04", "05", "06"}
    text = "\n".join(summary.lines())
    total = sum(sent.values())
    assert f"== statuses our agencies sent: {total} (" in text
    assert "15 ×1" in text and "06 ×" in text
    assert f"  13 from {UBND}: {UBND}," in text


def test_the_recall_is_agreed_and_the_revocation_reaches_the_dms(three_cycles) -> None:
    summary, statuses, run = three_cycles
    [(_, _, recalled, _)] = [s for s in statuses if s[1] == "13"]
    assert "1201/UBND-VX" in recalled
    [(agreed_by, _, answered, _)] = [s for s in statuses if s[1] == "15"]
    assert (agreed_by, answered) == (SYT, recalled)
    [(business, revocation, concerns)] = summary.business
    assert business == "revoke" and "1205/UBND-VX" in revocation and concerns == recalled
    dms = run.var_dir / "dms" / "syt"
    [revoke_file] = list(dms.glob("revoke-*.xml"))
    assert b"1201/UBND-VX" in revoke_file.read_bytes()
    assert len(list(dms.glob("status-13-*.xml"))) == 1
    assert f"  revoke {revocation}: of {recalled}" in "\n".join(summary.lines())


# --- the fourth flow: one-stop dossiers, the portal, an opinion through the axis -----


def _portal_codes(run_config: Path) -> dict[str, str]:
    """The route's status map, as the config gives it (the portal's codes are config)."""
    routes = yaml.safe_load(run_config.read_text(encoding="utf-8"))["routes"]
    [route] = [r for r in routes if r["name"] == "dossiers-to-portal"]
    return dict(pair.split("=") for pair in route["to"][0]["params"]["status_map"].split())


def test_every_dossier_and_step_reached_the_portal_in_order(one_cycle) -> None:
    summary, state = one_cycle
    onestop = state["onestop"]
    codes = _portal_codes(REPO / "config/reference-flows.yaml")
    # Each dossier the one-stop system holds is at the portal, at the status it has now.
    assert set(onestop["portal"]) == set(onestop["dossiers"]) == set(summary.dossiers)
    assert len(onestop["dossiers"]) == 3
    for number, dossier in onestop["dossiers"].items():
        at_portal = onestop["portal"][number]
        assert at_portal["TrangThaiHoSo"] == codes[dossier["dossierStatus"]], number
        assert summary.dossiers[number].status == dossier["dossierStatus"]
        # Every step, once, in the order the one-stop system recorded them.
        steps = [s["actionNote"] for s in onestop["steps"] if s["dossierNo"] == number]
        assert [p["NoiDungXuLy"] for p in onestop["progress"][number]] == steps
        line = summary.dossiers[number]
        assert line.steps == line.steps_delivered == len(steps)
        assert line.versions == line.versions_delivered >= 1
    assert onestop["portal_stats"]["steps"] == len(onestop["steps"]) == 10
    assert onestop["portal_stats"]["step_repeats"] == 0
    text = state["text"]
    assert "== one-stop dossiers synced to the portal: 3 (" in text
    assert f"progress steps: {len(onestop['steps'])} of {len(onestop['steps'])} delivered" in text


def test_the_opinion_went_as_a_letter_and_its_06_moved_the_dossier_on(one_cycle) -> None:
    summary, state = one_cycle
    onestop = state["onestop"]
    from lienthong.plugins.document_axis import edxml
    from lienthong.plugins.document_axis.signature import verify
    from lienthong.plugins.document_axis.trust import Trust

    # One letter from Sở Giáo dục và Đào tạo to UBND tỉnh, signed, taken by UBND tỉnh.
    [stored] = onestop["letters"]
    assert stored.sender == SGD and stored.status == {UBND: "done"}
    info = verify(stored.content, trust=Trust([state["pki"].ca.root.certificate]))
    assert info.subject == "CN=Văn thư điện tử,O=Sở Giáo dục và Đào tạo,L=Đắk Lắk,C=VN"
    letter = edxml.read(stored.content)
    assert isinstance(letter, edxml.Document)
    [(number, to, document, sent)] = summary.letters
    assert (to, document, sent) == (UBND, letter.document_id, "delivered")
    dossier = onestop["dossiers"][number]
    assert dossier["govAgencyCode"] == SGD and number in (letter.subject or "")
    # UBND tỉnh answered it with 06 on the axis; the answer became the dossier's next step.
    answers = [s for s in state["statuses"] if s[0] == UBND and s[2] == letter.document_id]
    assert sorted(code for _, code, _, _ in answers) == ["01", "06"]
    [(answered, sender, code, posted)] = summary.opinions
    assert (answered, sender, code, posted) == (number, UBND, "06", "delivered")
    steps = [s for s in onestop["steps"] if s["dossierNo"] == number]
    assert [s["stepStatus"] for s in steps] == [
        "received",
        "processing",
        "interoperating",
        "processing",
    ]
    assert "UBND tỉnh Đắk Lắk (000.00.00.H15, trạng thái 06)" in steps[-1]["actionNote"]
    assert dossier["dossierStatus"] == "processing"
    assert onestop["progress"][number][-1]["NoiDungXuLy"] == steps[-1]["actionNote"]


def test_the_citizens_result_was_mailed_to_the_address_of_the_dossier(one_cycle) -> None:
    summary, state = one_cycle
    onestop = state["onestop"]
    done = [d for d in onestop["dossiers"].values() if d["dossierStatus"] == "done"]
    assert len(done) == 1
    [dossier] = done
    mailed = [
        (m, rcpts)
        for m, (_, rcpts) in zip(state["mails"], state["envelopes"], strict=True)
        if m["Subject"].startswith("Kết quả giải quyết hồ sơ")
    ]
    [(mail, rcpts)] = mailed
    assert rcpts == [dossier["contactEmail"]]
    assert mail["Subject"] == f"Kết quả giải quyết hồ sơ {dossier['dossierNo']}"
    assert dossier["serviceName"] in mail.get_content()
    assert summary.results == [(dossier["dossierNo"], dossier["contactEmail"], "delivered")]
    assert "== results mailed to citizens: 1" in state["text"]


def test_once_the_opinion_is_in_the_dossier_is_finished_and_its_result_mailed(
    three_cycles,
) -> None:
    summary, _, run = three_cycles
    onestop, portal = run.sandboxes.onestop, run.sandboxes.portal
    [(number, *_)] = summary.letters  # asked once, not again in later cycles
    assert onestop.dossiers[number]["dossierStatus"] == "done"
    assert portal.dossiers[number]["TrangThaiHoSo"] == "10"
    assert [p["TrangThai"] for p in portal.progress[number]][-2:] == ["9", "10"]
    mailed = sorted(to for _, to, state in summary.results if state == "delivered")
    assert mailed == sorted(
        d["contactEmail"] for d in onestop.dossiers.values() if d["dossierStatus"] == "done"
    )
    assert len(mailed) == 2


def test_a_dossier_changed_again_gets_no_second_letter_nor_a_second_mail(
    tmp_path: Path,
) -> None:
    """The one-stop system changes the dossier while it waits for the opinion, and after it
    is done: each change is a new version, a new message, but once_per on the dossier number
    sends the letter and the result mail once; the portal still gets every version."""
    from sqlalchemy import select

    from lienthong.store import audit

    config = write_config(tmp_path)
    with Demo(config, echo=lambda _: None) as run:
        onestop, axis, mail = run.sandboxes.onestop, run.sandboxes.axis, run.sandboxes.mail

        def letters(number: str) -> list[Any]:
            """Those to UBND tỉnh numbered after the dossier (…-261202-0002 → 2612020002/…)."""
            notation = number.split("-", 1)[1].replace("-", "") + "/LYK-SGD"
            return [
                d
                for d in axis.docs.values()
                if d.message_type == "edoc" and d.recipients == [UBND] and d.notation == notation
            ]

        def results(number: str) -> list[Any]:
            return [m for m in mail.mails if m["Subject"] == f"Kết quả giải quyết hồ sơ {number}"]

        # The first cycle up to the letter: the dossier waits for UBND tỉnh's opinion.
        run.seed()
        run._run_jobs()
        run.drain()
        [number] = [n for n, d in onestop.dossiers.items() if d["dossierStatus"] == "interoperating"]
        assert len(letters(number)) == 1
        onestop.update_dossier(number, dossierNote="Bổ sung bản sao giấy phép xây dựng")
        run.drain()
        assert len(letters(number)) == 1
        # The opinion comes back and moves it on; the next cycle finishes it: one mail.
        assert run.opinions_answer() == 1
        run.drain()
        run.cycle()
        assert onestop.dossiers[number]["dossierStatus"] == "done"
        assert len(results(number)) == 1
        versions = run.summary().dossiers[number].versions
        onestop.update_dossier(number, contactTelNo="0987654321")  # corrected after done
        run.drain()
        assert len(results(number)) == 1 and len(letters(number)) == 1
        summary = run.summary()
        assert [line[0] for line in summary.letters].count(number) == 1
        email = onestop.dossiers[number]["contactEmail"]
        assert [r for r in summary.results if r[0] == number] == [(number, email, "delivered")]
        # The portal, a target without once_per, still gets every version.
        line = summary.dossiers[number]
        assert line.versions == line.versions_delivered == versions + 1
        with run.bus.store.engine.connect() as conn:
            skipped = conn.execute(
                select(audit.c.endpoint, audit.c.detail).where(audit.c.event == "skipped")
            ).all()
    assert sorted(endpoint for endpoint, _ in skipped) == ["axis-sgd", "directory"]
    assert all(f"once_per value '{number}' first" in detail for _, detail in skipped)
