"""The JSON/REST adapter against the real sandbox servers: polls, sends, auth, outcomes, config.

Every test talks HTTP to a sandbox started on a free port; cursors live in a
real SQLite store. Bus-level behaviour (retries, dead letters) is in test_bus.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest

from lienthong import jsonxml, xml
from lienthong.adapter import INVALID_HEADER, Acceptance, Capability
from lienthong.errors import ConfigError, FatalError, RejectedError, TransientError
from lienthong.message import Message
from lienthong.plugins.rest_json.adapter import RestJsonAdapter
from lienthong.plugins.rest_json.onestop_sandbox import OneStopSandbox
from lienthong.plugins.rest_json.portal_sandbox import PortalSandbox
from lienthong.testing import RecordingInbox
from tests.rest_json import configs

Make = Callable[..., RestJsonAdapter]


def until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def field(message: Message, key: str) -> str:
    tree = xml.parse(message.body)
    return tree.getroot().xpath("string(*[@key=$k])", k=key)


def json_body(document: Any) -> bytes:
    """A message body in the XPath 3.1 JSON vocabulary, as a route's mapping would make it."""
    return jsonxml.json_to_xml(json.dumps(document, ensure_ascii=False))


def dossier_call(number: str = "000.00.15.H41-260302-0001", **changes: Any) -> dict[str, Any]:
    dossier = {
        "MaHoSo": number,
        "MaTTHC": "1.009972",
        "TenTTHC": "Cấp giấy phép xây dựng",
        "ChuHoSo": "Nguyễn Thị Hoà",
        "LoaiDoiTuong": "1",
        "NgayTiepNhan": "20260302081500",
        "NgayHenTra": "20260316170000",
        "TrangThaiHoSo": "2",
        "HinhThuc": "0",
        "DonViXuLy": "Sở Xây dựng tỉnh Nghệ An",
        **changes,
    }
    return {"service": "DongBoHoSoMC", "isUpdating": "False", "data": [dossier]}


def dossier_message(number: str = "000.00.15.H41-260302-0001", **changes: Any) -> Message:
    return Message(body=json_body(dossier_call(number, **changes)), kind="portal.dossier")


# --- receive ------------------------------------------------------------------


def test_dossiers_are_polled_page_by_page_and_none_comes_twice(
    make_adapter: Make, onestop: OneStopSandbox
) -> None:
    numbers = [onestop.add_dossier()["dossierNo"] for _ in range(250)]
    adapter = make_adapter(configs.onestop_dossiers(onestop, max_pages=2), "onestop-dossiers")
    inbox = RecordingInbox()
    assert adapter.receive(inbox) == 200, "two pages of 100: a bounded batch per poll"
    assert adapter.receive(inbox) == 50
    assert adapter.receive(inbox) == 0
    assert [field(m, "dossierNo") for m in inbox.messages] == numbers
    first = inbox.messages[0]
    assert first.kind == "onestop.dossier" and first.source == "onestop-dossiers"
    assert first.source_key == f"{numbers[0]}/1"
    assert xml.parse(first.body).getroot().tag == jsonxml.MAP

    onestop.update_dossier(numbers[7], dossierStatus="processing")
    assert adapter.receive(inbox) == 1, "a changed dossier comes again, as a new version"
    assert inbox.messages[-1].source_key == f"{numbers[7]}/2"
    assert field(inbox.messages[-1], "dossierStatus") == "processing"


def test_items_sharing_the_cursor_value_across_a_page_boundary_are_neither_lost_nor_repeated(
    make_adapter: Make, onestop: OneStopSandbox
) -> None:
    same = "2026-03-02T01:15:00.000000Z"
    numbers = [onestop.add_dossier(updatedAt=same)["dossierNo"] for _ in range(5)]
    adapter = make_adapter(configs.onestop_dossiers(onestop, page_size=2, max_pages=1))
    inbox = RecordingInbox()
    until(lambda: adapter.receive(inbox) == 0 and len(inbox.messages) >= 5, "all five", 20)
    assert sorted(field(m, "dossierNo") for m in inbox.messages) == sorted(numbers)
    later = onestop.add_dossier()
    assert adapter.receive(inbox) == 1
    assert field(inbox.messages[-1], "dossierNo") == later["dossierNo"]


