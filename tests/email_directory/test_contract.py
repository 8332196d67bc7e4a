"""The contract suite every adapter passes, run against a real slapd and SMTP server."""

from __future__ import annotations

import email
from collections.abc import Iterator
from email import policy
from pathlib import Path
from typing import Any

import pytest

from lienthong.adapter import Adapter
from lienthong.plugins.email_directory.adapter import DirectoryAdapter
from lienthong.plugins.email_directory.mail import message_id
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

    def fetch(self, adapter: Adapter, key: str) -> bytes:
        # SMTP cannot un-send: a redelivery carries the same Message-ID, which is
        # what the receiving side deduplicates on. Every copy must be that one mail.
        wanted = message_id(key, "lienthong@tinh.gov.vn")
        copies = [m for m in self.collector.mails if m["Message-ID"] == wanted]
        assert copies and len(copies) == len(self.collector.mails)
        bodies = {next(m.iter_attachments()).get_content() for m in copies}
        assert len(bodies) == 1
        return bodies.pop()
