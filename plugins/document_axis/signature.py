"""XML signatures on edXML: sign, verify, and decide by policy.

Features:
- enveloped XMLDSig placed inside ``edXMLHeader``, in the shape seen on the
  axis: ``<Signature xmlns="http://www.w3.org/2000/09/xmldsig#">``,
  ``Reference URI=""`` with the enveloped-signature and C14N 1.0 transforms,
  C14N 1.0 for ``SignedInfo``, ``KeyInfo/X509Data/X509Certificate``;
- RSA-SHA256 (default), RSA-SHA512, and RSA-SHA1 (still used by senders on the
  axis, so it is verified and can be produced for receivers that need it);
- verification restricted to exactly one signature, in ``edXMLHeader``, over the
  whole document (``URI=""``), with only enveloped and C14N transforms, so no
  wrapping trick can make a signature over one part vouch for another;
- interoperable with xmlsec1 (the reference XMLDSig implementation) both ways,
  which the tests check. The crypto is ``cryptography``; the XMLDSig steps are
  written here because signxml relies on lxml's subtree C14N, which the
  libxml2 bundled with lxml 6 gets wrong for the axis's unprefixed
  ``<Signature xmlns=...>`` (see :func:`c14n_subtree`);
- the signer is the certificate in ``KeyInfo`` whose key made the signature;
  the others it carries are intermediates. Whom to trust is :mod:`.trust`'s
  business: with trust anchors, the signer's chain must reach one;
- :class:`Policy`: REQUIRE, VERIFY_IF_PRESENT or OFF. A bad signature is always
  a rejection.

Keys: :func:`load_key` reads PEM (key and certificate in one file or two) or
PKCS#12, the password coming as a :class:`lienthong.adapter.Secret`.
"""

from __future__ import annotations

import base64
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from lxml import etree
from lxml.builder import ElementMaker

from lienthong.adapter import Secret
from lienthong.errors import ConfigError, RejectedError
from lienthong.xml import DEFAULT_MAX_BYTES

from .edxml import _DECLARATION, DSIG_NS, q, root_of
from .trust import Trust

_DS = f"{{{DSIG_NS}}}"
C14N_1_0 = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"

# name -> (SignatureMethod URI, DigestMethod URI, hash)
ALGORITHMS: dict[str, tuple[str, str, type[hashes.HashAlgorithm]]] = {
    "rsa-sha256": (
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
        "http://www.w3.org/2001/04/xmlenc#sha256",
        hashes.SHA256,
    ),
    "rsa-sha512": (
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
        "http://www.w3.org/2001/04/xmlenc#sha512",
        hashes.SHA512,
    ),
    "rsa-sha1": (
        "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
        "http://www.w3.org/2000/09/xmldsig#sha1",
        hashes.SHA1,
    ),
}
_NAMES = {uri: name for name, (uri, _, _) in ALGORITHMS.items()}
_DIGESTS = {digest: hash_type for _, digest, hash_type in ALGORITHMS.values()}
#: Most certificates a signature's KeyInfo may carry: the signer's and its CAs'.
MAX_CERTIFICATES = 8
C14N_ALGORITHMS = frozenset(
    {C14N_1_0, C14N_1_0 + "#WithComments", EXC_C14N, EXC_C14N + "WithComments"}
)


class Policy(StrEnum):
    """What the bus does about signatures on incoming edXML."""

    REQUIRE = "require"
    VERIFY_IF_PRESENT = "verify_if_present"
    OFF = "off"


@dataclass(frozen=True)
class KeyMaterial:
    """An RSA private key with its certificate (and any chain to add to KeyInfo)."""

    private_key: rsa.RSAPrivateKey
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()

    def __repr__(self) -> str:
        return f"KeyMaterial(subject={self.certificate.subject.rfc4514_string()!r})"


def throwaway_key(common_name: str, *, days: int = 30) -> KeyMaterial:
    """A fresh RSA key with a self-signed certificate: for tests, demos and benchmarks only."""
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    return KeyMaterial(key, certificate)


@dataclass(frozen=True)
class SignatureInfo:
    """What a valid signature says about who signed and how."""

    subject: str
    issuer: str
    serial_number: int
    algorithm: str
    not_valid_after: datetime
    trusted: bool
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "issuer": self.issuer,
            "serial_number": str(self.serial_number),
            "algorithm": self.algorithm,
            "not_valid_after": self.not_valid_after.isoformat(),
            "trusted": self.trusted,
        }