def test_steps_follow_the_answers_cursor_and_a_new_instance_resumes_there(
    make_adapter: Make, onestop: OneStopSandbox
) -> None:
    dossier = onestop.add_dossier()["dossierNo"]
    for _ in range(7):
        onestop.add_step(dossier)
    raw = configs.onestop_steps(onestop, page_size=3, max_pages=2)
    inbox = RecordingInbox()
    assert make_adapter(raw, "steps").receive(inbox) == 6
    again = make_adapter(raw, "steps")  # a restart: the cursor is in the store
    assert again.receive(inbox) == 1
    assert again.receive(inbox) == 0
    assert [m.source_key for m in inbox.messages] == [str(n) for n in range(1, 8)]
    assert onestop.calls["steps"] == 4, "pages 1-2, page 3, then one poll that found nothing"


def test_pages_linked_by_next_are_followed(make_adapter: Make, onestop: OneStopSandbox) -> None:
    raw = configs.onestop_dossiers(onestop)
    for option in ("cursor_param", "cursor_field", "page_param", "page_size_param"):
        raw.pop(option)
    raw.update(
        operations={"catalogue": {"path": "/procedures", "query": {"limit": "10"}}},
        receive_operation="catalogue",
        pagination="next_link",
        next_path="response.links.next",
        item_key="code",
    )
    inbox = RecordingInbox()
    assert make_adapter(raw).receive(inbox) == 25
    assert onestop.calls["procedures"] == 3


def test_the_cursor_moves_only_once_the_bus_has_the_items(
    make_adapter: Make, onestop: OneStopSandbox, cursors: Any
) -> None:
    onestop.add_dossier()

    class StoreDown:
        def accept(self, messages: Sequence[Message]) -> list[Acceptance]:
            raise TransientError("the store is not answering")

    adapter = make_adapter(configs.onestop_dossiers(onestop), "onestop-dossiers")
    with pytest.raises(TransientError):
        adapter.receive(StoreDown())
    assert cursors.get("onestop-dossiers:dossiers") is None
    inbox = RecordingInbox()
    assert adapter.receive(inbox) == 1
    assert cursors.get("onestop-dossiers:dossiers")


def test_repeats_the_bus_already_has_are_handed_over_once_and_counted(
    make_adapter: Make, onestop: OneStopSandbox, cursors: Any
) -> None:
    # receive() returns what it handed over (the adapter contract); the bus tells
    # repeats from new messages by their acceptances, so 'run --once' still ends.
    onestop.add_dossier()

    class Repeats(RecordingInbox):
        def accept(self, messages: Sequence[Message]) -> list[Acceptance]:
            super().accept(messages)
            return [Acceptance(m.id, duplicate=True) for m in messages]

    adapter = make_adapter(configs.onestop_dossiers(onestop))
    inbox = Repeats()
    assert adapter.receive(inbox) == 1
    assert adapter.receive(inbox) == 0, "the cursor moved past the repeat"
    assert len(inbox.messages) == 1


def test_an_item_that_fails_its_schema_is_handed_over_marked_invalid(
    make_adapter: Make, onestop: OneStopSandbox, tmp_path: Path
) -> None:
    schema = {
        "type": "object",
        "required": ["dossierNo"],
        "properties": {"receiveDate": {"type": "string"}},
    }
    (tmp_path / "dossier.schema.json").write_text(json.dumps(schema))
    onestop.add_dossier()
    onestop.add_dossier(receiveDate=None)
    adapter = make_adapter(configs.onestop_dossiers(onestop, item_schema="dossier.schema.json"))
    inbox = RecordingInbox()
    adapter.receive(inbox)
    good, bad = inbox.messages
    assert INVALID_HEADER not in good.headers
    assert "receiveDate" in bad.headers[INVALID_HEADER]
    assert "item_schema" in bad.headers[INVALID_HEADER]


# --- authentication -------------------------------------------------------------


def test_an_expired_token_is_renewed_after_the_401_and_the_call_made_again(
    make_adapter: Make, onestop: OneStopSandbox
) -> None:
    onestop.add_dossier()
    adapter = make_adapter(configs.onestop_dossiers(onestop))
    adapter.receive(RecordingInbox())
    onestop.expire_tokens()
    onestop.add_dossier()
    inbox = RecordingInbox()
    assert adapter.receive(inbox) == 1
    assert onestop.tokens_issued == 2
    assert len(onestop.refused) == 1, "one refused call, then the renewed token worked"


