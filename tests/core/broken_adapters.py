"""The contract suite run on the ledger adapter, and on variants that each break one rule.

Not collected on its own (no ``test_`` prefix): ``test_contract_suite.py`` runs
this file with pytest and checks that the good adapter passes every check and
that each broken variant fails the check of the rule it breaks, naming it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import requests
from lxml import etree

from lienthong import xml
from lienthong.adapter import Inbox, Option
from lienthong.errors import FatalError, RejectedError, TransientError
from lienthong.message import Message
from lienthong.testing import AdapterContract
from tests.core.ledger import TOKEN, Ledger, LedgerAdapter

log = logging.getLogger(__name__)


def entry(text: str) -> bytes:
    root = etree.Element("entry")
    etree.SubElement(root, "text").text = text
    return xml.serialize(root)


class LedgerContract(AdapterContract):
    """The contract for the ledger adapter; each class below runs it on one variant."""

    adapter_class: Any = LedgerAdapter
    sample_body = entry("Liên thông")

    @pytest.fixture(autouse=True)
    def ledger(self) -> Iterator[Ledger]:
        with Ledger() as server:
            self.server = server
            yield server

    def settings(self, tmp_path: Path) -> dict[str, Any]:
        return {"url": self.server.url, "token": TOKEN}

    def put(self, adapter: Any, body: bytes) -> None:
        self.server.offer(xml.parse(body).findtext("text"))

    def put_malformed(self, adapter: Any) -> None:
        self.server.offer("a bell \x07 XML cannot hold")

    def fetch(self, adapter: Any) -> list[bytes]:
        return [entry(post["text"]) for post in self.server.posts]

    def bad_bodies(self) -> Sequence[bytes]:
        return [b"<entry/>", entry("REFUSE this one")]

    def settings_for_address(self, tmp_path: Path, host: str, port: int) -> dict[str, Any]:
        return {"url": f"http://{host}:{port}", "token": TOKEN, "timeout": 0.5}

    def wrong_credentials(self, tmp_path: Path) -> dict[str, Any]:
        return {**self.settings(tmp_path), "token": "wrong-token-0815"}


class TestLedger(LedgerContract):
    adapter_class = LedgerAdapter


# --- receiving ---


class CursorBeforeAccept(LedgerAdapter):
    def receive(self, inbox: Inbox) -> int:
        cursors = self.services.cursors
        assert cursors is not None
        messages = list(self.read(cursors.get(self.cursor_name), self.settings["page_size"]))
        for message in messages:
            message.source = self.endpoint
        if messages:
            cursors.set(self.cursor_name, messages[-1].headers["seq"])
            inbox.accept(messages)
        return len(messages)


class TestCursorBeforeAccept(LedgerContract):
    adapter_class = CursorBeforeAccept


class SwallowsStoreErrors(LedgerAdapter):
    def receive(self, inbox: Inbox) -> int:
        try:
            return super().receive(inbox)
        except TransientError:
            return 0


class TestSwallowsStoreErrors(LedgerContract):
    adapter_class = SwallowsStoreErrors


class NoSourceKey(LedgerAdapter):
    def message(self, entry: dict[str, Any]) -> Message:
        message = super().message(entry)
        message.source_key = None
        return message


class TestNoSourceKey(LedgerContract):
    adapter_class = NoSourceKey


class RandomSourceKey(LedgerAdapter):
    def message(self, entry: dict[str, Any]) -> Message:
        message = super().message(entry)
        message.source_key = uuid.uuid4().hex
        return message


class TestRandomSourceKey(LedgerContract):
    adapter_class = RandomSourceKey


class CursorInMemory(LedgerAdapter):
    position: str | None = None

    def receive(self, inbox: Inbox) -> int:
        messages = list(self.read(self.position, self.settings["page_size"]))
        for message in messages:
            message.source = self.endpoint
        if messages:
            inbox.accept(messages)
            self.position = messages[-1].headers["seq"]
        return len(messages)


class TestCursorInMemory(LedgerContract):
    adapter_class = CursorInMemory


class IgnoresPageSize(LedgerAdapter):
    def receive(self, inbox: Inbox) -> int:
        cursors = self.services.cursors
        assert cursors is not None
        messages = list(self.read(cursors.get(self.cursor_name), 1000))
        for message in messages:
            message.source = self.endpoint
        if messages:
            inbox.accept(messages)
            cursors.set(self.cursor_name, messages[-1].headers["seq"])
        return len(messages)


class TestIgnoresPageSize(LedgerContract):
    adapter_class = IgnoresPageSize


class ReadsAgainForever(LedgerAdapter):
    def receive(self, inbox: Inbox) -> int:
        messages = list(self.read(None, self.settings["page_size"]))
        for message in messages:
            message.source = self.endpoint
        if messages:
            inbox.accept(messages)
        return len(messages)


class TestReadsAgainForever(LedgerContract):
    adapter_class = ReadsAgainForever


class MiscountsReceive(LedgerAdapter):
    def receive(self, inbox: Inbox) -> int:
        return super().receive(inbox) + 1


class TestMiscountsReceive(LedgerContract):
    adapter_class = MiscountsReceive


class IgnoresKind(LedgerAdapter):
    def message(self, entry: dict[str, Any]) -> Message:
        message = super().message(entry)
        message.kind = "xml"
        return message


class TestIgnoresKind(LedgerContract):
    adapter_class = IgnoresKind


class WrongSource(LedgerAdapter):
    def message(self, entry: dict[str, Any]) -> Message:
        message = super().message(entry)
        message.source = "ledger"
        return message


class TestWrongSource(LedgerContract):
    adapter_class = WrongSource


class MalformedItemRaises(LedgerAdapter):
    def message(self, entry: dict[str, Any]) -> Message:
        root = etree.Element("entry")
        etree.SubElement(root, "text").text = entry["text"]
        return Message(
            body=xml.serialize(root),
            kind=self.settings["kind"],
            headers={"seq": str(entry["seq"])},
            source_key=str(entry["id"]),
        )


class TestMalformedItemRaises(LedgerContract):
    adapter_class = MalformedItemRaises


class MalformedItemDropped(LedgerAdapter):
    def read(self, since: str | None, limit: int) -> Sequence[Message]:
        messages = list(super().read(since, limit))
        if messages and all("invalid" in m.headers for m in messages):
            # Drops the bad entries but keeps the last one's position, so the cursor moves on.
            last = messages[-1]
            last.headers.pop("invalid")
            last.body = entry("")
            return [last]
        return [m for m in messages if "invalid" not in m.headers]


class TestMalformedItemDropped(LedgerContract):
    adapter_class = MalformedItemDropped


# --- sending ---


class RepeatsSends(LedgerAdapter):
    def send(self, message: Message, *, key: str) -> None:
        self.call("POST", "/entries", json={"text": self.entry_text(message)})


class TestRepeatsSends(LedgerContract):
    adapter_class = RepeatsSends


class CrashesOnBadBodies(LedgerAdapter):
    def send(self, message: Message, *, key: str) -> None:
        text = message.tree().find("text").text  # type: ignore[union-attr]
        response = self.call(
            "POST", "/entries", json={"text": text}, headers={"Idempotency-Key": key}
        )
        if response.status_code >= 400:
            raise TransientError(f"HTTP {response.status_code}")


class TestCrashesOnBadBodies(LedgerContract):
    adapter_class = CrashesOnBadBodies


# --- errors ---


class TimeoutAsPlainException(LedgerAdapter):
    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            return super().call(method, path, **kwargs)
        except requests.Timeout as exc:
            raise RuntimeError(f"the ledger did not answer: {exc}") from None


class TestTimeoutAsPlainException(LedgerContract):
    adapter_class = TimeoutAsPlainException


class RefusedAsRejected(LedgerAdapter):
    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            return super().call(method, path, **kwargs)
        except requests.ConnectionError as exc:
            raise RejectedError(f"the ledger cannot be reached: {exc}") from exc


class TestRefusedAsRejected(LedgerContract):
    adapter_class = RefusedAsRejected


class CredentialsAsTransient(LedgerAdapter):
    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            return super().call(method, path, **kwargs)
        except FatalError as exc:
            raise TransientError(str(exc)) from exc


class TestCredentialsAsTransient(LedgerContract):
    adapter_class = CredentialsAsTransient


class SecretInError(LedgerAdapter):
    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            return super().call(method, path, **kwargs)
        except requests.ConnectionError as exc:
            token = self.settings["token"].reveal()
            raise TransientError(f"cannot reach {self.settings['url']} with {token}") from exc


class TestSecretInError(LedgerContract):
    adapter_class = SecretInError


class SecretInLog(LedgerAdapter):
    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        log.info("calling %s with token %s", path, self.settings["token"].reveal())
        return super().call(method, path, **kwargs)


class TestSecretInLog(LedgerContract):
    adapter_class = SecretInLog


# --- declarations and lifecycle ---


class StopBeforeStartFails(LedgerAdapter):
    def stop(self) -> None:
        self.session.close()  # type: ignore[union-attr]


class TestStopBeforeStartFails(LedgerContract):
    adapter_class = StopBeforeStartFails


class DefaultOutsideItsRules(LedgerAdapter):
    options = (
        *LedgerAdapter.options[:3],
        Option("page_size", "most entries per poll", default=0, type=int, minimum=1),
        *LedgerAdapter.options[4:],
    )


class TestDefaultOutsideItsRules(LedgerContract):
    adapter_class = DefaultOutsideItsRules