# ---------------------------------------------------------------- keys


def _pem_or_path(source: str | bytes | Path, what: str) -> bytes:
    if isinstance(source, bytes):
        return source
    if isinstance(source, str) and "-----BEGIN" in source:
        return source.encode("ascii")
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        raise ConfigError(
            [
                f"{what} '{source}' cannot be read: {exc.strerror}. "
                "Hint: check the path and permissions."
            ]
        ) from exc


def load_key(
    path_or_pem: str | bytes | Path,
    password: Secret | None = None,
    *,
    cert: str | bytes | Path | None = None,
) -> KeyMaterial:
    """Load a signing key and its certificate from PEM (one file or ``cert`` apart) or PKCS#12."""
    data = _pem_or_path(path_or_pem, "signing key")
    secret = password.reveal().encode("utf-8") if password is not None else None
    if isinstance(path_or_pem, bytes) or "-----BEGIN" in str(path_or_pem):
        where = "(given inline)"
    else:
        where = f"'{path_or_pem!s}'"
    certificates: list[x509.Certificate] = []
    try:
        if b"-----BEGIN" in data:
            key: Any = serialization.load_pem_private_key(data, password=secret)
            if b"CERTIFICATE-----" in data:
                certificates = x509.load_pem_x509_certificates(data)
        else:
            key, leaf, extra = pkcs12.load_key_and_certificates(data, secret)
            certificates = ([leaf] if leaf is not None else []) + list(extra)
        if cert is not None:
            certificates += x509.load_pem_x509_certificates(_pem_or_path(cert, "certificate"))
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        hint = (
            "give the password with --password-env or the endpoint's key_password"
            if "password" in str(exc).lower()
            else "expected a PEM private key (with its certificate) or a PKCS#12 (.p12/.pfx) file"
        )
        raise ConfigError(
            [f"signing key {where}: cannot be loaded ({exc}). Hint: {hint}."]
        ) from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError(
            [
                f"signing key {where}: is a {type(key).__name__}, not RSA. "
                "Hint: the axis uses RSA keys."
            ]
        )
    public = key.public_key().public_numbers()
    matching = [c for c in certificates if _public_numbers(c) == public]
    if not matching:
        raise ConfigError(
            [
                f"signing key {where}: none of the {len(certificates)} certificate(s) found "
                "matches this key. "
                "Hint: put the certificate in the same PEM file or pass it with --cert."
            ]
        )
    leaf_cert = matching[0]
    chain = tuple(c for c in certificates if c is not leaf_cert)
    return KeyMaterial(private_key=key, certificate=leaf_cert, chain=chain)


def _public_numbers(certificate: x509.Certificate) -> Any:
    public = certificate.public_key()
    return public.public_numbers() if isinstance(public, rsa.RSAPublicKey) else None


# ---------------------------------------------------------------- signing


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _existing(header: etree._Element) -> list[etree._Element]:
    return [c for c in header if c.tag in (_DS + "Signature", q("Signature"))]


