"""Fixtures for the SOAP adapter tests: the sandbox accounting service, a SQLite store, adapters.

Test modules reach everything through fixtures, never by importing this file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine

from lienthong.adapter import Acceptance, Services, resolve_options
from lienthong.message import Message
from lienthong.plugins.accounting_soap.adapter import AccountingSoapAdapter
from lienthong.plugins.accounting_soap.sandbox import AccountingSandbox
from lienthong.store import Cursors, metadata

USER = "ketoan-stc"
PASSWORD = "mat-khau-sandbox-01"
DATA = Path(__file__).parent / "data"


class RecordingInbox:
    """Keeps accepted messages in order and dedupes by source key, as the store does."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self._keys: set[tuple[str, str | None]] = set()

    def accept(self, messages: Sequence[Message]) -> list[Acceptance]:
        result = []
        for message in messages:
            key = (message.source, message.source_key)
            duplicate = key in self._keys
            if not duplicate:
                self._keys.add(key)
                self.messages.append(message)
            result.append(Acceptance(message.id, duplicate=duplicate))
        return result


@pytest.fixture
def data_dir() -> Path:
    return DATA


@pytest.fixture
def credentials() -> tuple[str, str]:
    return USER, PASSWORD


@pytest.fixture
def sandbox() -> Iterator[AccountingSandbox]:
    with AccountingSandbox(username=USER, password=PASSWORD) as server:
        yield server


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = create_engine(f"sqlite:///{tmp_path / 'store.sqlite'}")
    metadata.create_all(engine)
    return engine


@pytest.fixture
def inbox() -> RecordingInbox:
    return RecordingInbox()


@pytest.fixture
def make_adapter(
    tmp_path: Path, engine: Engine, sandbox: AccountingSandbox
) -> Iterator[Callable[..., AccountingSoapAdapter]]:
    """Build and start an adapter from raw options, as the bus would from config."""
    started: list[AccountingSoapAdapter] = []

    def make(endpoint: str = "acct-stc", **raw: Any) -> AccountingSoapAdapter:
        options: dict[str, Any] = {
            "wsdl": sandbox.wsdl_url,
            "username": USER,
            "password": PASSWORD,
            "send_operation": "PostVoucher",
            "reference_field": "voucher.externalReference",
            "receive_operation": "ListVoucherChanges",
        }
        options.update(raw)
        options = {k: v for k, v in options.items() if v is not None}
        settings, problems = resolve_options(
            AccountingSoapAdapter, options, f"endpoints.{endpoint}"
        )
        assert not problems, problems
        services = Services(
            engine=engine, base_dir=tmp_path, var_dir=tmp_path / "var", cursors=Cursors(engine)
        )
        adapter = AccountingSoapAdapter(endpoint, settings, services)
        adapter.start()
        started.append(adapter)
        return adapter

    yield make
    for adapter in started:
        adapter.stop()


@pytest.fixture
def voucher_body() -> Callable[..., bytes]:
    """A PostVoucher request as a mapping would produce it (no external reference)."""

    def body(**fields: str) -> bytes:
        values = {
            "kind": "receipt",
            "date": "2026-01-15",
            "agencyCode": "000.00.15.H41",
            "debitAccount": "1111",
            "creditAccount": "5111",
            "amount": "2500000",
            "description": "Thu phí cấp bản sao",
        }
        values.update(fields)
        inner = "".join(f"<acc:{k}>{v}</acc:{k}>" for k, v in values.items())
        return (
            '<acc:PostVoucher xmlns:acc="urn:lienthong:sandbox:accounting:v1">'
            f"<acc:voucher>{inner}</acc:voucher></acc:PostVoucher>"
        ).encode()

    return body
