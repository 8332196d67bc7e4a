"""Cursor polling against a real "changes since" SOAP service whose cursor is an xs:dateTime.

The service is served from its WSDL by the sandbox's SOAP server, which checks
every request against the WSDL's schema as the real one would: an empty string
is not a time, so the first poll must leave the cursor out (or send nil), and
the next cursor is the latest item's time, compared as a time (offsets and
all), not as text and not the first item's.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from lxml.builder import ElementMaker
from sqlalchemy.engine import Engine

from lienthong.adapter import Services, resolve_options
from lienthong.errors import ConfigError
from lienthong.plugins.accounting_soap.adapter import AccountingSoapAdapter
from lienthong.plugins.accounting_soap.sandbox import SoapServer
from lienthong.store import Cursors

CH = "urn:lienthong:test:changes:v1"
XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"

# Listed by order id; the latest (UNC-2, 03:00 UTC) is neither first nor the greatest text.
CHANGES = [
    {
        "orderId": "UNC-1",
        "amountDong": "1500000",
        "modifiedAt": "2026-03-01T09:00:00+07:00",
        "seq": "9",
    },
    {"orderId": "UNC-2", "amountDong": "250000", "modifiedAt": "2026-03-01T03:00:00Z", "seq": "10"},
    {
        "orderId": "UNC-3",
        "amountDong": "75000000",
        "modifiedAt": "2026-03-01T08:30:00+07:00",
        "seq": "8",
    },
]


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class ChangeDesk:
    """The test's treasury "changes since" service; it remembers what each poll asked."""

    def __init__(self, wsdl: Path) -> None:
        self.changes = [dict(c) for c in CHANGES]
        self.requests: list[etree._Element] = []
        self._lock = threading.Lock()
        self._e = ElementMaker(namespace=CH, nsmap={"ch": CH})
        handlers = {
            name: self._since(name)
            for name in ("GetPaymentChanges", "GetReceiptChanges", "GetStrictChanges")
        }
        handlers["GetChangesAfter"] = self._after
        self.server = SoapServer(wsdl, handlers)

    def add(self, **change: str) -> None:
        with self._lock:
            self.changes.append(change)

    def _since(self, operation: str) -> Callable[[etree._Element], etree._Element]:
        def handle(request: etree._Element) -> etree._Element:
            self.requests.append(request)
            since = request.find(f"{{{CH}}}since")
            if since is None or since.get(XSI_NIL) == "true":
                return self._answer(operation, lambda c: True)
            after = _time(since.text)
            return self._answer(operation, lambda c: _time(c["modifiedAt"]) > after)

        return handle

    def _after(self, request: etree._Element) -> etree._Element:
        self.requests.append(request)
        after = int(request.findtext(f"{{{CH}}}afterSeq") or "-1")
        return self._answer("GetChangesAfter", lambda c: int(c["seq"]) > after)

    def _answer(self, operation: str, wanted: Callable[[dict[str, str]], bool]) -> etree._Element:
        e = self._e
        with self._lock:
            found = [c for c in self.changes if wanted(c)]
        fields = ("orderId", "amountDong", "modifiedAt", "seq")
        return getattr(e, f"{operation}Result")(
            *(e.change(*(getattr(e, f)(c[f]) for f in fields)) for c in found)
        )


@pytest.fixture
def desk(data_dir: Path) -> Iterator[ChangeDesk]:
    desk = ChangeDesk(data_dir / "changes.wsdl")
    with desk.server:
        yield desk


@pytest.fixture
def poller(
    tmp_path: Path, engine: Engine, desk: ChangeDesk
) -> Iterator[Callable[..., AccountingSoapAdapter]]:
    started: list[AccountingSoapAdapter] = []

    def make(**raw: Any) -> AccountingSoapAdapter:
        options = {
            "wsdl": desk.server.wsdl_url,
            "receive_operation": "GetPaymentChanges",
            "item_element": "change",
            "item_key": "orderId",
            "next_cursor_field": "modifiedAt",
            "message_kind": "treasury.change",
            **raw,
        }
        options = {k: v for k, v in options.items() if v is not None}
        settings, problems = resolve_options(AccountingSoapAdapter, options, "endpoints.kbnn")
        assert not problems, problems
        services = Services(
            engine=engine, base_dir=tmp_path, var_dir=tmp_path / "var", cursors=Cursors(engine)
        )
        adapter = AccountingSoapAdapter("kbnn", settings, services)
        adapter.start()
        started.append(adapter)
        return adapter

    yield make
    for adapter in started:
        adapter.stop()


def _cursor(engine: Engine, operation: str = "GetPaymentChanges") -> str | None:
    return Cursors(engine).get(f"kbnn:{operation}")


