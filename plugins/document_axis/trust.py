"""Trust in signers: anchors, the chain from a signer up to one, and revocation.

Features:
- anchors: CA certificates from files (the government's specialised CA roots).
  A certificate that is not a CA (basicConstraints ``cA``) is refused as an
  anchor: a partner's own certificate can never vouch for others;
- chain: built and checked by ``cryptography.x509.verification`` from the
  signer's certificate through intermediates carried in the signature or
  configured, up to an anchor: each signature, validity dates, basicConstraints
  and path length (a leaf cannot act as a CA), ``keyCertSign`` on every CA, no
  unknown critical extension, no SHA-1, RSA keys of 2048 bits or more;
- the signer's own certificate: not a CA, ``keyUsage`` present with
  ``digitalSignature`` or ``nonRepudiation``, and an ``extendedKeyUsage``, when
  present, naming a purpose a document signature fits (:data:`SIGNING_PURPOSES`);
- revocation: CRL files (PEM or DER) from the CAs, re-read when one changes.
  With CRL files configured, every certificate below the anchor must be covered
  by a current CRL its issuer signed; a revoked one is refused. Without them,
  revocation is not checked (the adapter warns at start).

A refused chain raises :class:`RejectedError` naming the signer and the rule.
A CRL that is missing or out of date for a chain's issuer raises
:class:`TransientError`: the document is not at fault, and it waits on the axis
until the CRL file is refreshed.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from lienthong.errors import ConfigError, ConfigProblem, RejectedError, TransientError

log = logging.getLogger(__name__)

#: Extended key usages under which a certificate may sign a document. Signing
#: certificates of the government CA carry clientAuth and emailProtection.
SIGNING_PURPOSES: dict[ObjectIdentifier, str] = {
    ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "emailProtection",
    ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE: "anyExtendedKeyUsage",
    ObjectIdentifier("1.3.6.1.5.5.7.3.36"): "documentSigning",
    ObjectIdentifier("1.3.6.1.4.1.311.10.3.12"): "Microsoft documentSigning",
    ObjectIdentifier("1.2.840.113583.1.1.5"): "Adobe authenticDocumentsTrust",
}

#: Most CAs between a signer and its anchor.
MAX_CHAIN_DEPTH = 6
#: The smallest RSA key trusted to sign (the verifier applies the same to CAs).
MIN_RSA_BITS = 2048


#: Verified chains kept: a province's signers (about two thousand) and their CAs fit.
CHAIN_CACHE_SIZE = 4096


@dataclass(frozen=True)
class _Verified:
    chain: tuple[x509.Certificate, ...]
    valid_from: datetime
    valid_until: datetime


def _key(signer: x509.Certificate, carried: Sequence[x509.Certificate]) -> tuple[bytes, ...]:
    return tuple(c.fingerprint(hashes.SHA256()) for c in (signer, *carried))


def name_of(certificate: x509.Certificate) -> str:
    return certificate.subject.rfc4514_string()


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            [f"{what} '{path}' cannot be read: {exc.strerror}. Hint: check the path."]
        ) from exc


def load_certificates(path: str | Path, what: str = "certificate file") -> list[x509.Certificate]:
    """Every certificate in a PEM file (one or several) or a DER file."""
    path = Path(path)
    data = _read(path, what)
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except ValueError as exc:
        raise ConfigError(
            [f"{what} '{path}' holds no readable certificate ({exc}). Hint: give PEM or DER."]
        ) from exc


def load_crl(path: str | Path) -> x509.CertificateRevocationList:
    """One CRL from a PEM or DER file."""
    path = Path(path)
    data = _read(path, "CRL file")
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except ValueError as exc:
        raise ConfigError(
            [f"CRL file '{path}' cannot be read as a CRL ({exc}). Hint: give PEM or DER."]
        ) from exc


def is_ca(certificate: x509.Certificate) -> bool:
    try:
        return bool(certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


class CrlFiles:
    """CRL files, re-read when one of them changes (operators refresh them from the CAs).

    A file that cannot be read at a later refresh keeps the CRLs read before,
    with a warning: their ``nextUpdate`` still bounds how long they count.
    """

    def __init__(self, paths: Sequence[str | Path]) -> None:
        self.paths = [Path(p) for p in paths]
        self._lock = threading.Lock()
        self._stamp: tuple[Any, ...] | None = None
        self._crls: list[tuple[Path, x509.CertificateRevocationList]] = []
        # Whether each CRL read (by its object's id, while it is held) is signed by an issuer.
        self._signed: dict[tuple[int, bytes], bool] = {}
        self.current()

    def _stat(self) -> tuple[Any, ...]:
        stamps: list[tuple[int, int, int] | None] = []
        for path in self.paths:
            try:
                st = os.stat(path)
                stamps.append((st.st_mtime_ns, st.st_size, st.st_ino))
            except OSError:
                stamps.append(None)
        return tuple(stamps)

    def current(self) -> list[tuple[Path, x509.CertificateRevocationList]]:
        """The CRLs with the file each came from, re-read if a file changed."""
        with self._lock:
            stamp = self._stat()
            if stamp == self._stamp:
                return self._crls
            try:
                crls = [(path, load_crl(path)) for path in self.paths]
            except ConfigError as exc:
                if self._stamp is None:
                    raise
                log.warning("%s; keeping the CRLs read before", exc.problems[0].message)
                return self._crls
            self._stamp, self._crls = stamp, crls
            self._signed = {}
            return crls

    def signed_by(self, crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
        """Whether ``issuer`` signed ``crl``: checked once per CRL read from its file."""
        key = (id(crl), issuer.fingerprint(hashes.SHA256()))
        with self._lock:
            # Keyed by the object's id only while this reader holds it: ids are reused.
            held = any(c is crl for _, c in self._crls)
            known = self._signed.get(key) if held else None
        if known is not None:
            return known
        try:
            valid = bool(crl.is_signature_valid(issuer.public_key()))  # type: ignore[arg-type]
        except (TypeError, InvalidSignature):
            valid = False
        with self._lock:
            if any(c is crl for _, c in self._crls):
                self._signed[key] = valid
        return valid


def _signing_key_usage(policy: Any, certificate: x509.Certificate, usage: x509.KeyUsage) -> None:
    if not (usage.digital_signature or usage.content_commitment):
        raise ValueError(
            "its keyUsage allows neither digitalSignature nor nonRepudiation, so it may not "
            "sign documents"
        )


def _signing_purpose(
    policy: Any, certificate: x509.Certificate, usage: x509.ExtendedKeyUsage | None
) -> None:
    if usage is None or any(oid in SIGNING_PURPOSES for oid in usage):
        return
    shown = ", ".join(oid.dotted_string for oid in usage)
    raise ValueError(
        f"its extendedKeyUsage ({shown}) names no document-signing purpose "
        f"({', '.join(SIGNING_PURPOSES.values())})"
    )


def _not_a_ca(
    policy: Any, certificate: x509.Certificate, constraints: x509.BasicConstraints | None
) -> None:
    if constraints is not None and constraints.ca:
        raise ValueError(
            "it is a CA certificate; documents are signed with a person's or an "
            "agency's own certificate, not a CA's"
        )


class Trust:
    """The anchors, configured intermediates and CRLs that decide whether a signer is trusted."""

    def __init__(
        self,
        anchors: Iterable[x509.Certificate] = (),
        intermediates: Iterable[x509.Certificate] = (),
        crls: CrlFiles | None = None,
    ) -> None:
        self.anchors = list(anchors)
        not_ca = [name_of(c) for c in self.anchors if not is_ca(c)]
        if not_ca:
            raise ConfigError(
                [
                    f"trust anchor {n!r} is not a CA certificate (no basicConstraints cA), so it "
                    "cannot vouch for any signer. Hint: give the CA root that issued it"
                    for n in not_ca
                ]
            )
        self.intermediates = list(intermediates)
        self.crls = crls
        # Chains already verified, by signer and carried certificates: a chain holds for as
        # long as every certificate in it is valid, so only revocation is checked again.
        self._chains: OrderedDict[tuple[bytes, ...], _Verified] = OrderedDict()
        self._chains_lock = threading.Lock()

    @classmethod
    def from_files(
        cls,
        anchors: Sequence[str | Path],
        intermediates: Sequence[str | Path] = (),
        crl_files: Sequence[str | Path] = (),
    ) -> Trust:
        """Load anchors, intermediates and CRLs from files; every problem at once.

        Each problem's location is the option it came from (``trust_anchors``,
        ``intermediate_certs``, ``crl_files``), for the caller to place.
        """
        problems: list[ConfigProblem] = []

        def note(option: str, exc: ConfigError) -> None:
            problems.extend(ConfigProblem(option, p.message) for p in exc.problems)

        loaded: dict[str, list[x509.Certificate]] = {"trust_anchors": [], "intermediate_certs": []}
        for option, what, paths in (
            ("trust_anchors", "trust anchor", anchors),
            ("intermediate_certs", "intermediate certificate", intermediates),
        ):
            for path in paths:
                try:
                    loaded[option].extend(load_certificates(path, what))
                except ConfigError as exc:
                    note(option, exc)
        crls = None
        try:
            crls = CrlFiles(crl_files) if crl_files else None
        except ConfigError as exc:
            note("crl_files", exc)
        try:
            trust = cls(loaded["trust_anchors"], loaded["intermediate_certs"], crls)
        except ConfigError as exc:
            note("trust_anchors", exc)
        if problems:
            raise ConfigError(problems)
        return trust

    @property
    def empty(self) -> bool:
        return not self.anchors

    def chain(
        self,
        signer: x509.Certificate,
        carried: Sequence[x509.Certificate] = (),
        *,
        at: datetime | None = None,
    ) -> list[x509.Certificate]:
        """The verified chain, signer first and anchor last; raises saying why there is none."""
        when = at or datetime.now(UTC)
        subject = name_of(signer)
        if self.empty:
            raise RejectedError(
                f"signature untrusted: signer {subject!r} cannot be checked, there are no trust "
                "anchors. Hint: configure the CA roots as trust_anchors"
            )
        if not signer.not_valid_before_utc <= when <= signer.not_valid_after_utc:
            raise RejectedError(
                f"signature untrusted: the certificate of {subject!r} is valid from "
                f"{signer.not_valid_before_utc:%Y-%m-%d} to {signer.not_valid_after_utc:%Y-%m-%d}, "
                f"not at {when:%Y-%m-%d %H:%M} UTC. Hint: the signer must renew the certificate "
                "and re-sign"
            )
        key = signer.public_key()
        if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
            raise RejectedError(
                f"signature untrusted: the key of {subject!r} is RSA-{key.key_size}, under the "
                f"{MIN_RSA_BITS} bits a signing key needs. Hint: the signer must get a new "
                "certificate with a stronger key"
            )
        chain = self._verified(signer, carried, when)
        if chain is None:
            chain = self._verify(signer, carried, when)
        self._check_revocation(chain, when)
        return chain

    def _verified(
        self, signer: x509.Certificate, carried: Sequence[x509.Certificate], when: datetime
    ) -> list[x509.Certificate] | None:
        key = _key(signer, carried)
        with self._chains_lock:
            found = self._chains.get(key)
            if found is None or not found.valid_from <= when <= found.valid_until:
                return None
            self._chains.move_to_end(key)
            return list(found.chain)

    def _verify(
        self, signer: x509.Certificate, carried: Sequence[x509.Certificate], when: datetime
    ) -> list[x509.Certificate]:
        subject = name_of(signer)
        signer_policy = (
            ExtensionPolicy.permit_all()
            .require_present(x509.KeyUsage, Criticality.AGNOSTIC, _signing_key_usage)
            .may_be_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, _signing_purpose)
            .may_be_present(x509.BasicConstraints, Criticality.AGNOSTIC, _not_a_ca)
        )
        verifier = (
            PolicyBuilder()
            .store(Store(self.anchors))
            .time(when)
            .max_chain_depth(MAX_CHAIN_DEPTH)
            .extension_policies(
                ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=signer_policy
            )
            .build_client_verifier()
        )
        try:
            chain = list(verifier.verify(signer, [*carried, *self.intermediates]).chain)
        except VerificationError as exc:
            raise RejectedError(
                f"signature untrusted: no valid chain from signer {subject!r} (issuer "
                f"{signer.issuer.rfc4514_string()!r}) to a trust anchor: {_why(exc)}. "
                f"Hint: {_hint(exc)}"
            ) from exc
        verified = _Verified(
            tuple(chain),
            max(c.not_valid_before_utc for c in chain),
            min(c.not_valid_after_utc for c in chain),
        )
        with self._chains_lock:
            self._chains[_key(signer, carried)] = verified
            while len(self._chains) > CHAIN_CACHE_SIZE:
                self._chains.popitem(last=False)
        return chain

    def _check_revocation(self, chain: list[x509.Certificate], when: datetime) -> None:
        if self.crls is None:
            return
        crls = self.crls.current()
        for certificate, issuer in zip(chain, chain[1:], strict=False):
            path, crl = _crl_of(issuer, crls, when, self.crls)
            entry = crl.get_revoked_certificate_by_serial_number(certificate.serial_number)
            if entry is not None and entry.revocation_date_utc <= when:
                reason = _reason(entry)
                raise RejectedError(
                    f"signature untrusted: the certificate of {name_of(certificate)!r} (serial "
                    f"{certificate.serial_number:x}) was revoked on "
                    f"{entry.revocation_date_utc:%Y-%m-%d %H:%M} UTC{reason} (CRL '{path}'). "
                    "Hint: the signer must get a new certificate and re-sign"
                )


def _crl_of(
    issuer: x509.Certificate,
    crls: list[tuple[Path, x509.CertificateRevocationList]],
    when: datetime,
    files: CrlFiles,
) -> tuple[Path, x509.CertificateRevocationList]:
    """The current CRL ``issuer`` signed; TransientError when there is none."""
    stale: list[str] = []
    for path, crl in crls:
        if crl.issuer != issuer.subject or not files.signed_by(crl, issuer):
            continue
        next_update = crl.next_update_utc
        if crl.last_update_utc > when or (next_update is not None and next_update < when):
            shown = f"{next_update:%Y-%m-%d %H:%M} UTC" if next_update else "?"
            stale.append(f"'{path}' (valid until {shown})")
            continue
        return path, crl
    issuer_name = name_of(issuer)
    if stale:
        found = f"its CRL {', '.join(stale)} is out of date"
    else:
        found = "none of the crl_files is a CRL it signed"
    raise TransientError(
        f"cannot check revocation under {issuer_name!r}: {found}. Hint: refresh the CRL file "
        "from the CA (it is re-read when it changes); documents wait on the axis until then"
    )


def _reason(entry: x509.RevokedCertificate) -> str:
    try:
        reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    except x509.ExtensionNotFound:
        return ""
    return f" ({reason.value})"


def _why(exc: VerificationError) -> str:
    text = str(exc).removeprefix("validation failed: ")
    text = text.removeprefix("candidates exhausted: ")
    text = text.replace("Python extension validator failed: ValueError: ", "")
    if "all candidates exhausted with no interior errors" in text:
        return "its issuer is not a trust anchor, nor among the intermediates"
    if "Forbidden signature algorithm" in text:
        return "a certificate in the chain is signed with an algorithm no longer allowed (SHA-1)"
    return text


def _hint(exc: VerificationError) -> str:
    text = str(exc)
    if "no interior errors" in text:
        return (
            "the signature must carry the intermediate CA certificates, or configure them as "
            "intermediate_certs; a signer outside the configured CAs is not trusted"
        )
    if "not valid at validation time" in text:
        return (
            "a certificate in the chain has expired or is not valid yet: the CA must renew "
            "its intermediate, or the signer re-sign under a current one"
        )
    return "the signer's certificate or its CA does not meet the rules for signing documents"
