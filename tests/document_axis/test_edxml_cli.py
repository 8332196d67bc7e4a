"""``lienthong edxml``: validate, show, sign and verify through click's runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from lienthong.plugins.document_axis.cli import edxml_group
from lienthong.plugins.document_axis.sandbox_ca import SandboxCA
from lienthong.plugins.document_axis.signature import sign, throwaway_key

DATA = Path(__file__).parent / "data" / "edxml"
WELL_FORMED = [
    "edoc_new.edxml",
    "edoc_update.edxml",
    "status_inbox_01.edxml",
    "status_acceptance_03.edxml",
    "status_finish_06.edxml",
]


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A throwaway RSA key and self-signed certificate, as PEM files and a PKCS#12."""
    folder = tmp_path_factory.mktemp("keys")
    material = throwaway_key("Văn thư thử nghiệm")
    key, cert = material.private_key, material.certificate
    paths = {"key": folder / "key.pem", "cert": folder / "cert.pem", "p12": folder / "k.p12"}
    paths["key"].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    paths["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths["p12"].write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"k", key, cert, None, serialization.BestAvailableEncryption(b"p12-pass")
        )
    )
    return paths


def run(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(edxml_group, list(args), env=env, catch_exceptions=False)


def test_validate_all_samples() -> None:
    result = run("validate", "--today", "2024-06-01", *[str(DATA / n) for n in WELL_FORMED])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""


def test_validate_reports_file_line_path_and_message(tmp_path: Path) -> None:
    bad = tmp_path / "bad.edxml"
    bad.write_bytes((DATA / "status_finish_06.edxml").read_bytes().replace(b">06<", b">42<"))
    result = run("validate", str(DATA / "status_inbox_01.edxml"), str(bad))
    assert result.exit_code == 1
    assert result.stdout == (
        f"{bad}:28: /edXML/edXMLEnvelope/edXMLHeader/MessageHeader/StatusCode: "
        "StatusCode '42' is not a known status; known: 01, 02, 03, 04, 05, 06, 13, 15, 16.\n"
    )


def test_validate_names_the_undeclared_prefix_of_the_signed_template() -> None:
    template = DATA / "edoc_signed_template.edxml"
    result = run("validate", str(template))
    assert result.exit_code == 1
    assert result.stdout.startswith(
        f"{template}:116: /: undeclared namespace prefix 'xlink' on attribute href of "
        "Reference (line 116, column 39). Hint: the sender must declare it (xmlns:xlink="
    )


def test_show_document_text() -> None:
    result = run("show", str(DATA / "edoc_update.edxml"))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "kind: document" in out
    assert "document id: 000.00.00.G22,2015/09/30,7816/VPCP-TTĐT" in out
    assert "sender: 000.00.00.G22" in out
    assert "recipients: 000.00.00.H41, 000.00.00.H14, 000.00.00.G17" in out
    assert "code: 7816/VPCP-TTĐT" in out
    assert "subject: V/v kết nối, liên thông phần mềm quản lý văn bản" in out
    assert "business: 2 (update)" in out
    assert "  concerns: 000.00.00.G22,2014/02/30,7806/VPCP-TTĐT" in out
    assert "  receiver: 000.00.00.H14 (type 1)" in out
    assert "steering type: 1" in out
    assert "to places: Cac bo va co quan ngang bo; Uy ban nhan dan cac tinh, TP" in out
    assert "priority: 0 (normal (thường))" in out
    assert "due date: 2018/09/28" in out
    assert "signer: TL. BO TRUONG, Cuc truong cuc ung dung cong nghe thong tin" in out
    assert "attachment: 1896_QD-TTg_m_294779.doc (application/zip," in out
    assert "trace: 000.00.00.G22 at 2018/09/28 00:00:00" in out


def test_show_status_json() -> None:
    result = run("show", "--json", str(DATA / "status_acceptance_03.edxml"))
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["kind"] == "status"
    assert info["status_code"] == "03"
    assert info["status_meaning"] == "accepted and entered in the incoming register"
    assert info["document_id"] == "000.00.00.G22,2015/09/30,7816/VPCP-TTĐT"
    assert info["response_for"]["organ_id"] == "000.00.00.G22"
    assert info["response_for"]["code"] == "7816/VPCP-TTĐT"
    assert info["staff"]["staff"] == "Nguyen thi ngoc tram"


def test_show_document_json_sizes() -> None:
    info = json.loads(run("show", "--json", str(DATA / "edoc_new.edxml")).stdout)
    assert info["attachments"] == [
        {"name": "1896_QD-TTg_m_294779.doc", "content_type": "application/zip", "size": 270823}
    ]


def test_show_refuses_what_is_not_edxml(tmp_path: Path) -> None:
    other = tmp_path / "other.xml"
    other.write_bytes(b"<invoice/>")
    result = CliRunner().invoke(edxml_group, ["show", str(other)])
    assert result.exit_code == 1
    assert "not an edXML message" in result.output


def test_sign_then_verify(tmp_path: Path, keys: dict[str, Path]) -> None:
    out = tmp_path / "signed.edxml"
    result = run(
        "sign",
        str(DATA / "edoc_new.edxml"),
        "--key",
        str(keys["key"]),
        "--cert",
        str(keys["cert"]),
        "-o",
        str(out),
    )
    assert result.exit_code == 0, result.output
    verified = run("verify", str(out))
    assert verified.exit_code == 0, verified.output
    assert "signature valid (rsa-sha256) by CN=Văn thư thử nghiệm; intact, but not" in (
        verified.stdout
    )
    refused = run("verify", str(out), "--trust", str(keys["cert"]))
    assert refused.exit_code == 1
    assert "trust anchor 'CN=Văn thư thử nghiệm' is not a CA certificate" in refused.output
    tampered = tmp_path / "tampered.edxml"
    tampered.write_bytes(out.read_bytes().replace("Hà Nội".encode(), b"Ha Noi"))
    refused = run("verify", str(tampered))
    assert refused.exit_code == 1
    assert "signature invalid: the message was changed" in refused.stdout


def test_verify_a_chain_with_its_crls(tmp_path: Path) -> None:
    ca = SandboxCA()
    clerk, revoked = ca.issue("CN=Văn thư,O=Sở Y tế,C=VN"), ca.issue("CN=Cũ,C=VN")
    ca.revoke(revoked.certificate)
    files = ca.write(tmp_path / "pki")
    for name, material in (("ok", clerk), ("revoked", revoked)):
        (tmp_path / f"{name}.edxml").write_bytes(
            sign((DATA / "status_finish_06.edxml").read_bytes(), material)
        )
    crls = ["--crl", str(files["root_crl"]), "--crl", str(files["intermediate_crl"])]
    ok = run("verify", str(tmp_path / "ok.edxml"), "--trust", str(files["root"]), *crls)
    assert ok.exit_code == 0, ok.output
    assert "by CN=Văn thư,O=Sở Y tế,C=VN; trusted through CN=SANDBOX Signing CA" in ok.stdout
    bad = run("verify", str(tmp_path / "revoked.edxml"), "--trust", str(files["root"]), *crls)
    assert bad.exit_code == 1 and "was revoked on" in bad.stdout
    no_crl = run(
        "verify",
        str(tmp_path / "ok.edxml"),
        "--trust",
        str(files["root"]),
        "--crl",
        str(files["root_crl"]),
    )
    assert no_crl.exit_code == 1 and "cannot check revocation under" in no_crl.stdout
    usage = CliRunner().invoke(edxml_group, ["verify", str(tmp_path / "ok.edxml"), *crls])
    assert usage.exit_code == 2 and "give its root with --trust" in usage.output


def test_sign_with_pkcs12_and_password_from_env(keys: dict[str, Path]) -> None:
    result = run(
        "sign",
        str(DATA / "status_inbox_01.edxml"),
        "--key",
        str(keys["p12"]),
        "--password-env",
        "AXIS_KEY_PASSWORD",
        "--algorithm",
        "rsa-sha1",
        env={"AXIS_KEY_PASSWORD": "p12-pass"},
    )
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    assert b"xmldsig#rsa-sha1" in result.stdout_bytes


def test_sign_errors_are_clear(keys: dict[str, Path]) -> None:
    missing_env = CliRunner().invoke(
        edxml_group,
        [
            "sign",
            str(DATA / "status_inbox_01.edxml"),
            "--key",
            str(keys["p12"]),
            "--password-env",
            "NOT_SET_ANYWHERE",
        ],
        env={"NOT_SET_ANYWHERE": None},
    )
    assert missing_env.exit_code == 1
    assert "NOT_SET_ANYWHERE is not set" in missing_env.output
    no_password = CliRunner().invoke(
        edxml_group, ["sign", str(DATA / "status_inbox_01.edxml"), "--key", str(keys["p12"])]
    )
    assert no_password.exit_code == 1
    assert "cannot be loaded" in no_password.output


def test_verify_unsigned_and_placeholder() -> None:
    unsigned = run("verify", str(DATA / "status_inbox_01.edxml"))
    assert unsigned.exit_code == 1
    assert "signature missing" in unsigned.stdout
    placeholder = run("verify", str(DATA / "edoc_new.edxml"))
    assert placeholder.exit_code == 1
    assert "not an XMLDSig signature" in placeholder.stdout


def test_validate_runs_the_intakes_attachment_checks(tmp_path: Path) -> None:
    # A document whose attachment would be saved at ../../../etc/cron.d/x by a receiver.
    data = (DATA / "edoc_new.edxml").read_bytes()
    start = data.index(b"<AttachmentName>") + len(b"<AttachmentName>")
    end = data.index(b"</AttachmentName>", start)
    hostile = tmp_path / "hostile.edxml"
    hostile.write_bytes(data[:start] + b"<!---->../../../etc/cron.d/x" + data[end:])
    result = run("validate", "--today", "2024-06-01", str(hostile))
    assert result.exit_code == 1, result.output
    assert "attachment name '../../../etc/cron.d/x' is an absolute path or climbs out" in (
        result.stdout
    )


def test_validate_lowers_the_attachment_limit_on_request(tmp_path: Path) -> None:
    sample = DATA / "edoc_new.edxml"
    result = run("validate", "--today", "2024-06-01", "--max-attachment-bytes", "1000", str(sample))
    assert result.exit_code == 1
    assert "over max_attachment_bytes 1,000" in result.stdout


def test_validate_prints_warnings_and_still_passes(tmp_path: Path) -> None:
    data = (DATA / "edoc_new.edxml").read_bytes()
    start = data.index(b"<edXML:TraceHeader>")
    first_organ = data.index(b"<edXML:OrganId>", start)
    end = data.index(b"</edXML:OrganId>", first_organ) + len(b"</edXML:OrganId>")
    traced = tmp_path / "no-organ.edxml"
    traced.write_bytes(data[:first_organ] + data[end:])
    result = run("validate", "--today", "2024-06-01", str(traced))
    assert result.exit_code == 0, result.output
    assert (
        ": warning: /edXML/edXMLEnvelope/edXMLHeader/TraceHeaderList/TraceHeader" in result.stdout
    )
    assert "TraceHeader names no agency (OrganId 'missing')" in result.stdout


# --- every business type and every status code, reference and hand-written samples ------

HAND = DATA / "hand"


@pytest.mark.parametrize(
    ("path", "business", "concerns"),
    [
        (DATA / "edoc_new.edxml", "0 (new)", None),
        (HAND / "revoke_1.edxml", "1 (revoke)", "000.00.00.H15,2026/03/02,215/QĐ-UBND"),
        (DATA / "edoc_update.edxml", "2 (update)", "000.00.00.G22,2014/02/30,7806/VPCP-TTĐT"),
        (HAND / "replace_3.edxml", "3 (replace)", "000.00.00.H15,2026/03/02,215/QĐ-UBND"),
    ],
    ids=["new", "revoke", "update", "replace"],
)
def test_show_says_what_a_document_does_and_which_it_concerns(path, business, concerns) -> None:
    text = run("show", str(path))
    assert text.exit_code == 0, text.output
    assert f"business: {business}" in text.stdout
    info = json.loads(run("show", "--json", str(path)).stdout)
    assert info["business_type"] == business
    if concerns is None:
        assert "  concerns:" not in text.stdout
    else:
        assert f"  concerns: {concerns}" in text.stdout
        assert info["business"]["document_id"] == concerns


def test_show_a_replacement_lists_what_it_replaces_and_whom_to_tell() -> None:
    out = run("show", str(HAND / "replace_3.edxml")).stdout
    assert (
        "  replaces: 000.00.00.H15,2026/03/02,215/QĐ-UBND, to tell: 000.00.15.H15, 000.00.16.H15"
    ) in out
    assert "  replaces: 000.00.00.H15,2026/02/20,180/QĐ-UBND, to tell: 000.00.15.H15" in out
    assert "  reason: Thay thế do sai sót số liệu" in out
    assert "  staff: Văn phòng UBND tỉnh, Trần Thị Lan, vanthu@daklak.gov.vn" in out
    info = json.loads(run("show", "--json", str(HAND / "replace_3.edxml")).stdout)
    assert [r["organ_ids"] for r in info["business"]["replacements"]] == [
        ["000.00.15.H15", "000.00.16.H15"],
        ["000.00.15.H15"],
    ]
    assert info["other_info"]["priority"] == "2"
    assert info["other_info"]["priority_meaning"] == "very urgent (thượng khẩn)"
    assert info["other_info"]["page_amount"] == "2"
    assert info["other_info"]["appendixes"] == ["Phụ lục I"]
    assert info["to_places"] == ["Các sở, ban, ngành", "UBND các huyện, thị xã, thành phố"]
    assert info["signer"]["full_name"] == "Nguyễn Văn Hùng"
    assert info["due_date"] == "2026/03/31"
    assert info["steering_type"] == "1"


@pytest.mark.parametrize(
    ("path", "code", "meaning"),
    [
        (DATA / "status_inbox_01.edxml", "01", "arrived"),
        (HAND / "status_02.edxml", "02", "refused"),
        (DATA / "status_acceptance_03.edxml", "03", "accepted and entered"),
        (HAND / "status_04.edxml", "04", "assigned for handling"),
        (HAND / "status_05.edxml", "05", "being processed"),
        (DATA / "status_finish_06.edxml", "06", "processing completed"),
        (HAND / "status_13.edxml", "13", "asks to recall"),
        (HAND / "status_15.edxml", "15", "agrees to the update/recall"),
        (HAND / "status_16.edxml", "16", "refuses the update/recall"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) == 2 else None,
)
def test_show_a_status_says_its_meaning_and_the_document_it_answers(path, code, meaning) -> None:
    out = run("show", str(path)).stdout
    assert f"status: {code} (" in out and meaning in out.split(f"status: {code} (")[1]
    assert "answers document: " in out
    info = json.loads(run("show", "--json", str(path)).stdout)
    assert info["status_code"] == code and meaning in info["status_meaning"]
    assert info["response_for"]["document_id"] == info["document_id"]
    assert info["response_for"]["organ_id"]
    assert info["staff"]["staff"]


def test_show_a_refusal_gives_its_reason_in_vietnamese() -> None:
    out = run("show", str(HAND / "status_02.edxml")).stdout
    assert "description: Từ chối tiếp nhận văn bản điện tử: văn bản chưa được ký số" in out
    assert "answers: 000.00.00.H15, 215/QĐ-UBND, 2026/03/02" in out
