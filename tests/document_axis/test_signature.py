"""XML signatures on edXML: sign, verify, tampering, policy, keys, and interop with xmlsec1.

Chains, revocation and binding are tested in test_trust.py and test_provenance.py.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID
from lxml import etree

from lienthong.adapter import Secret
from lienthong.errors import ConfigError, RejectedError
from lienthong.plugins.document_axis import edxml
from lienthong.plugins.document_axis.sandbox_ca import SandboxCA
from lienthong.plugins.document_axis.signature import (
    KeyMaterial,
    Policy,
    check_policy,
    has_signature,
    load_key,
    sign,
    verify,
)
from lienthong.plugins.document_axis.trust import Trust
from lienthong.plugins.document_axis.validation import check

DATA = Path(__file__).parent / "data" / "edxml"
DS = "http://www.w3.org/2000/09/xmldsig#"
NOW = datetime.now(UTC)


def sample(name: str) -> bytes:
    return (DATA / name).read_bytes()


def certificate(
    subject: str,
    key: rsa.RSAPrivateKey,
    *,
    issuer: tuple[str, rsa.RSAPrivateKey] | None = None,
    days: int = 30,
    start: datetime | None = None,
) -> x509.Certificate:
    issuer_name, issuer_key = issuer or (subject, key)
    start = start or NOW - timedelta(days=1)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=days))
        .sign(issuer_key, hashes.SHA256())
    )


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def signer() -> KeyMaterial:
    key = new_key()
    return KeyMaterial(key, certificate("Văn thư UBND tỉnh Đắk Lắk", key))


@pytest.fixture(scope="module")
def other() -> KeyMaterial:
    key = new_key()
    return KeyMaterial(key, certificate("Someone else", key))


@pytest.fixture(scope="module")
def ca() -> SandboxCA:
    return SandboxCA()


@pytest.fixture(scope="module")
def signed_status(signer: KeyMaterial) -> bytes:
    return sign(sample("status_finish_06.edxml"), signer)


@pytest.fixture(scope="module")
def signed_document(signer: KeyMaterial) -> bytes:
    return sign(sample("edoc_new.edxml"), signer)


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


# ---------------------------------------------------------------- sign and verify


def test_sign_then_verify_a_built_document(signer: KeyMaterial) -> None:
    built = edxml.build(edxml.read(sample("edoc_update.edxml")))
    signed = sign(built, signer)
    info = verify(signed)
    assert info.subject == "CN=Văn thư UBND tỉnh Đắk Lắk"
    assert info.algorithm == "rsa-sha256"
    assert info.trusted is False
    assert check(signed) == []  # the signature has a place in the schema


def test_sign_the_sample_replaces_its_placeholder(signed_document: bytes) -> None:
    root = etree.fromstring(signed_document)
    header = root.find(f"{{{edxml.NS}}}edXMLEnvelope/{{{edxml.NS}}}edXMLHeader")
    assert [etree.QName(c).localname for c in header] == [
        "MessageHeader",
        "TraceHeaderList",
        "Signature",
    ]
    assert header[-1].tag == f"{{{DS}}}Signature"
    assert b'<Signature xmlns="http://www.w3.org/2000/09/xmldsig#">' in signed_document
    assert b'<Reference URI="">' in signed_document
    assert b"REC-xml-c14n-20010315" in signed_document
    info = verify(signed_document)
    assert info.subject == "CN=Văn thư UBND tỉnh Đắk Lắk"
    # Reading the signed message still gives the same document.
    assert edxml.read(signed_document) == edxml.read(sample("edoc_new.edxml"))


@pytest.mark.parametrize("algorithm", ["rsa-sha1", "rsa-sha256", "rsa-sha512"])
def test_every_algorithm_round_trips(signer: KeyMaterial, algorithm: str) -> None:
    signed = sign(sample("status_inbox_01.edxml"), signer, algorithm)
    assert verify(signed).algorithm == algorithm


def test_unknown_algorithm_is_a_config_error(signer: KeyMaterial) -> None:
    with pytest.raises(ConfigError, match="'dsa-sha1' is not supported.*rsa-sha256"):
        sign(sample("status_inbox_01.edxml"), signer, "dsa-sha1")


# ---------------------------------------------------------------- hostile


def test_tampered_text_is_refused(signed_status: bytes) -> None:
    tampered = signed_status.replace(b">06<", b">02<")
    with pytest.raises(RejectedError, match=r"signature invalid: the message was changed after"):
        verify(tampered)


def test_tampered_attachment_is_refused(signed_document: bytes) -> None:
    start = signed_document.index(b"UEsDBBQ")
    tampered = signed_document[:start] + b"UEsDBBR" + signed_document[start + 7 :]
    with pytest.raises(RejectedError, match="digest mismatch"):
        verify(tampered)


def test_appended_trace_breaks_the_signature(signed_document: bytes) -> None:
    hop = edxml.append_trace(signed_document, "000.00.00.H15", datetime(2024, 1, 1))
    with pytest.raises(RejectedError, match="signature invalid"):
        verify(hop)


def test_tampered_signed_info_is_refused(signed_status: bytes) -> None:
    tampered = signed_status.replace(b"xmldsig-more#rsa-sha256", b"xmldsig-more#rsa-sha512")
    with pytest.raises(RejectedError, match="SignatureValue does not match SignedInfo"):
        verify(tampered)


def test_swapped_certificate_is_refused(signed_status: bytes, other: KeyMaterial) -> None:
    root = etree.fromstring(signed_status)
    element = root.find(f".//{{{DS}}}X509Certificate")
    element.text = base64.b64encode(other.certificate.public_bytes(serialization.Encoding.DER))
    with pytest.raises(RejectedError, match="SignatureValue does not match.*Someone else"):
        verify(etree.tostring(root))


def test_resigned_by_an_untrusted_key_is_refused(other: KeyMaterial, ca: SandboxCA) -> None:
    forged = sign(sample("status_finish_06.edxml"), other)
    assert verify(forged).subject == "CN=Someone else"  # intact, but from whom?
    assert verify(forged).trusted is False
    trust = Trust([ca.root.certificate])
    with pytest.raises(RejectedError, match="signature untrusted: .*signer 'CN=Someone else'"):
        verify(forged, trust=trust)
    clerk = ca.issue("CN=Văn thư,O=UBND tỉnh Đắk Lắk,C=VN")
    info = verify(sign(sample("status_finish_06.edxml"), clerk), trust=trust)
    assert info.trusted is True
    assert info.chain == (clerk.certificate, ca.intermediate.certificate, ca.root.certificate)


def test_certificate_issued_by_a_trusted_ca_is_trusted(tmp_path: Path, ca: SandboxCA) -> None:
    (tmp_path / "ca.pem").write_bytes(pem(ca.root.certificate))
    clerk = ca.issue("CN=Sở TTTT,C=VN")
    signed = sign(sample("status_finish_06.edxml"), clerk)
    info = verify(signed, trust=Trust.from_files([tmp_path / "ca.pem"]))
    assert (info.subject, info.issuer, info.trusted) == (
        "CN=Sở TTTT,C=VN",
        ca.intermediate.certificate.subject.rfc4514_string(),
        True,
    )


def test_the_signer_is_the_certificate_whose_key_signed(ca: SandboxCA) -> None:
    """KeyInfo may list the intermediate first: the signer is found by its key, not its place."""
    clerk = ca.issue("CN=Văn thư,C=VN")
    reordered = KeyMaterial(clerk.private_key, clerk.certificate)
    signed = sign(sample("status_finish_06.edxml"), reordered)
    root = etree.fromstring(signed)
    x509_data = next(root.iter(f"{{{DS}}}X509Data"))
    first = etree.SubElement(x509_data, f"{{{DS}}}X509Certificate")
    first.text = base64.b64encode(
        ca.intermediate.certificate.public_bytes(serialization.Encoding.DER)
    ).decode()
    x509_data.insert(0, first)
    signed = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    info = verify(signed, trust=Trust([ca.root.certificate]))
    assert info.subject == "CN=Văn thư,C=VN" and info.trusted


def test_too_many_certificates_in_key_info_are_refused(signer: KeyMaterial) -> None:
    crowded = KeyMaterial(signer.private_key, signer.certificate, (signer.certificate,) * 8)
    with pytest.raises(RejectedError, match="KeyInfo carries 9 certificates"):
        verify(sign(sample("status_finish_06.edxml"), crowded))


def test_expired_certificate_is_refused() -> None:
    key = new_key()
    old = KeyMaterial(key, certificate("Old", key, start=NOW - timedelta(days=400), days=365))
    signed = sign(sample("status_finish_06.edxml"), old)
    with pytest.raises(RejectedError, match="certificate of 'CN=Old' is valid from"):
        verify(signed)
    assert verify(signed, at=NOW - timedelta(days=100)).subject == "CN=Old"


def test_signature_moved_out_of_the_header_is_refused(signed_status: bytes) -> None:
    root = etree.fromstring(signed_status)
    signature = root.find(f".//{{{DS}}}Signature")
    root.append(signature)
    with pytest.raises(RejectedError, match="sits in edXML, not in edXMLEnvelope/edXMLHeader"):
        verify(etree.tostring(root))


def test_second_signature_is_refused(signed_status: bytes) -> None:
    root = etree.fromstring(signed_status)
    signature = root.find(f".//{{{DS}}}Signature")
    root.append(etree.fromstring(etree.tostring(signature)))
    with pytest.raises(RejectedError, match="holds 2 signatures"):
        verify(etree.tostring(root))


def test_partial_reference_is_refused(signed_status: bytes) -> None:
    tampered = signed_status.replace(b'<Reference URI="">', b'<Reference URI="#part">')
    with pytest.raises(RejectedError, match="one Reference with URI=\"\".*'#part'"):
        verify(tampered)


def test_unexpected_transform_is_refused(signed_status: bytes) -> None:
    xslt = b'<Transform Algorithm="http://www.w3.org/TR/1999/REC-xslt-19991116"/></Transforms>'
    tampered = signed_status.replace(b"</Transforms>", xslt)
    with pytest.raises(RejectedError, match="transforms .* are not allowed"):
        verify(tampered)


def test_the_samples_placeholder_signature_cannot_pass() -> None:
    with pytest.raises(RejectedError, match="edXML namespace, not an XMLDSig signature"):
        verify(sample("edoc_new.edxml"))


def test_unsigned_message() -> None:
    with pytest.raises(RejectedError, match="signature missing"):
        verify(sample("status_finish_06.edxml"))


# ---------------------------------------------------------------- policy


def test_policy_off_never_looks() -> None:
    assert check_policy(sample("edoc_new.edxml"), Policy.OFF) is None


def test_policy_verify_if_present(signed_status: bytes) -> None:
    assert check_policy(sample("status_finish_06.edxml"), Policy.VERIFY_IF_PRESENT) is None
    assert check_policy(signed_status, "verify_if_present").subject.startswith("CN=Văn thư")
    with pytest.raises(RejectedError, match="signature invalid"):
        check_policy(signed_status.replace(b">06<", b">05<"), Policy.VERIFY_IF_PRESENT)
    with pytest.raises(RejectedError, match="signature invalid"):
        check_policy(sample("edoc_new.edxml"), Policy.VERIFY_IF_PRESENT)


def test_policy_require(signed_status: bytes, ca: SandboxCA) -> None:
    with pytest.raises(RejectedError, match="policy requires a signed message"):
        check_policy(sample("status_finish_06.edxml"), Policy.REQUIRE)
    assert check_policy(signed_status, Policy.REQUIRE) is not None
    with pytest.raises(RejectedError, match="signature untrusted"):
        check_policy(signed_status, Policy.REQUIRE, Trust([ca.root.certificate]))


def test_unknown_policy_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="'sometimes' is unknown"):
        check_policy(b"", "sometimes")


def test_has_signature(signed_status: bytes) -> None:
    assert has_signature(signed_status)
    assert has_signature(sample("edoc_new.edxml"))  # the placeholder counts: it must be judged
    assert not has_signature(sample("status_inbox_01.edxml"))


# ---------------------------------------------------------------- keys


def test_load_pem_key_and_certificate(tmp_path: Path, signer: KeyMaterial) -> None:
    key_pem = signer.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (tmp_path / "both.pem").write_bytes(key_pem + pem(signer.certificate))
    (tmp_path / "key.pem").write_bytes(key_pem)
    (tmp_path / "cert.pem").write_bytes(pem(signer.certificate))
    for loaded in (
        load_key(tmp_path / "both.pem"),
        load_key(str(tmp_path / "key.pem"), cert=tmp_path / "cert.pem"),
        load_key(key_pem + pem(signer.certificate)),
    ):
        assert loaded.certificate == signer.certificate
        assert verify(sign(sample("status_inbox_01.edxml"), loaded)).subject.startswith("CN=Văn")
    assert "PRIVATE" not in repr(loaded) and "Văn thư" in repr(loaded)


def test_load_encrypted_pem_and_pkcs12(tmp_path: Path, signer: KeyMaterial) -> None:
    password = Secret("mật-khẩu-1", origin="test")
    encrypted = signer.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption("mật-khẩu-1".encode()),
    )
    (tmp_path / "enc.pem").write_bytes(encrypted + pem(signer.certificate))
    assert load_key(tmp_path / "enc.pem", password).certificate == signer.certificate
    p12 = pkcs12.serialize_key_and_certificates(
        b"signer",
        signer.private_key,
        signer.certificate,
        None,
        serialization.BestAvailableEncryption("mật-khẩu-1".encode()),
    )
    (tmp_path / "signer.p12").write_bytes(p12)
    loaded = load_key(tmp_path / "signer.p12", password)
    assert loaded.certificate == signer.certificate
    with pytest.raises(ConfigError, match="cannot be loaded.*Hint: give the password"):
        load_key(tmp_path / "enc.pem")
    with pytest.raises(ConfigError, match="cannot be loaded") as info:
        load_key(tmp_path / "signer.p12", Secret("wrong"))
    assert "mật-khẩu" not in str(info.value)


def test_key_without_its_certificate(
    tmp_path: Path, signer: KeyMaterial, other: KeyMaterial
) -> None:
    key_pem = signer.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(ConfigError, match="none of the 1 certificate.*matches this key"):
        load_key(key_pem + pem(other.certificate))
    with pytest.raises(ConfigError, match="cannot be read.*Hint: check the path"):
        load_key(tmp_path / "missing.pem")
    ec_key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(ConfigError, match="not RSA"):
        load_key(ec_key)


# ---------------------------------------------------------------- interop with xmlsec1

XMLSEC1 = shutil.which("xmlsec1")
needs_xmlsec1 = pytest.mark.skipif(
    XMLSEC1 is None, reason="xmlsec1 not found: apt-get install xmlsec1 (reference XMLDSig tool)"
)


@needs_xmlsec1
@pytest.mark.parametrize("algorithm", ["rsa-sha1", "rsa-sha256"])
def test_xmlsec1_verifies_our_signature(
    tmp_path: Path, signer: KeyMaterial, algorithm: str, signed_document: bytes
) -> None:
    signed = (
        signed_document
        if algorithm == "rsa-sha256"
        else sign(sample("edoc_new.edxml"), signer, algorithm)
    )
    (tmp_path / "signed.edxml").write_bytes(signed)
    (tmp_path / "cert.pem").write_bytes(pem(signer.certificate))
    result = subprocess.run(
        [
            XMLSEC1,
            "--verify",
            "--pubkey-cert-pem",
            str(tmp_path / "cert.pem"),
            "--enabled-reference-uris",
            "empty",
            str(tmp_path / "signed.edxml"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


# The shape seen on the axis: unprefixed XMLDSig in edXMLHeader, RSA-SHA1, enveloped
# plus exclusive C14N (as in the SDK's edoc_new), a comment inside the message.
WILD_TEMPLATE = b"""<Signature xmlns="http://www.w3.org/2000/09/xmldsig#">
        <SignedInfo>
          <CanonicalizationMethod Algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315" />
          <SignatureMethod Algorithm="http://www.w3.org/2000/09/xmldsig#rsa-sha1" />
          <Reference URI="">
            <Transforms>
              <Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature" />
              <Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#" />
            </Transforms>
            <DigestMethod Algorithm="http://www.w3.org/2000/09/xmldsig#sha1" />
            <DigestValue></DigestValue>
          </Reference>
        </SignedInfo>
        <SignatureValue></SignatureValue>
        <KeyInfo>
          <X509Data>
            <X509Certificate></X509Certificate>
          </X509Data>
        </KeyInfo>
      </Signature>"""


@needs_xmlsec1
def test_we_verify_a_wild_style_signature_made_by_xmlsec1(
    tmp_path: Path, signer: KeyMaterial
) -> None:
    start, end = (
        sample("edoc_new.edxml").index(b"<Signature>"),
        sample("edoc_new.edxml").index(b"</Signature>") + len(b"</Signature>"),
    )
    data = sample("edoc_new.edxml")
    template = data[:start] + WILD_TEMPLATE + data[end:]
    template = template.replace(b"<edXML:edXMLHeader>", b"<edXML:edXMLHeader><!-- hop note -->")
    (tmp_path / "template.edxml").write_bytes(template)
    key_pem = signer.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    (tmp_path / "key.pem").write_bytes(key_pem)
    (tmp_path / "cert.pem").write_bytes(pem(signer.certificate))
    result = subprocess.run(
        [
            XMLSEC1,
            "--sign",
            "--privkey-pem",
            f"{tmp_path / 'key.pem'},{tmp_path / 'cert.pem'}",
            "--enabled-reference-uris",
            "empty",
            "--output",
            str(tmp_path / "signed.edxml"),
            str(tmp_path / "template.edxml"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    signed = (tmp_path / "signed.edxml").read_bytes()
    info = verify(signed)
    assert (info.algorithm, info.subject) == ("rsa-sha1", "CN=Văn thư UBND tỉnh Đắk Lắk")
    with pytest.raises(RejectedError, match="digest mismatch"):
        verify(signed.replace("Hòa Tiến".encode(), "Hoà Tiến".encode(), 1))
