"""Which agencies a signer may sign for: certificate subjects bound to agency codes.

A certificate chain says who signed; it does not say for which agency. The
binding does: each entry is a subject pattern (RFC 4514, as ``openssl x509
-subject -nameopt RFC2253`` prints it) and the agency codes its holders sign
for. A pattern matches a subject holding every attribute it names with that
value (compared after Unicode NFC, case and spacing folded), so
``"O=Sở Y tế,L=Đắk Lắk"`` covers every certificate the CA issued to that
department, and a full subject covers one person.

```yaml
signer_agencies:
  "O=UBND tỉnh Đắk Lắk,C=VN": [000.00.00.H15]
  "CN=Nguyễn Văn A,O=Sở Tài chính,C=VN": [000.00.01.H15, 000.00.02.H15]
```

``"*"`` as a code lets a pattern sign for any agency: it switches the binding
off for those signers and is meant for tests only.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from typing import Any

from cryptography import x509

from lienthong.errors import ConfigError, ConfigProblem, RejectedError

ANY_AGENCY = "*"
#: Where problems are reported: the adapter option, which the caller places.
OPTION = "signer_agencies"


def fold(value: Any) -> str:
    """Text as patterns compare it: Unicode NFC, case folded, spacing collapsed."""
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return " ".join(unicodedata.normalize("NFC", text).casefold().split())


class Binding:
    """The configured subject patterns and the agency codes each may sign for."""

    def __init__(self, entries: Mapping[str, Any] | None = None) -> None:
        self.entries: list[tuple[str, frozenset[tuple[str, str]], frozenset[str]]] = []
        problems: list[ConfigProblem] = []
        for pattern, codes in (entries or {}).items():
            try:
                name = x509.Name.from_rfc4514_string(str(pattern))
            except ValueError:
                problems.append(
                    ConfigProblem(
                        OPTION,
                        f"{pattern!r} is not a subject pattern. Hint: write it as RFC 4514 with "
                        "upper-case names (CN, O, OU, L, ST, C, UID, DC), e.g. 'O=Sở Y tế,C=VN'; "
                        "other attributes by OID, e.g. '2.5.4.5=...'",
                    )
                )
                continue
            listed = [codes] if isinstance(codes, str) else codes
            if (
                not isinstance(listed, list)
                or not listed
                or not all(isinstance(c, str) and c.strip() for c in listed)
            ):
                problems.append(
                    ConfigProblem(
                        OPTION,
                        f"{pattern!r} needs a list of agency codes, got {codes!r}. "
                        "Hint: e.g. [000.00.00.H15]",
                    )
                )
                continue
            attributes = frozenset((a.oid.dotted_string, fold(a.value)) for a in name)
            if not attributes:
                problems.append(ConfigProblem(OPTION, f"{pattern!r} names no attribute"))
                continue
            self.entries.append((str(pattern), attributes, frozenset(c.strip() for c in listed)))
        if problems:
            raise ConfigError(problems)

    @property
    def empty(self) -> bool:
        return not self.entries

    def agencies(self, certificate: x509.Certificate) -> set[str]:
        """Every agency code the certificate's subject is bound to."""
        held = {(a.oid.dotted_string, fold(a.value)) for a in certificate.subject}
        found: set[str] = set()
        for _, attributes, codes in self.entries:
            if attributes <= held:
                found |= codes
        return found

    def check(self, certificate: x509.Certificate, sender: str) -> None:
        """Refuse unless the certificate's holder may sign for ``sender``."""
        subject = certificate.subject.rfc4514_string()
        codes = self.agencies(certificate)
        if not codes:
            raise RejectedError(
                f"signer {subject!r} is bound to no agency, so it cannot sign for sender "
                f"{sender!r}. Hint: if this signer speaks for {sender}, add its subject to the "
                "endpoint's signer_agencies"
            )
        if sender not in codes and ANY_AGENCY not in codes:
            raise RejectedError(
                f"signer {subject!r} signs for {', '.join(sorted(codes))}, not for the sender "
                f"{sender!r}: one agency's signer cannot vouch for another's document. Hint: if "
                f"this is right, add {sender} to its entry in signer_agencies"
            )
