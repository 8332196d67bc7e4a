"""A SANDBOX certification authority: root, intermediate, signing certificates and CRLs.

For tests, demos and benchmarks only, as :func:`.signature.throwaway_key` is:
the shape of the government's specialised CA (a root, an intermediate that
issues signing certificates carrying the agency in ``O``), with keys made on
the spot and never kept. Also makes what a real CA must never issue (a leaf
acting as a CA, a certificate without keyUsage), so tests can show it refused.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from .signature import KeyMaterial

_NO_USAGE = dict.fromkeys(
    (
        "digital_signature",
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "key_cert_sign",
        "crl_sign",
        "encipher_only",
        "decipher_only",
    ),
    False,
)
#: What the government CA puts in a signing certificate.
SIGNING_USAGE = x509.KeyUsage(
    **{**_NO_USAGE, "digital_signature": True, "content_commitment": True}
)
SIGNING_PURPOSES = (ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.EMAIL_PROTECTION)
CA_USAGE = x509.KeyUsage(**{**_NO_USAGE, "key_cert_sign": True, "crl_sign": True})


def subject_name(subject: str | x509.Name) -> x509.Name:
    """``"CN=...,O=..."`` (RFC 4514) or a bare common name, as an X.509 name."""
    if isinstance(subject, x509.Name):
        return subject
    if "=" in subject:
        return x509.Name.from_rfc4514_string(subject)
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class _Revoked:
    serial: int
    when: datetime
    reason: x509.ReasonFlags


class SandboxCA:
    """A throwaway root CA with one intermediate (or none) that issues signing certificates."""

    def __init__(
        self,
        name: str = "CN=SANDBOX Root CA,O=lienthong sandbox,C=VN",
        *,
        intermediate: str | None = "CN=SANDBOX Signing CA,O=lienthong sandbox,C=VN",
        days: int = 3650,
    ) -> None:
        self.root = self.issue(name, issuer=None, ca=True, days=days)
        self.intermediate = (
            self.issue(intermediate, issuer=self.root, ca=True, days=days) if intermediate else None
        )
        self._revoked: dict[x509.Name, list[_Revoked]] = {}

    @property
    def issuing(self) -> KeyMaterial:
        """The CA that signs the signing certificates: the intermediate, or the root."""
        return self.intermediate or self.root

    def issue(
        self,
        subject: str | x509.Name,
        *,
        issuer: KeyMaterial | None | str = "issuing",
        ca: bool | None = False,
        key_usage: x509.KeyUsage | None | str = "default",
        purposes: Sequence[ObjectIdentifier] | None = SIGNING_PURPOSES,
        not_before: datetime | None = None,
        days: int = 365,
        key: rsa.RSAPrivateKey | None = None,
    ) -> KeyMaterial:
        """A certificate for ``subject``, issued by ``issuer`` (``None``: self-signed).

        ``ca`` sets basicConstraints (``None`` leaves it out); ``key_usage`` is
        the CA or signing default unless given (``None`` leaves it out);
        ``purposes`` is the extendedKeyUsage (``None`` leaves it out).
        """
        if issuer == "issuing":
            issuer = self.issuing
        assert issuer is None or isinstance(issuer, KeyMaterial)
        private = key or new_key()
        name = subject_name(subject)
        signer_key = issuer.private_key if issuer else private
        start = not_before or datetime.now(UTC) - timedelta(days=1)
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer.certificate.subject if issuer else name)
            .public_key(private.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + timedelta(days=days))
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(private.public_key()), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_key.public_key()),
                critical=False,
            )
        )
        if ca is not None:
            builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=None), True)
        if key_usage == "default":
            key_usage = CA_USAGE if ca else SIGNING_USAGE
        if isinstance(key_usage, x509.KeyUsage):
            builder = builder.add_extension(key_usage, critical=True)
        if purposes is not None and not ca:
            builder = builder.add_extension(x509.ExtendedKeyUsage(list(purposes)), critical=False)
        certificate = builder.sign(signer_key, hashes.SHA256())
        chain = (issuer.certificate, *issuer.chain) if issuer and issuer is not self.root else ()
        return KeyMaterial(private, certificate, chain)

    def revoke(
        self,
        certificate: x509.Certificate,
        *,
        when: datetime | None = None,
        reason: x509.ReasonFlags = x509.ReasonFlags.key_compromise,
    ) -> None:
        """Put ``certificate`` on its issuer's next CRL."""
        entry = _Revoked(certificate.serial_number, when or datetime.now(UTC), reason)
        self._revoked.setdefault(certificate.issuer, []).append(entry)

    def crl(
        self,
        issuer: KeyMaterial | None = None,
        *,
        last_update: datetime | None = None,
        days: int = 7,
    ) -> x509.CertificateRevocationList:
        """The CRL of ``issuer`` (default: the issuing CA), valid ``days`` from ``last_update``."""
        issuer = issuer or self.issuing
        start = last_update or datetime.now(UTC) - timedelta(hours=1)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(issuer.certificate.subject)
            .last_update(start)
            .next_update(start + timedelta(days=days))
        )
        for entry in self._revoked.get(issuer.certificate.subject, []):
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(entry.serial)
                .revocation_date(entry.when)
                .add_extension(x509.CRLReason(entry.reason), critical=False)
                .build()
            )
        return builder.sign(issuer.private_key, hashes.SHA256())

    def write(self, folder: Path, *, crl_days: int = 7) -> dict[str, Path]:
        """The root (``root.pem``), intermediate and current CRLs as files under ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        files = {"root": folder / "root.pem", "root_crl": folder / "root.crl"}
        files["root"].write_bytes(pem(self.root.certificate))
        files["root_crl"].write_bytes(pem(self.crl(self.root, days=crl_days)))
        if self.intermediate is not None:
            files["intermediate"] = folder / "intermediate.pem"
            files["intermediate_crl"] = folder / "intermediate.crl"
            files["intermediate"].write_bytes(pem(self.intermediate.certificate))
            files["intermediate_crl"].write_bytes(pem(self.crl(self.intermediate, days=crl_days)))
        return files


def pem(item: x509.Certificate | x509.CertificateRevocationList) -> bytes:
    return item.public_bytes(serialization.Encoding.PEM)


def write_key(material: KeyMaterial, key_file: Path, cert_file: Path) -> None:
    """The private key (mode 0600) and the certificate with its chain, as PEM files."""
    data = material.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    key_file.unlink(missing_ok=True)
    with os.fdopen(os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
        out.write(data)
    cert_file.write_bytes(b"".join(pem(c) for c in (material.certificate, *material.chain)))
