"""Mail delivery through a real SMTP server (aiosmtpd) on loopback, with STARTTLS and AUTH."""

from __future__ import annotations

import base64
import email
import ssl
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from lienthong.errors import ConfigError, RejectedError, TransientError
from lienthong.message import Message
from lienthong.plugins.email_directory.slapd import free_port
from tests.email_directory.directory_fixtures import Tree

controller_module = pytest.importorskip(
    "aiosmtpd.controller", reason="aiosmtpd not installed: pip install aiosmtpd"
)
smtp_module = pytest.importorskip("aiosmtpd.smtp")

EDOC = "<edXMLEnvelope><Subject>Công văn 12/UBND</Subject></edXMLEnvelope>".encode()


class Inbox:
    """Collects what the server accepted; refuses recipients on the blocklist."""

    def __init__(self) -> None:
        self.mails: list[tuple[str, list[str], EmailMessage]] = []
        self.refuse: dict[str, str] = {}

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=policy.default)
        self.mails.append((envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 Message accepted"


def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
    ok = data.login == b"lienthong" and data.password == b"smtp-secret"
    return smtp_module.AuthResult(success=ok, handled=False)


def serve(inbox: Inbox, **kwargs: Any) -> Any:
    controller = controller_module.Controller(
        inbox, hostname="127.0.0.1", port=free_port(), **kwargs
    )
    controller.start()
    return controller


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, int]]:
    box = Inbox()
    controller = serve(box)
    yield box, controller.port
    controller.stop()


def mailer(tree: Tree, port: int, **overrides: Any) -> Any:
    return tree.adapter(
        smtp_host="127.0.0.1", smtp_port=port, mail_from="lienthong@tinh.gov.vn", **overrides
    )


def test_mail_to_an_agency_mailbox_with_the_document_attached(
    seeded: Tree, inbox: tuple[Inbox, int]
) -> None:
    box, port = inbox
    adapter = mailer(seeded, port)
    message = Message(
        EDOC,
        kind="edoc",
        headers={"to_agency": "000.00.01.H53", "to": "a@b.vn", "subject": "Công văn số 12"},
    )
    adapter.send(message, key="delivery-1")
    adapter.send(message, key="delivery-1")  # a redelivery after a crash
    adapter.send(message, key="delivery-2")
    assert [rcpt for _f, rcpt, _m in box.mails] == [["sotc@tinh.gov.vn", "a@b.vn"]] * 3
    ids = [m["Message-ID"] for _f, _r, m in box.mails]
    assert ids[0] == ids[1] != ids[2] and ids[0].endswith("@tinh.gov.vn>")
    mail = box.mails[0][2]
    assert mail["Subject"] == "Công văn số 12" and mail["From"] == "lienthong@tinh.gov.vn"
    (attachment,) = list(mail.iter_attachments())
    assert attachment.get_filename() == "edoc.xml" and attachment.get_content() == EDOC


def test_mail_envelope_body_gives_subject_text_and_attachments(
    tree: Tree, inbox: tuple[Inbox, int]
) -> None:
    box, port = inbox
    pdf = b"%PDF-1.4 \x00\x01 t\xe1i li\xeau"
    body = (
        '<mail xmlns="urn:lienthong:mail"><subject>Giấy mời họp</subject>'
        "<text>Kính gửi Sở Tài chính.</text>"
        f'<attachment name="giấy mời.pdf" type="application/pdf">'
        f"{base64.b64encode(pdf).decode()}</attachment></mail>"
    ).encode()
    mailer(tree, port).send(Message(body, headers={"to": "x@tinh.gov.vn"}), key="k")
    mail = box.mails[0][2]
    assert mail["Subject"] == "Giấy mời họp"
    assert mail.get_body(("plain",)).get_content().strip() == "Kính gửi Sở Tài chính."
    (attachment,) = list(mail.iter_attachments())
    assert attachment.get_filename() == "giấy mời.pdf"
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_content() == pdf


