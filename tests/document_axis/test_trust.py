"""Trust in signers: anchors, chains, key usages and revocation, each rule refused on its own.

Certificates come from a SANDBOX CA built with ``cryptography`` (a root, an
intermediate, signing certificates); the hostile ones are what a real CA must
never issue. One valid chain and one revoked certificate are cross-checked
with ``openssl verify``.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

from lienthong.errors import ConfigError, RejectedError, TransientError
from lienthong.plugins.document_axis.sandbox_ca import SandboxCA, new_key, pem
from lienthong.plugins.document_axis.signature import sign, verify
from lienthong.plugins.document_axis.trust import CrlFiles, Trust

DATA = Path(__file__).parent / "data" / "edxml"
NOW = datetime.now(UTC)
CLERK = "CN=Văn thư,O=Sở Y tế,L=Đắk Lắk,C=VN"


@pytest.fixture(scope="module")
def ca() -> SandboxCA:
    return SandboxCA()


@pytest.fixture(scope="module")
def clerk(ca: SandboxCA):
    return ca.issue(CLERK)


@pytest.fixture
def trust(ca: SandboxCA) -> Trust:
    return Trust([ca.root.certificate])


def refused(trust: Trust, material, match: str, carried=None) -> None:
    carried = list(material.chain) if carried is None else carried
    with pytest.raises(RejectedError, match=match):
        trust.chain(material.certificate, carried)


# ---------------------------------------------------------------- anchors and chains


def test_a_chain_through_the_carried_intermediate_reaches_the_root(ca, clerk, trust) -> None:
    chain = trust.chain(clerk.certificate, list(clerk.chain))
    assert chain == [clerk.certificate, ca.intermediate.certificate, ca.root.certificate]


def test_a_configured_intermediate_completes_a_chain_the_signature_does_not_carry(
    ca, clerk
) -> None:
    bare = Trust([ca.root.certificate])
    with pytest.raises(RejectedError, match="its issuer is not a trust anchor, nor among"):
        bare.chain(clerk.certificate, [])
    with_intermediate = Trust([ca.root.certificate], [ca.intermediate.certificate])
    assert len(with_intermediate.chain(clerk.certificate, [])) == 3


def test_a_signer_from_another_ca_is_untrusted(clerk) -> None:
    other = SandboxCA("CN=Another Root,C=VN", intermediate=None)
    with pytest.raises(RejectedError, match=r"signature untrusted: no valid chain from signer"):
        Trust([other.root.certificate]).chain(clerk.certificate, list(clerk.chain))


def test_empty_trust_trusts_nobody(clerk) -> None:
    with pytest.raises(RejectedError, match="there are no trust anchors"):
        Trust().chain(clerk.certificate, list(clerk.chain))


def test_a_leaf_cannot_be_a_trust_anchor(clerk, tmp_path: Path) -> None:
    """Attack (b) at its root: a pinned partner certificate used to vouch for others."""
    with pytest.raises(ConfigError, match="trust anchor 'CN=Văn thư.*is not a CA certificate"):
        Trust([clerk.certificate])
    (tmp_path / "partner.pem").write_bytes(pem(clerk.certificate))
    with pytest.raises(ConfigError, match="not a CA certificate"):
        Trust.from_files([tmp_path / "partner.pem"])


def test_a_partner_leaf_minting_a_certificate_is_refused(ca, clerk, trust) -> None:
    """Attack (b): a trusted clerk's key issues 'Chủ tịch UBND tỉnh' a certificate."""
    minted = ca.issue("CN=Chủ tịch UBND tỉnh,O=UBND tỉnh Đắk Lắk,C=VN", issuer=clerk)
    refused(trust, minted, "basicConstraints.cA must be asserted in a CA certificate")
    without_constraints = ca.issue("CN=Văn thư 2,O=Sở Y tế,C=VN", ca=None)
    minted = ca.issue("CN=Chủ tịch UBND tỉnh,C=VN", issuer=without_constraints)
    refused(trust, minted, "CA certificate has no basicConstraints")