def sign(
    data: bytes,
    key: KeyMaterial,
    algorithm: str = "rsa-sha256",
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> bytes:
    """Return ``data`` with an enveloped signature at the end of ``edXMLHeader``.

    Any signature already in ``edXMLHeader`` (the vendor samples carry a
    placeholder) is replaced: the format has room for one.
    """
    if algorithm not in ALGORITHMS:
        raise ConfigError(
            [
                f"signature algorithm {algorithm!r} is not supported. "
                f"Hint: use one of {', '.join(ALGORITHMS)}."
            ]
        )
    method, digest_method, hash_type = ALGORITHMS[algorithm]
    root = root_of(data, max_bytes=max_bytes)
    header = root.find(f"{q('edXMLEnvelope')}/{q('edXMLHeader')}")
    if header is None:
        raise RejectedError("cannot sign: the message has no edXMLEnvelope/edXMLHeader.")
    for old in _existing(header):
        header.remove(old)

    E = ElementMaker(namespace=DSIG_NS, nsmap={None: DSIG_NS})
    digest_value = E.DigestValue()
    signed_info = E.SignedInfo(
        E.CanonicalizationMethod(Algorithm=C14N_1_0),
        E.SignatureMethod(Algorithm=method),
        E.Reference(
            E.Transforms(E.Transform(Algorithm=ENVELOPED), E.Transform(Algorithm=C14N_1_0)),
            E.DigestMethod(Algorithm=digest_method),
            digest_value,
            URI="",
        ),
    )
    value = E.SignatureValue()
    certificates = [key.certificate, *key.chain]
    x509_data = E.X509Data(
        *[E.X509Certificate(_b64(c.public_bytes(serialization.Encoding.DER))) for c in certificates]
    )
    signature = E.Signature(signed_info, value, E.KeyInfo(x509_data))
    _place(header, signature)
    digest = hashes.Hash(hash_type())
    digest.update(_enveloped_c14n(root, signature))
    digest_value.text = _b64(digest.finalize())
    canonical = c14n_subtree(signed_info, C14N_1_0)
    value.text = _b64(key.private_key.sign(canonical, padding.PKCS1v15(), hash_type()))
    return _DECLARATION + etree.tostring(root, encoding="UTF-8") + b"\n"


def _place(header: etree._Element, signature: etree._Element) -> None:
    """Append the signature as the header's last child, indented like its siblings."""
    children = list(header)
    if children:
        signature.tail = children[-1].tail
        sibling_indent = header.text if header.text and not header.text.strip() else None
        children[-1].tail = sibling_indent
    header.append(signature)


def c14n_subtree(element: etree._Element, algorithm: str) -> bytes:
    """Canonicalise one element with the namespaces in scope where it stands.

    libxml2 2.14 (bundled with lxml 6) writes a spurious ``xmlns=""`` into the
    C14N of a subtree whose elements use a default namespace, the very shape of
    the axis's ``<Signature xmlns="...xmldsig#">``. Serialising the element
    (lxml declares every namespace in scope on it) and canonicalising that as a
    whole document gives the correct bytes.
    """
    standalone = etree.fromstring(etree.tostring(element, with_tail=False))
    return etree.tostring(
        standalone.getroottree(),
        method="c14n",
        exclusive=algorithm.startswith(EXC_C14N),
        with_comments=algorithm.endswith("#WithComments"),
    )


def _enveloped_c14n(
    root: etree._Element, signature: etree._Element, algorithm: str = C14N_1_0
) -> bytes:
    """The document as the enveloped-signature transform sees it: signature out, its tail kept."""
    parent = signature.getparent()
    assert parent is not None
    index = parent.index(signature)
    previous = signature.getprevious()
    tail = signature.tail or ""
    saved = previous.tail if previous is not None else parent.text
    parent.remove(signature)
    if previous is not None:
        previous.tail = (saved or "") + tail
    else:
        parent.text = (saved or "") + tail
    try:
        # URI="" leaves comments out whatever the transform says (XMLDSig 4.4.3.2).
        return etree.tostring(
            root.getroottree(),
            method="c14n",
            exclusive=algorithm.startswith(EXC_C14N),
            with_comments=False,
        )
    finally:
        if previous is not None:
            previous.tail = saved
        else:
            parent.text = saved
        parent.insert(index, signature)
        signature.tail = tail or None


# ---------------------------------------------------------------- verifying


def _invalid(reason: str, hint: str) -> RejectedError:
    return RejectedError(f"signature invalid: {reason}. Hint: {hint}")


def find_signatures(root: etree._Element) -> tuple[list[etree._Element], list[etree._Element]]:
    """XMLDSig signatures anywhere, and edXML-namespace ``Signature`` elements in the header."""
    dsig = list(root.iter(_DS + "Signature"))
    header = root.find(f"{q('edXMLEnvelope')}/{q('edXMLHeader')}")
    plain = [] if header is None else [c for c in header if c.tag == q("Signature")]
    return dsig, plain


def has_signature(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> bool:
    """Whether the message carries any signature, valid or not."""
    return is_signed(root_of(data, max_bytes=max_bytes))


def is_signed(root: etree._Element) -> bool:
    """Whether a parsed message carries any signature, valid or not."""
    dsig, plain = find_signatures(root)
    return bool(dsig or plain)


def verify(
    data: bytes,
    *,
    trust: Trust | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    at: datetime | None = None,
) -> SignatureInfo:
    """Check the one signature in ``edXMLHeader`` covers the whole message and is intact.

    The signer is the certificate in ``KeyInfo`` whose key made the signature;
    the others are intermediates it carries. With a ``trust`` that has anchors,
    the signer's chain must reach one of them (see :mod:`.trust`) and
    ``SignatureInfo.trusted`` is true; without, only integrity and the signer's
    validity dates are checked. ``at`` checks validity at that time instead of now.
    Raises :class:`RejectedError` ("signature invalid: ..." or "signature
    untrusted: ...") on any failure.
    """
    return verify_root(root_of(data, max_bytes=max_bytes), trust=trust, at=at)


def verify_root(
    root: etree._Element, *, trust: Trust | None = None, at: datetime | None = None
) -> SignatureInfo:
    """:func:`verify` on an already parsed message (the tree is left as it was)."""
    dsig, plain = find_signatures(root)
    if not dsig and plain:
        raise _invalid(
            "edXMLHeader holds a <Signature> in the edXML namespace, not an XMLDSig "
            f"signature in {DSIG_NS!r}, so it cannot be verified",
            "the sender must sign with XMLDSig, or the endpoint must use signature policy 'off'",
        )
    if not dsig:
        raise RejectedError(
            "signature missing: the message carries no XMLDSig signature. "
            "Hint: ask the sender to sign, or relax the endpoint's signature policy."
        )
    if len(dsig) > 1:
        raise _invalid(
            f"the message holds {len(dsig)} signatures", "exactly one, in edXMLHeader, is allowed"
        )
    signature = dsig[0]
    parent = signature.getparent()
    envelope = root.find(q("edXMLEnvelope"))
    if parent is None or parent.tag != q("edXMLHeader") or parent.getparent() is not envelope:
        where = etree.QName(parent).localname if parent is not None else "nothing"
        raise _invalid(
            f"the signature sits in {where}, not in edXMLEnvelope/edXMLHeader",
            "an edXML signature is enveloped in edXMLHeader",
        )
    references = signature.findall(f"{_DS}SignedInfo/{_DS}Reference")
    uris = [r.get("URI") for r in references]
    if uris != [""]:
        raise _invalid(
            f'it must have one Reference with URI="" (the whole message), found {uris}',
            "the axis signs the whole document, enveloped",
        )
    transforms = [t.get("Algorithm") for t in references[0].iter(_DS + "Transform")]
    if ENVELOPED not in transforms:
        raise _invalid("its Reference lacks the enveloped-signature transform", "sign enveloped")
    certificates = _certificates(signature)
    method_uri = signature.find(f"{_DS}SignedInfo/{_DS}SignatureMethod")
    algorithm = _NAMES.get(method_uri.get("Algorithm", "") if method_uri is not None else "")
    if algorithm is None:
        raise _invalid(
            f"SignatureMethod {method_uri.get('Algorithm') if method_uri is not None else None!r} "
            "is not supported",
            f"use one of {', '.join(ALGORITHMS)}",
        )
    hash_type = ALGORITHMS[algorithm][2]
    signed_info = signature.find(_DS + "SignedInfo")
    assert signed_info is not None  # the Reference was found inside it
    c14n_method = signed_info.find(_DS + "CanonicalizationMethod")
    c14n_uri = c14n_method.get("Algorithm", "") if c14n_method is not None else ""
    if c14n_uri not in C14N_ALGORITHMS:
        raise _invalid(
            f"CanonicalizationMethod {c14n_uri!r} is not supported",
            "use C14N 1.0 or exclusive C14N",
        )
    reference = references[0]
    c14n_transforms = [t for t in transforms if t != ENVELOPED]
    if any(t not in C14N_ALGORITHMS for t in c14n_transforms) or len(c14n_transforms) > 1:
        raise _invalid(
            f"Reference transforms {transforms} are not allowed",
            "only enveloped-signature and one C14N transform are accepted",
        )
    digest_method = reference.find(_DS + "DigestMethod")
    digest_uri = digest_method.get("Algorithm", "") if digest_method is not None else ""
    digest_hash = _DIGESTS.get(digest_uri)
    if digest_hash is None:
        raise _invalid(
            f"DigestMethod {digest_uri!r} is not supported", "use SHA-256 (or SHA-1, SHA-512)"
        )
    try:
        signature_value = base64.b64decode(
            "".join((signature.findtext(_DS + "SignatureValue") or "").split())
        )
    except ValueError as exc:
        raise _invalid("SignatureValue is not base64", "ask the sender to re-send") from exc
    certificate = _signer_of(
        certificates, signature_value, c14n_subtree(signed_info, c14n_uri), hash_type
    )
    subject = certificate.subject.rfc4514_string()
    digest = hashes.Hash(digest_hash())
    digest.update(
        _enveloped_c14n(root, signature, c14n_transforms[0] if c14n_transforms else C14N_1_0)
    )
    expected = "".join((reference.findtext(_DS + "DigestValue") or "").split())
    if not hmac.compare_digest(_b64(digest.finalize()), expected):
        raise _invalid(
            f"the message was changed after {subject!r} signed it (digest mismatch)",
            "ask the sender to re-send; a hop must not alter a signed message",
        )
    when = at or datetime.now(UTC)
    chain: tuple[x509.Certificate, ...] = ()
    if trust is not None and not trust.empty:
        carried = [c for c in certificates if c is not certificate]
        chain = tuple(trust.chain(certificate, carried, at=when))
    elif not certificate.not_valid_before_utc <= when <= certificate.not_valid_after_utc:
        raise _invalid(
            f"certificate of {subject!r} is valid from {certificate.not_valid_before_utc:%Y-%m-%d} "
            f"to {certificate.not_valid_after_utc:%Y-%m-%d}, not at {when:%Y-%m-%d %H:%M}",
            "the signer must renew the certificate and re-sign",
        )
    return SignatureInfo(
        subject=subject,
        issuer=certificate.issuer.rfc4514_string(),
        serial_number=certificate.serial_number,
        algorithm=algorithm,
        not_valid_after=certificate.not_valid_after_utc,
        trusted=bool(chain),
        certificate=certificate,
        chain=chain,
    )


def _certificates(signature: etree._Element) -> list[x509.Certificate]:
    """The certificates in ``KeyInfo/X509Data``: the signer's and any intermediates it carries."""
    encoded = [
        "".join((e.text or "").split())
        for e in signature.iterfind(f"{_DS}KeyInfo/{_DS}X509Data/{_DS}X509Certificate")
    ]
    encoded = [e for e in encoded if e]
    if not encoded:
        raise _invalid(
            "KeyInfo/X509Data/X509Certificate is missing",
            "the signer's certificate must be included",
        )
    if len(encoded) > MAX_CERTIFICATES:
        raise _invalid(
            f"KeyInfo carries {len(encoded)} certificates",
            f"at most {MAX_CERTIFICATES}: the signer's and its intermediate CAs",
        )
    certificates = []
    for text in encoded:
        try:
            certificates.append(x509.load_der_x509_certificate(base64.b64decode(text)))
        except ValueError as exc:
            raise _invalid(
                f"an X509Certificate cannot be read ({exc})",
                "include the full DER certificate, base64",
            ) from exc
    return certificates


def _signer_of(
    certificates: list[x509.Certificate],
    signature_value: bytes,
    signed_info: bytes,
    hash_type: type[hashes.HashAlgorithm],
) -> x509.Certificate:
    """The certificate whose key made ``signature_value`` over ``signed_info``."""
    for certificate in certificates:
        public_key = certificate.public_key()
        if not isinstance(public_key, rsa.RSAPublicKey):
            continue
        try:
            public_key.verify(signature_value, signed_info, padding.PKCS1v15(), hash_type())
        except (InvalidSignature, ValueError):
            continue
        return certificate
    first = certificates[0].subject.rfc4514_string()
    if not any(isinstance(c.public_key(), rsa.RSAPublicKey) for c in certificates):
        raise _invalid(f"the certificate of {first!r} has no RSA key", "the axis uses RSA keys")
    raise _invalid(
        f"SignatureValue does not match SignedInfo for {first!r}",
        "the signature was altered or made with another key; ask the sender to re-send",
    )


def check_policy(
    data: bytes,
    policy: Policy | str,
    trust: Trust | None = None,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> SignatureInfo | None:
    """Apply a signature policy; ``None`` when nothing was verified.

    OFF does not look at signatures. VERIFY_IF_PRESENT verifies any signature
    there is (the edXML-namespace placeholder of the vendor samples included, which
    cannot pass). REQUIRE also refuses an unsigned message.
    """
    try:
        policy = Policy(policy)
    except ValueError as exc:
        known = ", ".join(p.value for p in Policy)
        raise ConfigError(
            [f"signature policy {policy!r} is unknown. Hint: use one of {known}."]
        ) from exc
    if policy is Policy.OFF:
        return None
    root = root_of(data, max_bytes=max_bytes)
    if not is_signed(root):
        if policy is Policy.REQUIRE:
            raise RejectedError(
                "signature missing: the endpoint's policy requires a signed message and this "
                "one carries none. Hint: ask the sender to sign and re-send; a signature "
                "stripped on the way is refused the same."
            )
        return None
    return verify_root(root, trust=trust)
