"""The directory adapter passes the contract suite: mail sent to a real SMTP server, with slapd."""

from __future__ import annotations

import email
from collections.abc import Iterator, Sequence
from email import policy
from pathlib import Path
from typing import Any

import pytest

from lienthong.adapter import Adapter
from lienthong.plugins.email_directory.adapter import DirectoryAdapter
from lienthong.plugins.email_directory.slapd import TemporarySlapd, free_port
from lienthong.testing import AdapterContract

controller_module = pytest.importorskip(
    "aiosmtpd.controller", reason="aiosmtpd not installed: pip install aiosmtpd"
)


class Collector:
    def __init__(self) -> None:
        self.mails: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.mails.append(email.message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"


class TestDirectoryContract(AdapterContract):
    adapter_class = DirectoryAdapter

    @pytest.fixture(autouse=True)
    def servers(self, slapd: TemporarySlapd) -> Iterator[None]:
        self.slapd = slapd
        self.collector = Collector()
        controller = controller_module.Controller(
            self.collector, hostname="127.0.0.1", port=free_port()
        )
        controller.start()
        self.smtp_port = controller.port
        yield
        controller.stop()

    def settings(self, tmp_path: Path) -> dict[str, Any]:
        return {
            "url": self.slapd.url,
            "bind_dn": self.slapd.rootdn,
            "password": self.slapd.password,
            "base_dn": self.slapd.suffix,
            "smtp_host": "127.0.0.1",
            "smtp_port": self.smtp_port,
            "mail_from": "lienthong@tinh.gov.vn",
            "default_to": "vanthu@tinh.gov.vn",
        }

    def fetch(self, adapter: Adapter) -> list[bytes]:
        # SMTP cannot un-send: a redelivery is the same mail again, with the same
        # Message-ID, and mail readers show one mail per Message-ID. So one effect
        # per Message-ID, and the copies of one must be the same mail.
        effects: dict[str, set[bytes]] = {}
        for mail in self.collector.mails:
            body = next(mail.iter_attachments()).get_content()
            effects.setdefault(mail["Message-ID"], set()).add(body)
        assert all(len(bodies) == 1 for bodies in effects.values()), effects
        return [bodies.pop() for bodies in effects.values()]

    def bad_bodies(self) -> Sequence[bytes]:
        envelope = '<mail xmlns="urn:lienthong:mail"><to>vanthu@tinh.gov.vn</to>{}</mail>'
        return [
            envelope.format('<attachment name="a.pdf">not base64!</attachment>').encode(),
            envelope.format('<attachment name="../../etc/x">AAAA</attachment>').encode(),
            b'<mail xmlns="urn:lienthong:mail"><to>not an address</to></mail>',
        ]

    def settings_for_address(self, tmp_path: Path, host: str, port: int) -> dict[str, Any]:
        return {**self.settings(tmp_path), "smtp_host": host, "smtp_port": port, "timeout": 0.5}

    def wrong_credentials(self, tmp_path: Path) -> dict[str, Any]:
        return {**self.settings(tmp_path), "password": "not-the-password-9753"}