def test_a_ca_without_key_cert_sign_cannot_issue(ca, trust) -> None:
    limp = ca.issue(
        "CN=Sub CA without keyCertSign,C=VN",
        issuer=ca.root,
        ca=True,
        key_usage=x509.KeyUsage(False, False, False, False, False, False, True, False, False),
    )
    leaf = ca.issue("CN=Văn thư 3,C=VN", issuer=limp)
    refused(trust, leaf, "keyUsage.keyCertSign must be asserted")


def test_validity_dates_are_checked_along_the_chain(ca, trust) -> None:
    expired = ca.issue("CN=Hết hạn,C=VN", not_before=NOW - timedelta(days=400), days=365)
    refused(
        trust,
        expired,
        "certificate of 'CN=Hết hạn,C=VN' is valid from .*Hint: the signer must renew",
    )
    early = ca.issue("CN=Chưa hiệu lực,C=VN", not_before=NOW + timedelta(days=2))
    refused(trust, early, "certificate of 'CN=Chưa hiệu lực,C=VN' is valid from")
    old_sub = ca.issue(
        "CN=Old Sub CA,C=VN",
        issuer=ca.root,
        ca=True,
        not_before=NOW - timedelta(days=40),
        days=30,
    )
    leaf = ca.issue("CN=Văn thư 4,C=VN", issuer=old_sub)
    refused(trust, leaf, "cert is not valid at validation time.*Hint: a certificate in the chain")


def test_the_signer_must_be_allowed_to_sign(ca, trust) -> None:
    refused(
        trust,
        ca.issue("CN=No keyUsage,C=VN", key_usage=None),
        "2.5.29.15: Certificate is missing required extension",
    )
    encipher_only = x509.KeyUsage(False, False, True, False, False, False, False, False, False)
    refused(
        trust,
        ca.issue("CN=Encryption only,C=VN", key_usage=encipher_only),
        "neither digitalSignature nor nonRepudiation",
    )
    refused(
        trust,
        ca.issue("CN=TLS server,C=VN", purposes=[ExtendedKeyUsageOID.SERVER_AUTH]),
        r"extendedKeyUsage \(1.3.6.1.5.5.7.3.1\) names no document-signing purpose",
    )
    refused(
        trust,
        ca.issue(
            "CN=A CA signing documents,C=VN",
            ca=True,
            key_usage=x509.KeyUsage(True, False, False, False, False, True, True, False, False),
        ),
        "it is a CA certificate",
    )
    document_signing = ObjectIdentifier("1.3.6.1.5.5.7.3.36")
    for fine in (
        ca.issue("CN=No EKU,C=VN", purposes=None),
        ca.issue("CN=documentSigning,C=VN", purposes=[document_signing]),
    ):
        assert len(trust.chain(fine.certificate, list(fine.chain))) == 3


def test_a_weak_signing_key_is_refused(ca, trust) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    refused(trust, ca.issue("CN=Khóa yếu,C=VN", key=weak), "is RSA-1024, under the 2048 bits")


def test_an_unknown_critical_extension_is_refused(ca, trust) -> None:
    key = new_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name.from_rfc4514_string("CN=Critical,C=VN"))
        .issuer_name(ca.intermediate.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=30))
        .add_extension(
            x509.KeyUsage(True, True, False, False, False, False, False, False, False),
            critical=True,
        )
        .add_extension(
            x509.UnrecognizedExtension(ObjectIdentifier("1.2.3.4.5"), b"\x05\x00"), critical=True
        )
        .sign(ca.intermediate.private_key, hashes.SHA256())
    )
    with pytest.raises(RejectedError, match="unaccounted-for critical extensions"):
        trust.chain(certificate, [ca.intermediate.certificate])


# ---------------------------------------------------------------- revocation


def crl_files(ca: SandboxCA, folder: Path, **crl) -> list[Path]:
    files = [folder / "root.crl", folder / "intermediate.crl"]
    files[0].write_bytes(pem(ca.crl(ca.root, **crl)))
    files[1].write_bytes(pem(ca.crl(ca.intermediate, **crl)))
    return files


