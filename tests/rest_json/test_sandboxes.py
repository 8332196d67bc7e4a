"""The sandboxes answer what the public clients send, the way the clients read it.

The national portal sandbox is driven with the exact calls the two public
clients make (opencps-v2's login -> session, then ``{session, madonvi,
service, ...}``; the second client's add -> "đã tồn tại" -> update), with a
bare HTTP client, not our adapter: the sandbox must agree with them, not only
with us. The one-stop sandbox is checked the same way for its gateway's rules.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
import urllib3

from lienthong.plugins.rest_json.onestop_sandbox import OneStopSandbox, Year
from lienthong.plugins.rest_json.portal_sandbox import PortalSandbox
from lienthong.plugins.rest_json.sandbox import SANDBOX_HEADER
from tests.rest_json import configs

http = urllib3.PoolManager(retries=False)


def post(url: str, body: Any, **headers: str) -> tuple[int, Any, Any]:
    answer = http.request(
        "POST",
        url,
        body=json.dumps(body, ensure_ascii=False).encode(),
        headers={"Content-Type": "application/json", **headers},
    )
    return answer.status, json.loads(answer.data), answer.headers


def get(url: str, **headers: str) -> tuple[int, Any]:
    answer = http.request("GET", url, headers=headers)
    return answer.status, json.loads(answer.data)


@pytest.fixture
def session(portal: PortalSandbox) -> Iterator[str]:
    status, body, headers = post(
        f"{portal.url}/api/auth", {"username": "lienthong", "password": "sandbox-password"}
    )
    assert status == 200 and headers[SANDBOX_HEADER] == "portal", "labelled as a sandbox"
    assert body["error_code"] == 0, "opencps reads getInt('error_code') == 0"
    yield body["session"]


def service(portal: PortalSandbox, session: str, name: str, **fields: Any) -> dict[str, Any]:
    status, body, _ = post(
        f"{portal.url}/api/integration",
        {"session": session, "madonvi": configs.MADONVI, "service": name, **fields},
    )
    assert status == 200, "the portal answers 200 and says what happened in error_code"
    return body


def dossier(number: str = "000.00.15.H41-260302-0001", **changes: str) -> dict[str, str]:
    return {
        "MaHoSo": number,
        "MaTTHC": "1.009972",
        "TenTTHC": "Cấp giấy phép xây dựng",
        "ChuHoSo": "Nguyễn Thị Hoà",
        "LoaiDoiTuong": "1",
        "NgayTiepNhan": "20260302081500",
        "NgayHenTra": "",
        "TrangThaiHoSo": "2",
        "HinhThuc": "0",
        "DonViXuLy": "Sở Xây dựng tỉnh Nghệ An",
        **changes,
    }


def test_the_portal_adds_then_says_already_exists_then_updates(
    portal: PortalSandbox, session: str
) -> None:
    added = service(portal, session, "DongBoHoSoMC", isUpdating="False", data=[dossier()])
    assert added["error_code"] == "00"
    again = service(portal, session, "DongBoHoSoMC", isUpdating="False", data=[dossier()])
    assert (
        again["error_code"] == "-3" and "đã tồn tại" in again["message"]
    )  # what the client matches
    updated = service(
        portal, session, "DongBoHoSoMC", isUpdating="True", data=[dossier(TrangThaiHoSo="4")]
    )
    assert updated["error_code"] == "00"
    unknown = service(
        portal,
        session,
        "DongBoHoSoMC",
        isUpdating="True",
        data=[dossier("000.00.15.H41-260302-0099")],
    )
    assert unknown["error_code"] == "-4"


def test_progress_is_recorded_once_and_looked_up_with_the_dossier(
    portal: PortalSandbox, session: str
) -> None:
    service(portal, session, "DongBoHoSoMC", isUpdating="False", data=[dossier()])
    step = {
        "MaHoSo": "000.00.15.H41-260302-0001",
        "NguoiXuLy": "Võ Văn Minh",
        "ChucDanh": "",
        "ThoiDiemXuLy": "20260305142000",
        "PhongBanXuLy": "",
        "NoiDungXuLy": "Thẩm định hồ sơ",
        "TrangThai": "4",
        "NgayBatDau": "",
        "NgayKetThucTheoQuyDinh": "",
    }
    assert service(portal, session, "CapNhatTienDoHoSoMC", data=[step])["error_code"] == "00"
    assert service(portal, session, "CapNhatTienDoHoSoMC", data=[step])["error_code"] == "00"
    found = service(portal, session, "TraCuuHoSo", mahoso="000.00.15.H41-260302-0001")
    [record] = found["result"]  # opencps: result.length() > 0 means "already synced"
    assert record["TrangThaiHoSo"] == "4"
    assert [p["NoiDungXuLy"] for p in record["QuaTrinhXuLy"]] == ["Thẩm định hồ sơ"]
    assert (
        service(portal, session, "TraCuuHoSo", mahoso="000.00.15.H41-260302-0077")["result"] == []
    )


@pytest.mark.parametrize(
    ("fields", "code", "text"),
    [
        ({"session": "made-up"}, "-1", "Phiên làm việc"),
        ({"madonvi": "000.00.99.H99"}, "-2", "mã đơn vị"),
        ({"service": "XoaHoSo"}, "-2", "không được hỗ trợ"),
        ({"data": [dossier(NgayTiepNhan="02/03/2026")]}, "-2", "yyyyMMddHHmmss"),
        ({"data": [dossier("HS-1")]}, "-2", "V1V2V3.Z1Z2.Y1Y2.MX1X2-YYMMDD-XXXX"),
        ({"data": [dossier(TrangThaiHoSo="11")]}, "-2", "TrangThaiHoSo"),
        ({"data": [dossier(ChuHoSo="")]}, "-2", "thiếu ChuHoSo"),
        ({"data": []}, "-2", "không rỗng"),
    ],
)
def test_the_portal_refuses_bad_calls_with_its_codes(
    portal: PortalSandbox, session: str, fields: dict[str, Any], code: str, text: str
) -> None:
    call = {
        "session": session,
        "madonvi": configs.MADONVI,
        "service": "DongBoHoSoMC",
        "isUpdating": "False",
        "data": [dossier()],
        **fields,
    }
    status, body, _ = post(f"{portal.url}/api/integration", call)
    assert (status, body["error_code"]) == (200, code)
    assert text in body["message"]
    assert portal.dossiers == {}, "all or nothing"


def test_a_wrong_password_gets_no_session(portal: PortalSandbox) -> None:
    _, body, _ = post(f"{portal.url}/api/auth", {"username": "lienthong", "password": "x"})
    assert body["error_code"] == -1 and "session" not in body


def test_the_one_stop_gateway_wants_a_token_and_wraps_its_answers(onestop: OneStopSandbox) -> None:
    status, body = get(f"{onestop.url}/api/v1/dossiers")
    assert status == 401 and body["code"] == "401" and body["status"] == "error"
    basic = base64.b64encode(b"lienthong-motcua:sandbox-secret").decode()
    answer = http.request(
        "POST",
        f"{onestop.url}/oauth2/token",
        body=b"grant_type=client_credentials",
        headers={
            "Authorization": f"Basic {basic}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    token = json.loads(answer.data)
    assert token["token_type"] == "Bearer" and token["expires_in"] == 3600
    number = onestop.add_dossier()["dossierNo"]
    status, body = get(
        f"{onestop.url}/api/v1/dossiers", Authorization=f"Bearer {token['access_token']}"
    )
    assert status == 200 and set(body) == {"code", "status", "correlationId", "response"}
    assert [d["dossierNo"] for d in body["response"]["items"]] == [number]
    status, body = get(
        f"{onestop.url}/api/v1/steps?cursor=bm9wZQ", Authorization=f"Bearer {token['access_token']}"
    )
    assert status == 400 and "cursor" in body["message"]


def test_a_synthetic_year_numbers_dossiers_by_agency_day_and_sequence() -> None:
    year = Year(156_815, 5, date(2025, 1, 1))
    numbers = [year.dossier(i)["dossierNo"] for i in range(156_815)]
    assert len(set(numbers)) == len(numbers), "the portal keys dossiers by number"
    assert numbers[0] == "000.00.15.H41-250101-0001"
    for number in numbers[::997]:
        agency, day, sequence = number.rsplit("-", 2)
        assert len(day) == 6 and len(sequence) == 4 and agency.endswith(".H41")
    stamps = [year.dossier(i)["updatedAt"] for i in range(0, 156_815, 5003)]
    assert stamps == sorted(stamps), "change stamps sort as text"
    assert year.step(7)["dossierNo"] == year.dossier(1)["dossierNo"]