def test_an_empty_cursor_is_left_out_and_the_next_is_the_latest_item_time(
    poller, desk: ChangeDesk, inbox, engine: Engine
) -> None:
    adapter = poller()

    assert adapter.receive(inbox) == 3
    first = desk.requests[-1]
    assert first.find(f"{{{CH}}}since") is None, "no cursor yet: the argument is left out"
    assert _cursor(engine) == "2026-03-01T03:00:00Z", "the latest time, compared as a time"

    assert adapter.receive(inbox) == 0, "nothing after the latest: nothing again"
    assert desk.requests[-1].findtext(f"{{{CH}}}since") == "2026-03-01T03:00:00Z"

    desk.add(orderId="UNC-4", amountDong="1000", modifiedAt="2026-03-01T10:30:00+07:00", seq="11")
    assert adapter.receive(inbox) == 1
    assert [m.source_key for m in inbox.messages] == ["UNC-1", "UNC-2", "UNC-3", "UNC-4"]
    assert _cursor(engine) == "2026-03-01T10:30:00+07:00"


def test_the_first_poll_does_not_send_an_empty_string_as_a_time(
    poller, desk: ChangeDesk, inbox
) -> None:
    adapter = poller(next_cursor_field=None)  # the options every version has
    assert adapter.receive(inbox) == 3, "'' is not an xs:dateTime: the service would refuse it"
    assert desk.requests[-1].find(f"{{{CH}}}since") is None


def test_a_nillable_cursor_argument_is_sent_as_nil(
    poller, desk: ChangeDesk, inbox, engine: Engine
) -> None:
    adapter = poller(receive_operation="GetReceiptChanges")
    assert adapter.receive(inbox) == 3
    since = desk.requests[-1].find(f"{{{CH}}}since")
    assert since is not None and since.get(XSI_NIL) == "true"
    assert _cursor(engine, "GetReceiptChanges") == "2026-03-01T03:00:00Z"


def test_a_required_time_without_cursor_start_refuses_to_start_saying_so(poller) -> None:
    with pytest.raises(
        ConfigError,
        match=r"GetStrictChanges requires 'since' \(xs:dateTime\).*"
        r"set cursor_start .*'2026-01-01T00:00:00\+07:00'",
    ):
        poller(receive_operation="GetStrictChanges")


def test_a_required_time_starts_from_cursor_start(
    poller, desk: ChangeDesk, inbox, engine: Engine
) -> None:
    adapter = poller(receive_operation="GetStrictChanges", cursor_start="2026-03-01T02:30:00Z")
    assert adapter.receive(inbox) == 1
    assert [m.source_key for m in inbox.messages] == ["UNC-2"]
    assert _cursor(engine, "GetStrictChanges") == "2026-03-01T03:00:00Z"


def test_a_sequence_cursor_compares_as_a_number(
    poller, desk: ChangeDesk, inbox, engine: Engine
) -> None:
    adapter = poller(
        receive_operation="GetChangesAfter", cursor_argument="afterSeq", next_cursor_field="seq"
    )
    assert adapter.receive(inbox) == 3
    assert desk.requests[-1].find(f"{{{CH}}}afterSeq") is None
    assert _cursor(engine, "GetChangesAfter") == "10", "10 > 9, though '9' > '10' as text"
    assert adapter.receive(inbox) == 0


def test_a_cursor_never_moves_back(poller, desk: ChangeDesk, inbox, engine: Engine) -> None:
    adapter = poller()
    adapter.receive(inbox)
    desk.add(orderId="UNC-0", amountDong="1", modifiedAt="2026-03-01T00:00:00Z", seq="1")
    # A service that answers something older (a clock set back) does not rewind the cursor.
    Cursors(engine).set("kbnn:GetPaymentChanges", "2026-02-28T23:00:00Z")
    adapter.receive(inbox)
    assert _cursor(engine) == "2026-03-01T03:00:00Z"


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (
            {"next_cursor_field": "when"},
            r"next_cursor_field 'when' is not a simple child of "
            r"'change'.*one of \['amountDong', 'modifiedAt', 'orderId', 'seq'\]",
        ),
        ({"item_element": "order"}, "has no element 'order' \\(item_element\\)"),
        (
            {"cursor_argument": "from"},
            r"cursor_argument 'from' is not an argument of "
            r"GetPaymentChanges. Hint: one of \['maxResults', 'since'\]",
        ),
    ],
)
def test_cursor_settings_that_do_not_fit_the_wsdl_refuse_to_start(
    poller, raw: dict[str, str], error: str
) -> None:
    with pytest.raises(ConfigError, match=error):
        poller(**raw)