def test_a_token_is_renewed_before_it_expires(make_adapter: Make, onestop: OneStopSandbox) -> None:
    onestop.token_ttl = 1  # answered as expires_in: 1
    adapter = make_adapter(configs.onestop_dossiers(onestop))
    adapter.receive(RecordingInbox())
    login = adapter.auth
    until(lambda: time.monotonic() > login._expires_at, "the token's announced end")  # type: ignore[attr-defined]
    adapter.receive(RecordingInbox())
    assert onestop.tokens_issued == 2
    assert onestop.refused == [], "renewed before the system had to refuse it"


def test_credentials_refused_again_after_a_renewal_stop_the_endpoint(
    make_adapter: Make, onestop: OneStopSandbox
) -> None:
    adapter = make_adapter(configs.onestop_dossiers(onestop))
    onestop.inject(401, {"code": "401", "message": "token revoked"}, times=2, path="/dossiers")
    with pytest.raises(FatalError, match="refused even after logging in again.*token revoked"):
        adapter.receive(RecordingInbox())
    assert onestop.tokens_issued == 2


def test_a_login_refused_is_fatal_and_names_what_to_check(
    make_adapter: Make, onestop: OneStopSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(configs.ONESTOP_SECRET_ENV, "wrong-secret")
    adapter = make_adapter(configs.onestop_dossiers(onestop))
    with pytest.raises(FatalError, match=r"login call .* refused \(HTTP 401\).*client_secret") as e:
        adapter.receive(RecordingInbox())
    assert "wrong-secret" not in str(e.value)


def test_forbidden_is_fatal_after_one_renewal(make_adapter: Make, onestop: OneStopSandbox) -> None:
    onestop.forbidden.add("/api/v1/dossiers")
    adapter = make_adapter(configs.onestop_dossiers(onestop))
    with pytest.raises(FatalError, match="HTTP 403: this application may not call"):
        adapter.receive(RecordingInbox())
    assert onestop.tokens_issued == 2


@pytest.mark.parametrize(
    ("scheme", "settings", "env"),
    [
        ("api_key", {"auth": "api_key", "api_key": {"env": "LT_KEY"}}, "sandbox-api-key"),
        (
            "basic",
            {"auth": "basic", "username": "lienthong-motcua", "password": {"env": "LT_KEY"}},
            "sandbox-secret",
        ),
        (
            "hmac",
            {"auth": "hmac", "hmac_key_id": "lienthong", "hmac_secret": {"env": "LT_KEY"}},
            "sandbox-hmac-secret",
        ),
    ],
)
def test_other_schemes_are_accepted_by_the_system_and_a_wrong_secret_is_fatal(
    make_adapter: Make,
    monkeypatch: pytest.MonkeyPatch,
    scheme: str,
    settings: dict[str, Any],
    env: str,
) -> None:
    with OneStopSandbox(auth=scheme) as onestop:
        onestop.add_dossier()
        raw = configs.onestop_dossiers(onestop)
        for option in ("auth", "login_path", "client_id", "client_secret"):
            raw.pop(option)
        raw.update(settings)
        monkeypatch.setenv("LT_KEY", env)
        inbox = RecordingInbox()
        assert make_adapter(raw).receive(inbox) == 1
        assert make_adapter(raw).receive(RecordingInbox()) == 0, "signed again, fresh nonce"
        monkeypatch.setenv("LT_KEY", "not-the-secret")
        with pytest.raises(FatalError, match="credentials were refused: HTTP 401") as caught:
            make_adapter(raw).receive(RecordingInbox())
        assert "not-the-secret" not in str(caught.value)


def test_a_fixed_bearer_token_cannot_be_renewed(
    make_adapter: Make, onestop: OneStopSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    helper = make_adapter(configs.onestop_dossiers(onestop))
    token, _ = helper.auth._current()  # type: ignore[attr-defined]
    monkeypatch.setenv("LT_TOKEN", token)
    raw = configs.onestop_dossiers(onestop)
    for option in ("login_path", "client_id", "client_secret"):
        raw.pop(option)
    raw.update(auth="bearer", token={"env": "LT_TOKEN"})
    adapter = make_adapter(raw)
    adapter.receive(RecordingInbox())
    onestop.expire_tokens()
    with pytest.raises(FatalError, match="credentials were refused: HTTP 401"):
        adapter.receive(RecordingInbox())


# --- send -----------------------------------------------------------------------


def test_the_portal_gets_the_dossier_and_a_repeat_add_becomes_an_update(
    make_adapter: Make, portal: PortalSandbox
) -> None:
    adapter = make_adapter(configs.portal(portal), "portal")
    adapter.send(dossier_message(), key="k-1")
    # A redelivery, or a dossier the portal already has: "đã tồn tại" (-3), so update it.
    adapter.send(dossier_message(ChuHoSo="Nguyễn Thị Hoà (đã sửa)"), key="k-2")
    assert list(portal.dossiers) == ["000.00.15.H41-260302-0001"]
    assert portal.dossiers["000.00.15.H41-260302-0001"]["ChuHoSo"] == "Nguyễn Thị Hoà (đã sửa)"
    assert portal.refusals == {"-3": 1}
    assert portal.logins == 1, "one session serves every call"


def test_an_update_of_a_dossier_the_portal_lacks_becomes_an_add(
    make_adapter: Make, portal: PortalSandbox
) -> None:
    adapter = make_adapter(configs.portal(portal))
    first_seen_late = dossier_call(TrangThaiHoSo="4")
    first_seen_late["isUpdating"] = "True"  # the bus met this dossier at its 3rd version
    adapter.send(Message(body=json_body(first_seen_late), kind="portal.dossier"), key="k")
    assert portal.dossiers["000.00.15.H41-260302-0001"]["TrangThaiHoSo"] == "4"
    assert portal.refusals == {"-4": 1}


def test_progress_before_its_dossier_is_retried_later(
    make_adapter: Make, portal: PortalSandbox
) -> None:
    adapter = make_adapter(configs.portal(portal))
    step = {
        "service": "CapNhatTienDoHoSoMC",
        "data": [
            {
                "MaHoSo": "000.00.15.H41-260302-0001",
                "NguoiXuLy": "Võ Văn Minh",
                "ThoiDiemXuLy": "20260305142000",
                "NoiDungXuLy": "Thẩm định",
                "TrangThai": "4",
            }
        ],
    }
    message = Message(body=json_body(step), kind="portal.progress")
    with pytest.raises(TransientError, match=r"error_code -4: Hồ sơ .* không tồn tại"):
        adapter.send(message, key="k-1")
    adapter.send(dossier_message(), key="k-2")
    adapter.send(message, key="k-1")
    adapter.send(message, key="k-1")  # a redelivery: the portal records the step once
    assert portal.steps_recorded == 1 and portal.step_repeats == 1


def test_an_expired_session_is_renewed_from_the_portals_error_code(
    make_adapter: Make, portal: PortalSandbox
) -> None:
    adapter = make_adapter(configs.portal(portal))
    adapter.send(dossier_message(), key="k-1")
    portal.expire_sessions()
    adapter.send(dossier_message("000.00.15.H41-260302-0002"), key="k-2")
    assert portal.logins == 2
    assert len(portal.dossiers) == 2


def test_the_portals_error_code_rejects_the_message_with_the_code_and_text(
    make_adapter: Make, portal: PortalSandbox
) -> None:
    adapter = make_adapter(configs.portal(portal))
    with pytest.raises(RejectedError, match=r"error_code -2: MaHoSo 'HS-2026-1' không đúng mẫu"):
        adapter.send(dossier_message("HS-2026-1"), key="k-1")
    assert portal.dossiers == {}


def test_a_message_of_a_kind_no_operation_sends_is_rejected_with_the_fix(
    make_adapter: Make, portal: PortalSandbox
) -> None:
    adapter = make_adapter(configs.portal(portal))
    with pytest.raises(RejectedError, match="no operation sends messages of kind 'xml'.*replay"):
        adapter.send(Message(body=json_body(dossier_call())), key="k")


def test_a_step_is_posted_once_per_delivery_key(
    make_adapter: Make, onestop: OneStopSandbox
) -> None:
    number = onestop.add_dossier()["dossierNo"]
    adapter = make_adapter(configs.onestop_opinions(onestop))
    assert (
        Capability.SEND in adapter.capabilities and Capability.RECEIVE not in adapter.capabilities
    )
    opinion = {
        "dossierNo": number,
        "actionUser": "Sở Tài chính",
        "actionNote": "Đồng ý",
        "stepStatus": "processing",
    }
    message = Message(body=json_body(opinion), kind="onestop.opinion")
    adapter.send(message, key="key-A")
    adapter.send(message, key="key-A")
    assert [s["actionNote"] for s in onestop.steps] == ["Đồng ý"]
    adapter.send(message, key="key-B")
    assert len(onestop.steps) == 2


def test_the_delivery_key_can_travel_in_a_body_field(
    make_adapter: Make, onestop: OneStopSandbox
) -> None:
    number = onestop.add_dossier()["dossierNo"]
    raw = configs.onestop_opinions(onestop)
    raw["operations"]["add-step"]["idempotency_field"] = "requestId"
    adapter = make_adapter(raw)
    opinion = {"dossierNo": number, "actionUser": "A", "actionNote": "B", "stepStatus": "done"}
    adapter.send(Message(body=json_body(opinion), kind="onestop.opinion"), key="key-7")
    assert onestop.steps[-1]["requestId"] == "key-7"


def test_a_4xx_is_rejected_with_the_systems_own_error_text(
    make_adapter: Make, onestop: OneStopSandbox
) -> None:
    adapter = make_adapter(configs.onestop_opinions(onestop, error_message_path="message"))
    opinion = {
        "dossierNo": "000.00.15.H41-260101-9999",
        "actionUser": "A",
        "actionNote": "B",
        "stepStatus": "done",
    }
    with pytest.raises(RejectedError, match="HTTP 404: no dossier 000.00.15.H41-260101-9999"):
        adapter.send(Message(body=json_body(opinion), kind="onestop.opinion"), key="k")


@pytest.mark.parametrize(
    ("status", "retry_after", "expected"),
    [
        (429, "7", 7.0),
        (503, None, None),
        (429, "99999999", 3600.0),  # capped: a hostile answer cannot park a delivery for years
        (429, "an HTTP date 60 s ahead", 60.0),
    ],
)
def test_429_and_5xx_are_transient_and_carry_retry_after(
    make_adapter: Make,
    portal: PortalSandbox,
    status: int,
    retry_after: str | None,
    expected: float | None,
) -> None:
    adapter = make_adapter(configs.portal(portal))
    if retry_after and not retry_after.isdigit():
        retry_after = formatdate(time.time() + 60, usegmt=True)
    headers = {"Retry-After": retry_after} if retry_after else {}
    portal.inject(status, {"message": "chậm lại"}, headers=headers, path="/integration")
    with pytest.raises(TransientError, match=f"HTTP {status}: chậm lại") as caught:
        adapter.send(dossier_message(), key="k")
    if expected is None:
        assert caught.value.retry_after is None
    else:
        assert caught.value.retry_after == pytest.approx(expected, abs=2)
    adapter.send(dossier_message(), key="k")
    assert len(portal.dossiers) == 1


def test_a_poll_told_to_wait_stays_quiet_until_then(
    make_adapter: Make, onestop: OneStopSandbox
) -> None:
    onestop.add_dossier()
    adapter = make_adapter(configs.onestop_dossiers(onestop))
    onestop.inject(
        429, {"message": "too many requests"}, headers={"Retry-After": "30"}, path="/dossiers"
    )
    with pytest.raises(TransientError):
        adapter.receive(RecordingInbox())
    calls = onestop.calls.get("dossiers", 0)
    assert adapter.receive(RecordingInbox()) == 0
    assert onestop.calls.get("dossiers", 0) == calls, "no call before the Retry-After"


def test_the_request_schema_stops_a_bad_message_before_it_leaves(
    make_adapter: Make, portal: PortalSandbox, tmp_path: Path
) -> None:
    schema = {
        "type": "object",
        "properties": {
            "data": {
                "type": "array",
                "items": {"properties": {"NgayTiepNhan": {"pattern": "^[0-9]{14}$"}}},
            }
        },
    }
    (tmp_path / "dong-bo.schema.json").write_text(json.dumps(schema))
    raw = configs.portal(portal)
    raw["operations"]["dong-bo-ho-so"]["request_schema"] = "dong-bo.schema.json"
    adapter = make_adapter(raw)
    bad = dossier_message(NgayTiepNhan="2026-03-02")
    with pytest.raises(RejectedError, match=r"request_schema: \$.data\[0\].NgayTiepNhan"):
        adapter.send(bad, key="k")
    assert portal.calls.get("integration", 0) == 0
    adapter.send(dossier_message(), key="k")


def test_a_message_not_in_the_json_vocabulary_is_rejected_with_the_fix(
    make_adapter: Make, portal: PortalSandbox
) -> None:
    adapter = make_adapter(configs.portal(portal))
    with pytest.raises(RejectedError, match="not JSON in the XPath 3.1 vocabulary.*mapping must"):
        adapter.send(
            Message(body=b"<hoSo><MaHoSo>1</MaHoSo></hoSo>", kind="portal.dossier"), key="k"
        )
    clash = dossier_call()
    clash["madonvi"] = "000.00.99.H41"
    with pytest.raises(RejectedError, match=r"already has \['madonvi'\].*body_fields"):
        adapter.send(Message(body=json_body(clash), kind="portal.dossier"), key="k")


def test_path_values_are_encoded_and_header_values_cannot_break_lines(
    make_adapter: Make, onestop: OneStopSandbox
) -> None:
    raw = configs.onestop_opinions(onestop)
    raw["operations"]["add-step"]["headers"] = {"X-Dossier": "{body.dossierNo}"}
    adapter = make_adapter(raw)
    sneaky = {
        "dossierNo": "../../oauth2/token",
        "actionUser": "A",
        "actionNote": "B",
        "stepStatus": "x",
    }
    with pytest.raises(RejectedError, match="HTTP 404: no dossier ../../oauth2/token"):
        adapter.send(Message(body=json_body(sneaky), kind="onestop.opinion"), key="k")
    split = dict(sneaky, dossierNo="X\r\nX-Admin: yes")
    with pytest.raises(RejectedError, match="X-Dossier would carry a line break"):
        adapter.send(Message(body=json_body(split), kind="onestop.opinion"), key="k")


def test_a_secret_echoed_by_the_server_never_reaches_an_error(
    make_adapter: Make, portal: PortalSandbox
) -> None:
    adapter = make_adapter(configs.portal(portal))
    portal.inject(
        400, {"message": "bad password sandbox-password for lienthong"}, path="/integration"
    )
    with pytest.raises(RejectedError) as caught:
        adapter.send(dossier_message(), key="k")
    assert "sandbox-password" not in str(caught.value)
    assert "bad password *** for lienthong" in str(caught.value)


# --- configuration ----------------------------------------------------------------


def test_every_config_problem_is_reported_at_once(
    make_adapter: Make, onestop: OneStopSandbox
) -> None:
    raw = configs.onestop_dossiers(onestop)
    raw.update(
        auth="oauth",
        pagination="pages",
        client_secret="written-in-the-file",
        send_operation="push",
        operations={"dossiers": {"path": "dossiers/{dossier}", "verb": "GET"}},
        cursor_field="",
    )
    with pytest.raises(ConfigError) as caught:
        make_adapter(raw)
    text = str(caught.value)
    for expected in (
        "auth is 'oauth'; one of none, basic, bearer, login, oauth2",
        "pagination is 'pages'",
        "operations.dossiers.verb is not an operation setting",
        "unknown placeholder {dossier}",
        "operations.dossiers.path 'dossiers/{dossier}' must start with '/'",
        "send_operation 'push' is not in operations",
        "cursor_param needs cursor_path",
        "client_secret is written in the config file",
    ):
        assert expected in text
    assert "written-in-the-file" not in text


def test_the_endpoint_declares_only_what_its_config_does(
    make_adapter: Make, onestop: OneStopSandbox, portal: PortalSandbox
) -> None:
    receiver = make_adapter(configs.onestop_dossiers(onestop), start=False)
    sender = make_adapter(configs.portal(portal), start=False)
    assert receiver.capabilities == frozenset({Capability.RECEIVE})
    assert sender.capabilities == frozenset({Capability.SEND})
    assert RestJsonAdapter.capabilities == frozenset({Capability.SEND, Capability.RECEIVE})


def test_an_answer_outside_its_response_schema_fails_the_poll(
    make_adapter: Make, onestop: OneStopSandbox, tmp_path: Path
) -> None:
    schema = {"type": "object", "required": ["response"], "properties": {"code": {"const": "200"}}}
    (tmp_path / "answer.schema.json").write_text(json.dumps(schema))
    onestop.add_dossier()
    raw = configs.onestop_dossiers(onestop)
    raw["operations"]["dossiers"]["response_schema"] = "answer.schema.json"
    adapter = make_adapter(raw)
    onestop.inject(200, {"code": "200", "items": []}, path="/dossiers")
    with pytest.raises(
        FatalError, match="does not match response_schema: \\$: 'response' is a required"
    ):
        adapter.receive(RecordingInbox())
    assert adapter.receive(RecordingInbox()) == 1, "a conforming answer is taken"