def test_a_revoked_signer_is_refused_with_when_and_why(tmp_path: Path) -> None:
    ca = SandboxCA()
    clerk, revoked = ca.issue(CLERK), ca.issue("CN=Văn thư cũ,O=Sở Y tế,C=VN")
    ca.revoke(revoked.certificate, when=NOW - timedelta(hours=2))
    trust = Trust([ca.root.certificate], crls=CrlFiles(crl_files(ca, tmp_path)))
    assert len(trust.chain(clerk.certificate, list(clerk.chain))) == 3
    with pytest.raises(
        RejectedError,
        match=r"certificate of 'CN=Văn thư cũ.*was revoked on .* UTC \(keyCompromise\)",
    ):
        trust.chain(revoked.certificate, list(revoked.chain))


def test_a_revoked_intermediate_takes_its_signers_with_it(tmp_path: Path) -> None:
    ca = SandboxCA()
    clerk = ca.issue(CLERK)
    ca.revoke(ca.intermediate.certificate)
    trust = Trust([ca.root.certificate], crls=CrlFiles(crl_files(ca, tmp_path)))
    with pytest.raises(RejectedError, match="certificate of 'CN=SANDBOX Signing CA.*was revoked"):
        trust.chain(clerk.certificate, list(clerk.chain))


def test_a_missing_stale_or_forged_crl_makes_the_check_wait(ca, clerk, tmp_path: Path) -> None:
    """Not the document's fault: TransientError, so it waits on the axis for a fresh CRL."""
    only_root = tmp_path / "root-only.crl"
    only_root.write_bytes(pem(ca.crl(ca.root)))
    trust = Trust([ca.root.certificate], crls=CrlFiles([only_root]))
    with pytest.raises(TransientError, match="SANDBOX Signing CA.*none of the crl_files"):
        trust.chain(clerk.certificate, list(clerk.chain))

    stale = crl_files(ca, tmp_path, last_update=NOW - timedelta(days=10), days=7)
    trust = Trust([ca.root.certificate], crls=CrlFiles(stale))
    with pytest.raises(TransientError, match=r"is out of date.*Hint: refresh the CRL file"):
        trust.chain(clerk.certificate, list(clerk.chain))

    impostor = SandboxCA()  # same names, other keys: its CRL does not count
    (tmp_path / "impostor").mkdir()
    forged = crl_files(impostor, tmp_path / "impostor")
    trust = Trust([ca.root.certificate], crls=CrlFiles(forged))
    with pytest.raises(TransientError, match="none of the crl_files is a CRL it signed"):
        trust.chain(clerk.certificate, list(clerk.chain))


def test_a_crl_file_is_reread_when_it_changes(tmp_path: Path, caplog) -> None:
    ca = SandboxCA()
    clerk = ca.issue(CLERK)
    files = crl_files(ca, tmp_path)
    trust = Trust([ca.root.certificate], crls=CrlFiles(files))
    assert len(trust.chain(clerk.certificate, list(clerk.chain))) == 3
    ca.revoke(clerk.certificate)
    files[1].write_bytes(pem(ca.crl(ca.intermediate)))
    os.utime(files[1], ns=(0, 10**9))  # a different stamp even within one clock tick
    with pytest.raises(RejectedError, match="was revoked"):
        trust.chain(clerk.certificate, list(clerk.chain))
    files[1].write_bytes(b"-----BEGIN X509 CRL-----\nhalf written")
    with caplog.at_level(logging.WARNING), pytest.raises(RejectedError, match="was revoked"):
        trust.chain(clerk.certificate, list(clerk.chain))  # the CRLs read before stand
    assert "keeping the CRLs read before" in caplog.text


def test_unreadable_files_are_config_errors_naming_each(tmp_path: Path) -> None:
    (tmp_path / "junk.pem").write_text("-----BEGIN CERTIFICATE-----\nnot base64\n")
    with pytest.raises(ConfigError) as caught:
        Trust.from_files(
            [tmp_path / "missing.pem", tmp_path / "junk.pem"],
            crl_files=[tmp_path / "missing.crl"],
        )
    text = str(caught.value)
    assert "3 configuration problems" in text
    assert "missing.pem' cannot be read" in text and "junk.pem' holds no readable" in text
    assert "CRL file" in text and "missing.crl" in text


