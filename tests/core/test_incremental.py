"""IncrementalAdapter: the cursor work of a "changes since" source, done once for every adapter.

Against the ledger, a real JSON server over HTTP (tests/core/ledger.py), with the
bus's own cursor table on SQLite.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from lienthong.adapter import Acceptance, Services, resolve_options
from lienthong.errors import ConfigError, FatalError, StoreUnavailable
from lienthong.message import Message
from lienthong.store import Cursors, metadata
from lienthong.testing import RecordingInbox
from tests.core.ledger import TOKEN, Ledger, LedgerAdapter


@pytest.fixture
def ledger() -> Iterator[Ledger]:
    with Ledger() as server:
        yield server


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    engine = create_engine(f"sqlite:///{tmp_path / 'store.db'}")
    metadata.create_all(engine)
    yield Services(engine=engine, base_dir=tmp_path, cursors=Cursors(engine))
    engine.dispose()


def start(
    cls: type[LedgerAdapter], ledger: Ledger, services: Services, **raw: object
) -> LedgerAdapter:
    settings, problems = resolve_options(
        cls, {"url": ledger.url, "token": TOKEN, **raw}, "endpoints.ledger"
    )
    assert not problems
    adapter = cls("ledger", settings, services)
    adapter.start()
    return adapter


def test_reads_a_page_from_the_stored_position_and_stores_it_after_accept(
    ledger: Ledger, services: Services
) -> None:
    for text in ("một", "hai", "ba"):
        ledger.offer(text)
    adapter = start(LedgerAdapter, ledger, services, page_size=2)
    assert services.cursors is not None

    class StoreDown:
        def accept(self, messages: Sequence[Message]) -> list[Acceptance]:
            raise StoreUnavailable("the store is not answering")

    with pytest.raises(StoreUnavailable):
        adapter.receive(StoreDown())
    assert services.cursors.get("ledger:seq") is None, "not stored: the page comes again"

    inbox = RecordingInbox()
    assert adapter.receive(inbox) == 2
    assert services.cursors.get("ledger:seq") == "2"
    assert [m.source_key for m in inbox.messages] == ["E1", "E2"]
    assert {m.source for m in inbox.messages} == {"ledger"}, "source filled in"

    restarted = start(LedgerAdapter, ledger, services, page_size=2)
    assert restarted.receive(inbox) == 1
    assert restarted.receive(inbox) == 0
    assert [m.source_key for m in inbox.messages] == ["E1", "E2", "E3"]


def test_without_a_cursor_store_it_refuses_clearly(ledger: Ledger, tmp_path: Path) -> None:
    adapter = start(LedgerAdapter, ledger, Services(base_dir=tmp_path))
    with pytest.raises(ConfigError, match="gave no cursor store"):
        adapter.receive(RecordingInbox())


class Overfull(LedgerAdapter):
    """Ignores its limit."""

    def read(self, since: str | None, limit: int) -> Sequence[Message]:
        return super().read(since, limit + 5)


class Unpositioned(LedgerAdapter):
    """Forgets the replication key header."""

    def read(self, since: str | None, limit: int) -> Sequence[Message]:
        messages = super().read(since, limit)
        for message in messages:
            message.headers.pop("seq")
        return messages


class Inclusive(LedgerAdapter):
    """Reads from its position inclusive, so a page of one position never moves on."""

    def read(self, since: str | None, limit: int) -> Sequence[Message]:
        messages = super().read(str(int(since) - 1) if since else None, limit)
        for message in messages:
            message.headers["seq"] = "1"
        return messages


@pytest.mark.parametrize(
    ("cls", "error"),
    [
        (Overfull, r"read\(\) returned 3 messages for a page of 1. Hint"),
        (Unpositioned, "has no position in its 'seq' header. Hint"),
        (Inclusive, "a whole page of 1 items sits at position '1'.*Hint: raise page_size"),
    ],
)
def test_a_read_that_would_lose_or_loop_is_stopped_before_anything_is_stored(
    ledger: Ledger, services: Services, cls: type[LedgerAdapter], error: str
) -> None:
    for text in ("một", "hai", "ba"):
        ledger.offer(text)
    adapter = start(cls, ledger, services, page_size=1)
    inbox = RecordingInbox()
    if cls is Inclusive:
        assert adapter.receive(inbox) == 1  # the first page moves from nothing to '1'
    before = services.cursors.get("ledger:seq") if services.cursors else None
    with pytest.raises(FatalError, match=error):
        adapter.receive(inbox)
    assert services.cursors is not None and services.cursors.get("ledger:seq") == before