@pytest.mark.parametrize(
    ("headers", "body", "match"),
    [
        ({"to_agency": "999.99.99.H53"}, EDOC, "agency code '999.99.99.H53'.*no active agency"),
        ({}, EDOC, "no recipient.*to_agency"),
        ({"to": "a@b.vn\r\nBcc: spy@evil.vn"}, EDOC, "is not an email address"),
        (
            {"to": "x@tinh.gov.vn"},
            b'<mail xmlns="urn:lienthong:mail"><attachment name="a.pdf">!!notbase64</attachment></mail>',
            "not valid base64",
        ),
        (
            {"to": "x@tinh.gov.vn"},
            b'<mail xmlns="urn:lienthong:mail"><attachment name="../../etc/passwd">QQ==</attachment>'
            b"</mail>",
            "unsafe name",
        ),
        ({"to": "x@tinh.gov.vn"}, b"<a>&xxe;</a>", "not well-formed"),
    ],
)
def test_bad_messages_are_rejected_with_the_reason(
    seeded: Tree, inbox: tuple[Inbox, int], headers: dict, body: bytes, match: str
) -> None:
    box, port = inbox
    with pytest.raises(RejectedError, match=match):
        mailer(seeded, port).send(Message(body, headers=headers), key="k")
    assert box.mails == []


def test_refused_recipient_is_rejected_and_deferred_is_transient(
    tree: Tree, inbox: tuple[Inbox, int]
) -> None:
    box, port = inbox
    box.refuse = {"gone@tinh.gov.vn": "550 5.1.1 no such user", "full@tinh.gov.vn": "452 full"}
    adapter = mailer(tree, port)
    with pytest.raises(RejectedError, match="refused every recipient"):
        adapter.send(Message(EDOC, headers={"to": "gone@tinh.gov.vn"}), key="k")
    with pytest.raises(TransientError) as info:
        adapter.send(Message(EDOC, headers={"to": "full@tinh.gov.vn"}), key="k")
    assert adapter.is_transient(info.value)


def test_mail_server_down_is_transient(tree: Tree) -> None:
    adapter = mailer(tree, free_port())
    with pytest.raises(TransientError, match="unreachable") as info:
        adapter.send(Message(EDOC, headers={"to": "x@tinh.gov.vn"}), key="k")
    assert adapter.is_transient(info.value)


def test_send_without_smtp_settings_is_a_config_error(tree: Tree) -> None:
    with pytest.raises(ConfigError, match="smtp_host and mail_from"):
        tree.adapter().send(Message(EDOC, headers={"to": "x@tinh.gov.vn"}), key="k")


def test_starttls_and_login_with_a_self_signed_certificate(
    tree: Tree, certificate: tuple[Path, Path]
) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    box = Inbox()
    controller = serve(
        box,
        tls_context=context,
        require_starttls=True,
        authenticator=authenticate,
        auth_required=True,
    )
    try:
        tls = {"smtp_starttls": True, "smtp_user": "lienthong"}
        message = Message(EDOC, headers={"to": "x@tinh.gov.vn"})
        mailer(
            tree,
            controller.port,
            smtp_ca_file=str(certificate[0]),
            smtp_password="smtp-secret",
            **tls,
        ).send(message, key="k")
        assert len(box.mails) == 1
        with pytest.raises(ConfigError, match="smtp_user 'lienthong' refused") as info:
            mailer(
                tree,
                controller.port,
                smtp_ca_file=str(certificate[0]),
                smtp_password="wrong-pass",
                **tls,
            ).send(message, key="k")
        assert "wrong-pass" not in str(info.value)
        with pytest.raises(ConfigError, match="STARTTLS failed.*smtp_ca_file"):
            mailer(tree, controller.port, smtp_password="smtp-secret", **tls).send(message, key="k")
        assert len(box.mails) == 1
    finally:
        controller.stop()
