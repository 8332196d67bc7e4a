"""The email a bus message becomes, and its delivery over SMTP.

Two body forms:

- a mail envelope, root ``{urn:lienthong:mail}mail`` (what a mapping produces
  from an edXML document)::

      <mail xmlns="urn:lienthong:mail">
        <to_agency>000.00.15.H41</to_agency>
        <subject>Công văn số 12/UBND</subject>
        <text>Kính gửi ...</text>
        <attachment name="cv12.pdf" type="application/pdf">JVBERi0x...</attachment>
      </mail>

  becomes a mail with that subject and text, and each ``attachment`` (base64)
  as a file. Recipients named in the envelope (``to_agency`` agency codes,
  ``to`` addresses) take the place of the message's headers of those names,
  whose values come from the source (an axis message's ``to`` holds agency
  codes, not addresses);
- any other XML is attached as it is (``<kind>.xml``), with the ``subject``
  header (or the kind) as subject.

The Message-ID is derived from the delivery key, so a redelivery after a crash
carries the same id and the receiving side can drop the duplicate.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime

from lxml import etree

from lienthong.adapter import Secret
from lienthong.errors import RejectedError, TransientError
from lienthong.message import Message

from .attrmap import config_error

NS = "urn:lienthong:mail"
_ADDRESS = re.compile(r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[^@\s<>,;\"]+$")
_FILENAME = re.compile(r"^[^/\\\x00-\x1f]{1,200}$")


def check_address(value: str, what: str) -> str:
    """An email address without header-injection tricks, or RejectedError naming it."""
    address = value.strip()
    if not _ADDRESS.match(address):
        raise RejectedError(
            f"{what} {value!r} is not an email address. Hint: one address like user@tinh.gov.vn"
        )
    return address


def message_id(key: str, mail_from: str) -> str:
    """A Message-ID that is the same for every redelivery of the same key."""
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]
    domain = mail_from.rpartition("@")[2] or "lienthong.invalid"
    return f"<{digest}@{domain}>"


def envelope_recipients(message: Message) -> tuple[list[str], list[str]] | None:
    """The ``to_agency`` codes and ``to`` addresses a mail envelope names, or None if none."""
    root = message.tree().getroot()
    if root.tag != f"{{{NS}}}mail":
        return None
    codes = [(e.text or "").strip() for e in root.iterfind(f"{{{NS}}}to_agency")]
    addresses = [(e.text or "").strip() for e in root.iterfind(f"{{{NS}}}to")]
    codes, addresses = [c for c in codes if c], [a for a in addresses if a]
    return (codes, addresses) if codes or addresses else None


def build(message: Message, *, key: str, mail_from: str, recipients: Sequence[str]) -> EmailMessage:
    """The email for ``message``: envelope body or XML attachment, Message-ID from ``key``."""
    mail = EmailMessage()
    mail["From"] = mail_from
    mail["To"] = ", ".join(recipients)
    mail["Message-ID"] = message_id(key, mail_from)
    mail["Date"] = format_datetime(message.created_at)
    mail["X-Lienthong-Correlation-Id"] = message.correlation_id
    subject = message.headers.get("subject") or message.kind
    text = message.headers.get("text") or f"Message {message.id} ({message.kind}) from lienthong."
    attachments: list[tuple[str, str, bytes]] = []
    root = message.tree().getroot()
    if root.tag == f"{{{NS}}}mail":
        subject = root.findtext(f"{{{NS}}}subject") or subject
        text = root.findtext(f"{{{NS}}}text") or text
        for index, part in enumerate(root.iterfind(f"{{{NS}}}attachment"), start=1):
            attachments.append(_attachment(part, index, message.id))
    else:
        attachments.append((f"{message.kind or 'message'}.xml", "application/xml", message.body))
    if "\n" in subject or "\r" in subject:
        subject = " ".join(subject.split())
    mail["Subject"] = subject
    mail.set_content(text)
    for name, content_type, data in attachments:
        maintype, _, subtype = content_type.partition("/")
        mail.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return mail


def _attachment(part: etree._Element, index: int, message_ref: str) -> tuple[str, str, bytes]:
    name = (part.get("name") or f"attachment-{index}").strip()
    content_type = (part.get("type") or "application/octet-stream").strip()
    if not _FILENAME.match(name):
        raise RejectedError(
            f"message {message_ref}: attachment {index} has an unsafe name {name!r}. "
            "Hint: a plain file name without folders or control characters"
        )
    if not re.match(r"^[\w.+-]+/[\w.+-]+$", content_type):
        raise RejectedError(
            f"message {message_ref}: attachment {name!r} has a bad type "
            f"{content_type!r}. Hint: a MIME type like application/pdf"
        )
    try:
        data = base64.b64decode("".join((part.text or "").split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RejectedError(
            f"message {message_ref}: attachment {name!r} is not valid base64. "
            "Hint: the mapping must base64-encode attachment content"
        ) from exc
    return name, content_type, data


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to hand mail over."""

    host: str
    port: int
    starttls: bool
    ca_file: str
    user: str
    password: Secret | None
    timeout: float


def deliver(mail: EmailMessage, settings: SmtpSettings, *, endpoint: str) -> None:
    """Send ``mail``; 4xx and network failures are transient, 5xx rejected."""
    where = f"endpoint '{endpoint}': SMTP {settings.host}:{settings.port}"
    try:
        with smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout) as smtp:
            if settings.starttls:
                context = ssl.create_default_context(cafile=settings.ca_file or None)
                smtp.starttls(context=context)
            if settings.user:
                secret = settings.password.reveal() if settings.password else ""
                smtp.login(settings.user, secret)
            refused = smtp.send_message(mail)
    except smtplib.SMTPAuthenticationError as exc:
        raise config_error(
            [
                f"{where}: login as smtp_user {settings.user!r} refused "
                f"({exc.smtp_code}). Hint: check smtp_user and smtp_password"
            ]
        ) from exc
    except smtplib.SMTPRecipientsRefused as exc:
        codes = {addr: code for addr, (code, _msg) in exc.recipients.items()}
        if all(code >= 500 for code in codes.values()):
            raise RejectedError(
                f"{where} refused every recipient: {codes}. "
                "Hint: check the agency mailbox in the directory"
            ) from exc
        raise TransientError(f"{where} deferred recipients {codes}") from exc
    except smtplib.SMTPResponseException as exc:
        text = (
            exc.smtp_error.decode("utf-8", "replace")
            if isinstance(exc.smtp_error, bytes)
            else str(exc.smtp_error)
        )
        if 400 <= exc.smtp_code < 500:
            raise TransientError(f"{where} answered {exc.smtp_code} {text}") from exc
        raise RejectedError(f"{where} refused the mail: {exc.smtp_code} {text}") from exc
    except smtplib.SMTPNotSupportedError as exc:
        raise config_error(
            [
                f"{where}: the server does not offer STARTTLS or AUTH ({exc}). "
                "Hint: set smtp_starttls: false, or use a server that offers it"
            ]
        ) from exc
    except ssl.SSLError as exc:
        raise config_error(
            [
                f"{where}: STARTTLS failed: {exc}. Hint: set smtp_ca_file to the "
                "CA that signed the server's certificate"
            ]
        ) from exc
    except (TimeoutError, smtplib.SMTPException, OSError) as exc:
        raise TransientError(f"{where} unreachable: {exc}. Hint: is the mail server up?") from exc
    if refused:
        # Some recipients took it, others did not: resending would duplicate it
        # for the first ones, so the partial failure is recorded as a rejection.
        raise RejectedError(f"{where} refused some recipients: {refused}")
