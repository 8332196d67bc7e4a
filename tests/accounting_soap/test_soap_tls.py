"""The SOAP adapter over real HTTPS on loopback: verification on by default, CA files, mutual TLS.

A throwaway CA, a server certificate for 127.0.0.1 and client certificates are
made with ``cryptography`` when the module starts; the sandbox serves HTTPS with them.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from lienthong.adapter import Services, resolve_options
from lienthong.errors import ConfigError, FatalError, TransientError
from lienthong.message import Message
from lienthong.plugins.accounting_soap.adapter import AccountingSoapAdapter
from lienthong.plugins.accounting_soap.sandbox import AccountingSandbox

USER = "ketoan-stc"
PASSWORD = "mat-khau-sandbox-01"


# --- a throwaway PKI ------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    client_bundle: Path  # certificate and key in one PEM file
    stranger_ca: Path
    stranger_cert: Path  # a client certificate signed by a CA the server does not trust
    stranger_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "lienthong test"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _ca(common_name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _leaf(
    common_name: str,
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    *,
    server: bool,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca_cert, ca_key = ca
    key = _key()
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return builder.sign(ca_key, hashes.SHA256()), key


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca = _ca("lienthong test CA")
    server = _leaf("127.0.0.1", ca, server=True)
    client = _leaf("lienthong bus", ca, server=False)
    stranger_ca = _ca("someone else's CA")
    stranger = _leaf("lienthong bus", stranger_ca, server=False)
    files = {
        "ca": _cert_pem(ca[0]),
        "server_cert": _cert_pem(server[0]),
        "server_key": _key_pem(server[1]),
        "client_cert": _cert_pem(client[0]),
        "client_key": _key_pem(client[1]),
        "client_bundle": _cert_pem(client[0]) + _key_pem(client[1]),
        "stranger_ca": _cert_pem(stranger_ca[0]),
        "stranger_cert": _cert_pem(stranger[0]),
        "stranger_key": _key_pem(stranger[1]),
    }
    paths = {}
    for name, data in files.items():
        path = folder / f"{name}.pem"
        path.write_bytes(data)
        paths[name] = path
    return Pki(**paths)


# --- servers and adapters ---------------------------------------------------------


@pytest.fixture
def https_sandbox(pki: Pki) -> Iterator[AccountingSandbox]:
    """HTTPS with a certificate from the throwaway CA; no client certificate asked."""
    with AccountingSandbox(
        username=USER, password=PASSWORD, tls_cert=pki.server_cert, tls_key=pki.server_key
    ) as server:
        yield server


@pytest.fixture
def mtls_sandbox(pki: Pki) -> Iterator[AccountingSandbox]:
    """HTTPS requiring a client certificate signed by the throwaway CA."""
    with AccountingSandbox(
        username=USER,
        password=PASSWORD,
        tls_cert=pki.server_cert,
        tls_key=pki.server_key,
        client_ca=pki.ca,
    ) as server:
        yield server


@pytest.fixture
def start_adapter(tmp_path: Path) -> Iterator[Callable[..., AccountingSoapAdapter]]:
    """Build and start a send-only adapter from raw options, as the bus would from config."""
    started: list[AccountingSoapAdapter] = []

    def start(sandbox: AccountingSandbox, **raw: Any) -> AccountingSoapAdapter:
        options: dict[str, Any] = {
            "wsdl": sandbox.wsdl_url,
            "username": USER,
            "password": PASSWORD,
            "send_operation": "PostVoucher",
            "reference_field": "voucher.externalReference",
            "timeout": 5,
        }
        options.update(raw)
        settings, problems = resolve_options(AccountingSoapAdapter, options, "endpoints.acct")
        assert not problems, problems
        services = Services(base_dir=tmp_path, var_dir=tmp_path / "var")
        adapter = AccountingSoapAdapter("acct-stc", settings, services)
        started.append(adapter)
        adapter.start()
        return adapter

    yield start
    for adapter in started:
        adapter.stop()


def voucher() -> Message:
    return Message(
        body=(
            '<acc:PostVoucher xmlns:acc="urn:lienthong:sandbox:accounting:v1"><acc:voucher>'
            "<acc:kind>receipt</acc:kind><acc:date>2026-01-15</acc:date>"
            "<acc:agencyCode>000.00.15.H41</acc:agencyCode>"
            "<acc:debitAccount>1111</acc:debitAccount><acc:creditAccount>5111</acc:creditAccount>"
            "<acc:amount>2500000</acc:amount><acc:description>Thu phí qua HTTPS</acc:description>"
            "</acc:voucher></acc:PostVoucher>"
        ).encode()
    )


# --- server verification ------------------------------------------------------------


def test_the_sandbox_serves_https(https_sandbox) -> None:
    assert https_sandbox.url.startswith("https://127.0.0.1:")


def test_an_untrusted_certificate_refuses_to_start_by_default(https_sandbox, start_adapter) -> None:
    with pytest.raises(ConfigError) as caught:
        start_adapter(https_sandbox)
    text = str(caught.value)
    assert https_sandbox.wsdl_url in text
    assert "cannot be verified" in text
    assert "ca_file" in text
    assert not isinstance(caught.value, TransientError)
    assert https_sandbox.calls == {}


def test_a_trusted_ca_file_posts_a_voucher_over_https(https_sandbox, start_adapter, pki) -> None:
    adapter = start_adapter(https_sandbox, ca_file=str(pki.ca))
    adapter.send(voucher(), key="tls-0001")
    [posted] = https_sandbox.vouchers()
    assert posted["externalReference"] == "tls-0001"
    assert posted["description"] == "Thu phí qua HTTPS"


def test_ca_file_is_relative_to_the_config_folder(
    https_sandbox, start_adapter, pki, tmp_path
) -> None:
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "ca.pem").write_bytes(pki.ca.read_bytes())
    start_adapter(https_sandbox, ca_file="certs/ca.pem").send(voucher(), key="tls-0002")
    assert len(https_sandbox.vouchers()) == 1


def test_the_wrong_ca_file_is_still_refused(https_sandbox, start_adapter, pki) -> None:
    with pytest.raises(ConfigError, match="cannot be verified"):
        start_adapter(https_sandbox, ca_file=str(pki.stranger_ca))


def test_a_missing_ca_file_refuses_to_start(https_sandbox, start_adapter, tmp_path) -> None:
    with pytest.raises(ConfigError) as caught:
        start_adapter(https_sandbox, ca_file="certs/missing.pem")
    assert str(tmp_path / "certs" / "missing.pem") in str(caught.value)
    assert "Hint:" in str(caught.value)


def test_a_certificate_changing_after_start_stops_the_route(pki, start_adapter, tmp_path) -> None:
    # The WSDL is loaded (and cached) from a trusted server; then the service comes
    # back on the same port with a certificate from another CA.
    trusted = AccountingSandbox(
        username=USER, password=PASSWORD, tls_cert=pki.server_cert, tls_key=pki.server_key
    ).start()
    try:
        adapter = start_adapter(trusted, ca_file=str(pki.ca))
    finally:
        trusted.stop()
    port = int(trusted.url.split(":")[2].split("/")[0])
    impostor_pem = tmp_path / "impostor.pem"
    impostor = _leaf("127.0.0.1", _ca("impostor CA"), server=True)
    impostor_pem.write_bytes(_cert_pem(impostor[0]) + _key_pem(impostor[1]))
    with AccountingSandbox(
        username=USER, password=PASSWORD, port=port, tls_cert=impostor_pem
    ) as impostor_server:
        with pytest.raises(FatalError) as caught:
            adapter.send(voucher(), key="tls-0003")
        assert "cannot be verified" in str(caught.value)
        assert "ca_file" in str(caught.value)
        assert impostor_server.vouchers() == []


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
def test_a_ca_bundle_variable_overrides_neither_ca_file_nor_verify_tls(
    https_sandbox, start_adapter, pki, monkeypatch, variable
) -> None:
    # Plain requests lets these variables (set on many hosts) win over session.verify.
    monkeypatch.setenv(variable, str(pki.stranger_ca))
    start_adapter(https_sandbox, ca_file=str(pki.ca)).send(voucher(), key="env-1")
    start_adapter(https_sandbox, verify_tls=False).send(voucher(), key="env-2")
    assert len(https_sandbox.vouchers()) == 2


# --- verification off ----------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_verify_tls_false_works_but_warns(https_sandbox, start_adapter, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="lienthong.plugins.accounting_soap"):
        adapter = start_adapter(https_sandbox, verify_tls=False)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("TLS verification is off" in r.getMessage() for r in warnings), warnings
    assert any("acct-stc" in r.getMessage() for r in warnings)
    adapter.send(voucher(), key="tls-0004")
    assert len(https_sandbox.vouchers()) == 1


def test_verify_tls_true_does_not_warn(https_sandbox, start_adapter, pki, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="lienthong.plugins.accounting_soap"):
        start_adapter(https_sandbox, ca_file=str(pki.ca))
    assert not [r for r in caplog.records if "TLS verification" in r.getMessage()]


def test_verify_tls_false_with_a_ca_file_is_contradictory(
    https_sandbox, start_adapter, pki
) -> None:
    with pytest.raises(ConfigError, match="verify_tls is false"):
        start_adapter(https_sandbox, verify_tls=False, ca_file=str(pki.ca))


# --- client certificates -------------------------------------------------------------


def test_no_client_certificate_is_refused_clearly(mtls_sandbox, start_adapter, pki) -> None:
    with pytest.raises(ConfigError) as caught:
        start_adapter(mtls_sandbox, ca_file=str(pki.ca))
    text = str(caught.value)
    assert mtls_sandbox.wsdl_url in text
    assert "client_cert" in text
    assert mtls_sandbox.calls == {}


def test_a_client_certificate_and_key_post_a_voucher(mtls_sandbox, start_adapter, pki) -> None:
    adapter = start_adapter(
        mtls_sandbox,
        ca_file=str(pki.ca),
        client_cert=str(pki.client_cert),
        client_key=str(pki.client_key),
    )
    adapter.send(voucher(), key="mtls-0001")
    [posted] = mtls_sandbox.vouchers()
    assert posted["externalReference"] == "mtls-0001"


def test_a_client_certificate_with_its_key_in_one_file(mtls_sandbox, start_adapter, pki) -> None:
    adapter = start_adapter(mtls_sandbox, ca_file=str(pki.ca), client_cert=str(pki.client_bundle))
    adapter.send(voucher(), key="mtls-0002")
    assert len(mtls_sandbox.vouchers()) == 1


def test_a_client_certificate_from_another_ca_is_refused(mtls_sandbox, start_adapter, pki) -> None:
    with pytest.raises(ConfigError) as caught:
        start_adapter(
            mtls_sandbox,
            ca_file=str(pki.ca),
            client_cert=str(pki.stranger_cert),
            client_key=str(pki.stranger_key),
        )
    text = str(caught.value)
    assert mtls_sandbox.wsdl_url in text
    assert "client_cert" in text
    assert mtls_sandbox.vouchers() == []


def test_a_client_key_without_its_certificate_refuses_to_start(
    mtls_sandbox, start_adapter, pki
) -> None:
    with pytest.raises(ConfigError, match="client_key .* without client_cert"):
        start_adapter(mtls_sandbox, ca_file=str(pki.ca), client_key=str(pki.client_key))


def test_a_missing_client_certificate_file_refuses_to_start(
    mtls_sandbox, start_adapter, pki, tmp_path
) -> None:
    with pytest.raises(ConfigError) as caught:
        start_adapter(mtls_sandbox, ca_file=str(pki.ca), client_cert="bus.pem")
    assert str(tmp_path / "bus.pem") in str(caught.value)
