"""The JSON/REST adapter over real HTTPS on loopback: verification on, CA files, mutual TLS.

A throwaway CA, a server certificate for 127.0.0.1 and a client certificate are
made with ``cryptography``; the one-stop sandbox serves HTTPS with them.
Environment variables that other HTTP clients read (``REQUESTS_CA_BUNDLE``,
``CURL_CA_BUNDLE``) change nothing: trust comes from the endpoint's config.
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

from lienthong.errors import ConfigError, FatalError
from lienthong.plugins.rest_json.adapter import RestJsonAdapter
from lienthong.plugins.rest_json.onestop_sandbox import OneStopSandbox
from lienthong.testing import RecordingInbox
from tests.rest_json import configs

Make = Callable[..., RestJsonAdapter]


@dataclass(frozen=True)
class Pki:
    ca: Path
    other_ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    server: bool = False,
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_name, issuer_key = issuer or (name, key)
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    elif not ca:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path: Path, *items: Any) -> Path:
    data = b""
    for item in items:
        if isinstance(item, x509.Certificate):
            data += item.public_bytes(serialization.Encoding.PEM)
        else:
            data += item.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = tmp_path_factory.mktemp("pki")
    ca_key, other_key, server_key, client_key = (
        ec.generate_private_key(ec.SECP256R1()) for _ in range(4)
    )
    ca = _cert("Lien thong test CA", ca_key, None, ca=True)
    other = _cert("Some other CA", other_key, None, ca=True)
    server = _cert("127.0.0.1", server_key, (ca.subject, ca_key), server=True)
    client = _cert("lienthong-motcua", client_key, (ca.subject, ca_key))
    return Pki(
        ca=_write(root / "ca.pem", ca),
        other_ca=_write(root / "other-ca.pem", other),
        server_cert=_write(root / "server.pem", server),
        server_key=_write(root / "server.key", server_key),
        client_cert=_write(root / "client.pem", client),
        client_key=_write(root / "client.key", client_key),
    )


@pytest.fixture
def https_onestop(pki: Pki) -> Iterator[OneStopSandbox]:
    with OneStopSandbox(tls_cert=pki.server_cert, tls_key=pki.server_key) as sandbox:
        sandbox.add_dossier()
        yield sandbox  # type: ignore[misc]


@pytest.fixture
def mutual_onestop(pki: Pki) -> Iterator[OneStopSandbox]:
    with OneStopSandbox(
        tls_cert=pki.server_cert, tls_key=pki.server_key, client_ca=pki.ca
    ) as sandbox:
        sandbox.add_dossier()
        yield sandbox  # type: ignore[misc]


def test_an_unknown_ca_is_refused_with_the_fix(
    make_adapter: Make, https_onestop: OneStopSandbox
) -> None:
    adapter = make_adapter(configs.onestop_dossiers(https_onestop))
    with pytest.raises(FatalError, match="TLS with https://127.0.0.1.*Hint: .*set ca_file"):
        adapter.receive(RecordingInbox())


def test_the_configured_ca_file_is_trusted_and_ca_bundle_variables_change_nothing(
    make_adapter: Make, https_onestop: OneStopSandbox, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(pki.other_ca))
    monkeypatch.setenv("CURL_CA_BUNDLE", str(pki.other_ca))
    adapter = make_adapter(configs.onestop_dossiers(https_onestop, ca_file=str(pki.ca)))
    assert adapter.receive(RecordingInbox()) == 1

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(pki.ca))  # would make requests trust it
    untrusting = make_adapter(configs.onestop_dossiers(https_onestop), "no-ca-file")
    with pytest.raises(FatalError, match="TLS"):
        untrusting.receive(RecordingInbox())


def test_verification_off_is_possible_but_warned_about(
    make_adapter: Make, https_onestop: OneStopSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        adapter = make_adapter(configs.onestop_dossiers(https_onestop, verify_tls=False))
    assert "TLS verification is off" in caplog.text
    assert adapter.receive(RecordingInbox()) == 1
    with pytest.raises(ConfigError, match="ca_file is set but verify_tls is false"):
        make_adapter(configs.onestop_dossiers(https_onestop, verify_tls=False, ca_file="ca.pem"))


def test_a_client_certificate_opens_a_mutual_tls_system(
    make_adapter: Make, mutual_onestop: OneStopSandbox, pki: Pki
) -> None:
    without = make_adapter(configs.onestop_dossiers(mutual_onestop, ca_file=str(pki.ca)))
    with pytest.raises(FatalError, match="client_cert"):
        without.receive(RecordingInbox())
    with_cert = make_adapter(
        configs.onestop_dossiers(
            mutual_onestop,
            ca_file=str(pki.ca),
            client_cert=str(pki.client_cert),
            client_key=str(pki.client_key),
        ),
        "with-cert",
    )
    assert with_cert.receive(RecordingInbox()) == 1


def test_missing_tls_files_are_config_errors(
    make_adapter: Make, https_onestop: OneStopSandbox
) -> None:
    with pytest.raises(ConfigError) as caught:
        make_adapter(
            configs.onestop_dossiers(
                https_onestop, ca_file="nope/ca.pem", client_key="nope/key.pem"
            )
        )
    text = str(caught.value)
    assert "ca_file file" in text and "does not exist" in text
    assert "client_key is set without client_cert" in text