# ---------------------------------------------------------------- with the XML signature


def test_verify_applies_the_chain_to_the_signer_of_the_document(ca, clerk) -> None:
    signed = sign((DATA / "status_finish_06.edxml").read_bytes(), clerk)
    info = verify(signed, trust=Trust([ca.root.certificate]))
    assert info.trusted and info.subject == "CN=Văn thư,O=Sở Y tế,L=Đắk Lắk,C=VN"
    minted = ca.issue("CN=Chủ tịch UBND tỉnh,C=VN", issuer=clerk)
    with pytest.raises(RejectedError, match="signature untrusted: .*Chủ tịch UBND tỉnh"):
        verify(
            sign((DATA / "status_finish_06.edxml").read_bytes(), minted),
            trust=Trust([ca.root.certificate]),
        )


# ---------------------------------------------------------------- cross-check with openssl

OPENSSL = shutil.which("openssl")


@pytest.mark.skipif(OPENSSL is None, reason="openssl not found: apt-get install openssl")
def test_openssl_agrees_on_a_valid_chain_and_a_revoked_one(tmp_path: Path) -> None:
    ca = SandboxCA()
    clerk, revoked = ca.issue(CLERK), ca.issue("CN=Văn thư cũ,C=VN")
    ca.revoke(revoked.certificate, when=NOW - timedelta(hours=2))
    files = ca.write(tmp_path)
    (tmp_path / "clerk.pem").write_bytes(pem(clerk.certificate))
    (tmp_path / "revoked.pem").write_bytes(pem(revoked.certificate))
    (tmp_path / "crls.pem").write_bytes(
        files["root_crl"].read_bytes() + files["intermediate_crl"].read_bytes()
    )

    def openssl_verify(leaf: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                OPENSSL,
                "verify",
                "-x509_strict",
                "-crl_check_all",
                "-CRLfile",
                str(tmp_path / "crls.pem"),
                "-CAfile",
                str(files["root"]),
                "-untrusted",
                str(files["intermediate"]),
                str(tmp_path / leaf),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )

    ok = openssl_verify("clerk.pem")
    assert ok.returncode == 0 and ": OK" in ok.stdout, ok.stdout + ok.stderr
    bad = openssl_verify("revoked.pem")
    assert bad.returncode != 0 and "certificate revoked" in bad.stdout + bad.stderr
    trust = Trust.from_files(
        [files["root"]], [files["intermediate"]], [files["root_crl"], files["intermediate_crl"]]
    )
    assert len(trust.chain(clerk.certificate)) == 3
    with pytest.raises(RejectedError, match="was revoked"):
        trust.chain(revoked.certificate)


@pytest.mark.skipif(OPENSSL is None, reason="openssl not found: apt-get install openssl")
def test_a_certificate_signed_with_sha1_is_refused(tmp_path: Path) -> None:
    """cryptography will not make one; openssl still does, as an old CA did."""
    ca = SandboxCA(intermediate=None)
    (tmp_path / "ca.pem").write_bytes(pem(ca.root.certificate))
    (tmp_path / "ca.key").write_bytes(
        ca.root.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (tmp_path / "ext.cnf").write_text("keyUsage=critical,digitalSignature\n")
    steps = [
        [
            OPENSSL,
            "req",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=SHA1",
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
        ],
        [
            OPENSSL,
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-sha1",
            "-days",
            "30",
            "-extfile",
            "ext.cnf",
            "-out",
            "leaf.pem",
        ],
    ]
    for step in steps:
        done = subprocess.run(step, cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    leaf = x509.load_pem_x509_certificate((tmp_path / "leaf.pem").read_bytes())
    with pytest.raises(
        RejectedError, match=r"signed with an algorithm no longer allowed \(SHA-1\)"
    ):
        Trust([ca.root.certificate]).chain(leaf)
