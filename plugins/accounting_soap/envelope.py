"""A SOAP answer's envelope read: the element in its Body, or the error its fault means.

Faults are sorted by what happens next: a ``Client`` fault is a rejected
message, a fault code in ``transient_faults`` is worth retrying, a WS-Security
fault is fatal; an answer that is not SOAP at all says whether the service is
failing or the address is wrong.
"""

from __future__ import annotations

from typing import Any

import requests
from lxml import etree

from lienthong import xml
from lienthong.errors import FatalError, LienthongError, RejectedError, TransientError

SOAP11_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope"
#: WS-Security fault codes (OASIS SOAP Message Security 1.1, section 12).
SECURITY_FAULTS = frozenset(
    {
        "FailedAuthentication",
        "InvalidSecurity",
        "InvalidSecurityToken",
        "FailedCheck",
        "SecurityTokenUnavailable",
        "UnsupportedSecurityToken",
    }
)


class SoapFaultMixin:
    """What a SOAP fault said: its code, its string and the first code in its detail."""

    fault_code: str
    fault_string: str
    detail_code: str | None


class SoapRejected(RejectedError, SoapFaultMixin):
    """The service refused this input (``Client`` fault): it will never succeed as it is."""


class SoapServerFault(TransientError, SoapFaultMixin):
    """The service failed on its side (``Server`` fault): worth retrying later."""


class SoapAuthenticationError(FatalError, SoapFaultMixin):
    """The service refused our WS-Security credentials: every call fails until they are fixed."""


def read(response: requests.Response, where: str, transient_faults: set[str]) -> etree._Element:
    """The first element in the answer's Body; raise what a fault or a non-SOAP answer means."""
    status, content = response.status_code, response.content
    lowered = content[:4096].lower()
    if (b"<!doctype" in lowered or b"<!entity" in lowered) and status < 500:
        raise FatalError(
            f"{where}: the service answered with a DTD or entity declaration (HTTP {status}), "
            "which the bus refuses (XXE, entity expansion). Hint: this is not a SOAP service "
            "the bus can trust; check 'address' and talk to its operator"
        )
    try:
        envelope = xml.parse(content, what=f"{where} answer").getroot()
    except xml.XmlRejected as exc:
        raise _not_soap(where, status, str(exc)) from exc
    namespace = etree.QName(envelope).namespace
    body = envelope.find(f"{{{namespace}}}Body")
    if namespace not in (SOAP11_ENV, SOAP12_ENV) or body is None:
        raise _not_soap(where, status, f"the answer is <{envelope.tag}>")
    fault = body.find(f"{{{namespace}}}Fault")
    if fault is not None:
        raise _fault(fault, namespace, where, transient_faults)
    if status != 200:
        raise TransientError(f"{where}: HTTP {status} with a SOAP answer that is not a fault")
    children = [c for c in body if isinstance(c.tag, str)]
    if not children:
        raise FatalError(f"{where}: the SOAP Body of the answer is empty")
    return children[0]


def _fault(
    fault: etree._Element, namespace: str, where: str, transient_faults: set[str]
) -> Exception:
    if namespace == SOAP11_ENV:
        code = (fault.findtext("faultcode") or "").strip()
        string = (fault.findtext("faultstring") or "").strip()
        detail = fault.find("detail")
    else:
        code = (fault.findtext(f"{{{namespace}}}Code/{{{namespace}}}Value") or "").strip()
        string = (fault.findtext(f"{{{namespace}}}Reason/{{{namespace}}}Text") or "").strip()
        detail = fault.find(f"{{{namespace}}}Detail")
    leaves = (
        [
            e
            for e in detail.iter()
            if isinstance(e.tag, str) and len(e) == 0 and (e.text or "").strip()
        ]
        if detail is not None
        else []
    )
    detail_code = leaves[0].text.strip() if leaves else None
    local = code.rpartition(":")[2]
    family = local.split(".")[0]
    shown = f"{code}" + (f" [{detail_code}]" if detail_code else "")
    if local in SECURITY_FAULTS:
        return _fault_error(
            SoapAuthenticationError,
            f"{where}: WS-Security refused (fault {shown}): {string}. Hint: check the "
            f"endpoint's username and password (and password_digest)",
            code,
            string,
            detail_code,
        )
    if family in transient_faults:
        return _fault_error(
            SoapServerFault,
            f"{where}: server fault {shown}: {string}",
            code,
            string,
            detail_code,
        )
    if family in ("VersionMismatch", "MustUnderstand"):
        return _fault_error(
            FatalError,
            f"{where}: protocol fault {shown}: {string}. Hint: "
            "the service expects another SOAP version or headers",
            code,
            string,
            detail_code,
        )
    return _fault_error(
        SoapRejected,
        f"{where}: the service rejected the request (fault {shown}): {string}",
        code,
        string,
        detail_code,
    )


def _fault_error(
    cls: type[Exception], text: str, code: str, string: str, detail: str | None
) -> Any:
    error = cls(text)
    error.fault_code = code  # type: ignore[attr-defined]
    error.fault_string = string  # type: ignore[attr-defined]
    error.detail_code = detail  # type: ignore[attr-defined]
    return error


def _not_soap(where: str, status: int, detail: str) -> LienthongError:
    """A non-SOAP answer: a failing service or proxy (5xx) passes; else the address is wrong."""
    if status >= 500 or status in (408, 429):
        return TransientError(
            f"{where}: HTTP {status} without a SOAP answer ({detail}). "
            "Hint: the service or a proxy in front of it is failing"
        )
    return FatalError(
        f"{where}: HTTP {status} without a SOAP answer ({detail}). "
        "Hint: check that 'address' points at the SOAP endpoint"
    )
