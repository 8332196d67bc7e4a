"""Where a received document comes from: its sender, and the signature that proves it.

For each document or status the axis hands over, decides:

- the sender: the agency the axis reported. The document's own
  ``From/OrganId`` must say the same; when they differ the axis's word is kept
  and the message is refused (a sender cannot claim another agency's name in
  the document). When the axis reports no sender, the document's is used;
- whether a signature is required: always under ``signature_policy: require``;
  under ``verify-if-present``, for documents whose ``DocumentType/TypeName`` is
  in ``signature_required_for`` (decisions, and what moves money);
- whether the signature stands: intact (:mod:`.signature`), its signer's
  chain reaching a trust anchor (:mod:`.trust`), and the signer bound to the
  sender (:mod:`.binding`). A required signature must pass all three; a
  signature that is there but not required must not be broken or untrusted
  either, and is only left unbound when no binding is configured.

The result is a :class:`Verdict`: the sender, the verified signature, and the
problems that make the bus park the message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from lxml import etree

from lienthong.errors import ConfigError, RejectedError
from lienthong.xml import DEFAULT_MAX_BYTES, parse

from .binding import Binding, fold
from .signature import Policy, SignatureInfo, is_signed, verify_root
from .trust import Trust

#: Document types that always need a trusted signature bound to their sender,
#: unless the endpoint says otherwise: decisions, resolutions, directives, contracts.
DEFAULT_REQUIRED_TYPES = ("Quyết định", "Nghị quyết", "Chỉ thị", "Hợp đồng")


@dataclass
class Verdict:
    """The sender of one received message, its verified signature, and what is wrong."""

    sender: str
    signature: SignatureInfo | None = None
    problems: list[str] = field(default_factory=list)

    def headers(self) -> dict[str, str]:
        """``from``; ``signature`` (trusted or untrusted) and ``signed_by`` when signed."""
        found = {"from": self.sender}
        if self.signature is not None:
            found["signature"] = "trusted" if self.signature.trusted else "untrusted"
            if self.signature.trusted:
                found["signed_by"] = self.signature.subject
        return found


class Provenance:
    """One endpoint's rules for senders and signatures."""

    def __init__(
        self,
        *,
        policy: Policy | str = Policy.VERIFY_IF_PRESENT,
        required_types: Sequence[str] = DEFAULT_REQUIRED_TYPES,
        trust: Trust | None = None,
        binding: Binding | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self.policy = Policy(str(policy).replace("-", "_"))
        self.required_types = {fold(t): t for t in required_types}
        self.trust = trust or Trust()
        self.binding = binding or Binding()
        self.max_bytes = max_bytes
        if self.policy is Policy.REQUIRE:
            problems = []
            if self.trust.empty:
                problems.append(
                    "signature_policy 'require' needs trust_anchors: without them no signer "
                    "can be trusted and every message would be parked. Hint: list the CA roots' "
                    "certificate files under trust_anchors"
                )
            if self.binding.empty:
                problems.append(
                    "signature_policy 'require' needs signer_agencies: without it no signer is "
                    "tied to the agency it signs for and every message would be parked. Hint: "
                    "map each signer's subject (or its O=) to its agency codes"
                )
            if problems:
                raise ConfigError(problems)

    def warnings(self) -> list[str]:
        """What an operator must hear at start: the defences this configuration leaves out."""
        if self.policy is Policy.OFF:
            return [
                "signature_policy is 'off': signatures are not checked at all, so any relay can "
                "change a document and any sender can sign as anyone"
            ]
        found = []
        types = ", ".join(self.required_types.values())
        if self.trust.empty:
            found.append(
                "there are no trust_anchors: a signature proves only that the document is intact, "
                "not who signed it, so any self-signed certificate passes as an untrusted "
                f"signature, and documents that require one ({types}) are parked until the CA "
                "roots are configured"
            )
        elif self.trust.crls is None:
            found.append(
                "there are no crl_files: a revoked signing certificate is still trusted. Hint: "
                "fetch the CAs' CRLs regularly and list them under crl_files"
            )
        if self.binding.empty:
            found.append(
                "signer_agencies is empty: a trusted signer is not tied to the agency it signs "
                f"for, so documents that require a signature ({types}) are parked, and others "
                "are accepted whoever of the CA's holders signed them"
            )
        return found

    def required(self, type_name: str | None) -> bool:
        return self.policy is Policy.REQUIRE or fold(type_name or "") in self.required_types

    def check(
        self,
        body: bytes | etree._Element,
        *,
        axis_sender: str,
        document_sender: str,
        type_name: str | None = None,
    ) -> Verdict:
        """The sender and signature of one message; refusals are in ``Verdict.problems``.

        ``body`` is the message's bytes or its parsed root element (left as it was).
        Raises ``TransientError`` when revocation cannot be checked now (see :mod:`.trust`).
        """
        verdict = Verdict(axis_sender or document_sender)
        if axis_sender and document_sender and axis_sender != document_sender:
            verdict.problems.append(
                f"sender mismatch: the document's From/OrganId is {document_sender!r} but the "
                f"axis reports the sender {axis_sender!r}; the axis's word is kept. Hint: a "
                "system sends only as its own agency; ask the sender to fix its From"
            )
        if self.policy is Policy.OFF:
            return verdict
        required = self.required(type_name)
        why = (
            "the endpoint's policy requires a signed message"
            if self.policy is Policy.REQUIRE
            else f"a '{type_name}' requires a signed message (signature_required_for)"
        )
        try:
            root = (
                parse(body, max_bytes=self.max_bytes).getroot() if isinstance(body, bytes) else body
            )
        except RejectedError as exc:
            verdict.problems.append(str(exc))
            return verdict
        signed = is_signed(root)
        if required and not signed:
            verdict.problems.append(
                f"signature missing: {why} and this one carries none. Hint: ask the sender to "
                "sign and re-send; a signature stripped on the way is refused the same"
            )
            return verdict
        if not signed:
            return verdict
        try:
            verdict.signature = verify_root(root, trust=self.trust)
        except RejectedError as exc:
            verdict.problems.append(str(exc))
            return verdict
        info = verdict.signature
        if info is None:
            return verdict
        if not info.trusted:
            if required:
                verdict.problems.append(
                    f"signature untrusted: {why}, and signer {info.subject!r} cannot be trusted "
                    "without trust_anchors. Hint: configure the CA roots as trust_anchors"
                )
            return verdict
        if not verdict.sender:
            verdict.problems.append(
                f"signature not bound: the message names no sender for signer {info.subject!r} "
                "to sign for. Hint: the sender must fill From/OrganId"
            )
        elif not self.binding.empty:
            try:
                self.binding.check(info.certificate, verdict.sender)
            except RejectedError as exc:
                verdict.problems.append(f"signature not bound: {exc}")
        elif required:
            verdict.problems.append(
                f"signature not bound: {why} from a signer tied to the sender, and "
                f"signer_agencies is empty, so nothing says {info.subject!r} may sign for "
                f"{verdict.sender!r}. Hint: map signers' subjects to agency codes under "
                "signer_agencies"
            )
        return verdict
