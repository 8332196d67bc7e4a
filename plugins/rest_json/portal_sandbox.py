"""SANDBOX national public-service portal (Cổng Dịch vụ công quốc gia): its sync API.

For tests and demos only. Shaped on what two independent public clients send
and read (VietOpenCPS/opencps-v2 ``DVCQGIntegrationActionImpl``,
HuanVu201/DichVuCong_KhoaLuan_PASETO ``SyncLocalDataToDVCQGService``; see
docs/rest.md for what each showed):

- ``POST /api/auth`` with ``{"username", "password"}`` answers
  ``{"error_code": 0, "session": "..."}``; the session lives ``session_ttl``;
- ``POST /api/integration`` with ``{"session", "madonvi", "service", ...}``:

  - ``DongBoHoSoMC`` (``isUpdating`` "True"/"False", ``data`` = dossiers with
    ``MaHoSo``, ``MaTTHC``, ``TenTTHC``, ``ChuHoSo``, ``NgayTiepNhan``,
    ``NgayHenTra``, ``TrangThaiHoSo``...): adds or updates dossiers, all or none;
  - ``CapNhatTienDoHoSoMC`` (``data`` = steps with ``MaHoSo``, ``NguoiXuLy``,
    ``ThoiDiemXuLy``, ``NoiDungXuLy``, ``TrangThai``...): records progress; the
    same step twice is recorded once;
  - ``TraCuuHoSo`` (``mahoso``): the dossier and its progress, in ``result``.

Every answer is HTTP 200 with an ``error_code``; the official table of codes
is not public, so the sandbox's are its own and documented here:

======  ==========================================================
``00``  success (login answers ``0``, a number, as the clients read it)
``-1``  session missing, unknown or expired (log in again)
``-2``  invalid request or data (the message says which field)
``-3``  the dossier already exists (a second add)
``-4``  no such dossier (an update or progress before the dossier)
======  ==========================================================

Times are ``yyyyMMddHHmmss`` in Asia/Ho_Chi_Minh; dossier numbers follow the
circular 01/2018 pattern ``V1V2V3.Z1Z2.Y1Y2.MX1X2-YYMMDD-XXXX``; status codes
are ``1``-``10`` (both clients map their local statuses onto them).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from datetime import datetime
from typing import Any

from .sandbox import JsonSandbox, Reply, SandboxRequest

DOSSIER_NUMBER = re.compile(r"\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2}-\d{6}-\d{4}")
STATUSES = frozenset(str(n) for n in range(1, 11))
DOSSIER_REQUIRED = (
    "MaHoSo",
    "MaTTHC",
    "TenTTHC",
    "ChuHoSo",
    "LoaiDoiTuong",
    "NgayTiepNhan",
    "TrangThaiHoSo",
    "HinhThuc",
    "DonViXuLy",
)
DOSSIER_DATES = ("NgayTiepNhan", "NgayHenTra", "NgayTra", "NgayKetThucXuLy", "NgayNopHoSo")
STEP_REQUIRED = ("MaHoSo", "NguoiXuLy", "ThoiDiemXuLy", "NoiDungXuLy", "TrangThai")
STEP_DATES = ("ThoiDiemXuLy", "NgayBatDau", "NgayKetThucTheoQuyDinh")
MAX_BATCH = 100


def answer(code: str | int, message: str, **more: Any) -> Reply:
    return Reply(200, {"error_code": code, "message": message, **more})


class _Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _date(value: Any, field: str, *, required: bool) -> None:
    text = "" if value is None else str(value)
    if not text:
        if required:
            raise _Refused("-2", f"thiếu {field}")
        return
    try:
        if len(text) != 14:
            raise ValueError(text)
        datetime.strptime(text, "%Y%m%d%H%M%S")
    except ValueError as exc:
        raise _Refused("-2", f"{field} '{text}' không đúng định dạng yyyyMMddHHmmss") from exc


class PortalSandbox(JsonSandbox):
    """SANDBOX national portal (see the module docstring)."""

    name = "portal"

    def __init__(
        self,
        *,
        username: str = "lienthong",
        password: str = "sandbox-password",
        agencies: tuple[str, ...] = ("000.00.00.H41",),
        session_ttl: float = 3600.0,
        lean: bool = False,
        latency: float = 0.0,
        **server: Any,
    ) -> None:
        super().__init__(**server)
        #: Seconds each service call waits before it is answered: the real portal is across
        #: the country, not on loopback. Calls wait side by side (a thread per connection).
        self.latency = latency
        self.username = username
        self.password = password
        self.agencies = frozenset(agencies)
        self.session_ttl = session_ttl
        #: Keep only counts and digests (a benchmark's year would not fit in memory as records).
        self.lean = lean
        self.sessions: dict[str, float] = {}
        self.logins = 0
        self.dossiers: dict[str, dict[str, Any]] = {}
        self.progress: dict[str, list[dict[str, Any]]] = {}
        self._step_keys: set[bytes] = set()
        self.steps_recorded = 0
        self.step_repeats = 0
        self.refusals: dict[str, int] = {}
        self.route("POST", r"/api/auth", self._login, "auth")
        self.route("POST", r"/api/integration", self._integration, "integration")

    def expire_sessions(self) -> None:
        """End every session, as the portal does when they time out."""
        with self.lock:
            self.sessions.clear()

    def stats(self) -> dict[str, Any]:
        base = super().stats()
        with self.lock:
            base.update(
                dossiers=len(self.dossiers),
                steps=self.steps_recorded,
                step_repeats=self.step_repeats,
                logins=self.logins,
                refusals=dict(self.refusals),
            )
        return base

    # --- the API ---

    def _login(self, request: SandboxRequest) -> Reply:
        body = request.json()
        user = str(body.get("username", "")) if isinstance(body, dict) else ""
        password = str(body.get("password", "")) if isinstance(body, dict) else ""
        if not (
            hmac.compare_digest(user.encode(), self.username.encode())
            and hmac.compare_digest(password.encode(), self.password.encode())
        ):
            return answer(-1, "Sai tên đăng nhập hoặc mật khẩu")
        session = secrets.token_hex(16)
        with self.lock:
            self.sessions[session] = time.monotonic() + self.session_ttl
            self.logins += 1
        return answer(0, "Thành công", session=session)

    def _integration(self, request: SandboxRequest) -> Reply:
        if self.latency:
            time.sleep(self.latency)
        body = request.json()
        try:
            if not isinstance(body, dict):
                raise _Refused("-2", "yêu cầu phải là một đối tượng JSON")
            self._session(body.get("session"))
            madonvi = str(body.get("madonvi") or "")
            if madonvi not in self.agencies:
                raise _Refused("-2", f"mã đơn vị '{madonvi}' không hợp lệ")
            service = body.get("service")
            if service == "DongBoHoSoMC":
                return self._sync_dossiers(body)
            if service == "CapNhatTienDoHoSoMC":
                return self._progress(body)
            if service == "TraCuuHoSo":
                return self._lookup(body)
            raise _Refused("-2", f"dịch vụ '{service}' không được hỗ trợ")
        except _Refused as refused:
            with self.lock:
                self.refusals[refused.code] = self.refusals.get(refused.code, 0) + 1
            return answer(refused.code, refused.message)

    def _session(self, session: Any) -> None:
        with self.lock:
            expires = self.sessions.get(str(session or ""))
        if expires is None or expires < time.monotonic():
            raise _Refused("-1", "Phiên làm việc không hợp lệ hoặc đã hết hạn")

    def _data(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        data = body.get("data")
        if not isinstance(data, list) or not data:
            raise _Refused("-2", "data phải là một mảng không rỗng")
        if len(data) > MAX_BATCH:
            raise _Refused("-2", f"tối đa {MAX_BATCH} bản ghi mỗi lần")
        if not all(isinstance(item, dict) for item in data):
            raise _Refused("-2", "mỗi phần tử của data phải là một đối tượng")
        return data

    def _sync_dossiers(self, body: dict[str, Any]) -> Reply:
        updating = str(body.get("isUpdating", "False")).lower() in ("true", "1")
        data = self._data(body)
        for dossier in data:
            for field in DOSSIER_REQUIRED:
                if dossier.get(field) in (None, ""):
                    raise _Refused("-2", f"hồ sơ thiếu {field}")
            number = str(dossier["MaHoSo"])
            if not DOSSIER_NUMBER.fullmatch(number):
                raise _Refused(
                    "-2", f"MaHoSo '{number}' không đúng mẫu V1V2V3.Z1Z2.Y1Y2.MX1X2-YYMMDD-XXXX"
                )
            if str(dossier["TrangThaiHoSo"]) not in STATUSES:
                raise _Refused("-2", f"TrangThaiHoSo '{dossier['TrangThaiHoSo']}' không hợp lệ")
            for field in DOSSIER_DATES:
                _date(dossier.get(field), field, required=field == "NgayTiepNhan")
        with self.lock:
            for dossier in data:
                number = str(dossier["MaHoSo"])
                if not updating and number in self.dossiers:
                    raise _Refused("-3", f"Hồ sơ {number} đã tồn tại")
                if updating and number not in self.dossiers:
                    raise _Refused("-4", f"Hồ sơ {number} không tồn tại")
            for dossier in data:
                number = str(dossier["MaHoSo"])
                kept = {"TrangThaiHoSo": str(dossier["TrangThaiHoSo"])}
                self.dossiers[number] = kept if self.lean else dict(dossier)
                self.progress.setdefault(number, [])
        return answer("00", "Thành công")

    def _progress(self, body: dict[str, Any]) -> Reply:
        data = self._data(body)
        for step in data:
            for field in STEP_REQUIRED:
                if step.get(field) in (None, ""):
                    raise _Refused("-2", f"tiến độ thiếu {field}")
            if str(step["TrangThai"]) not in STATUSES:
                raise _Refused("-2", f"TrangThai '{step['TrangThai']}' không hợp lệ")
            for field in STEP_DATES:
                _date(step.get(field), field, required=field == "ThoiDiemXuLy")
        with self.lock:
            for step in data:
                if str(step["MaHoSo"]) not in self.dossiers:
                    raise _Refused("-4", f"Hồ sơ {step['MaHoSo']} không tồn tại")
            for step in data:
                number = str(step["MaHoSo"])
                identity = "\0".join(
                    str(step[f]) for f in ("MaHoSo", "ThoiDiemXuLy", "TrangThai", "NoiDungXuLy")
                )
                digest = hashlib.blake2b(identity.encode(), digest_size=12).digest()
                if digest in self._step_keys:
                    self.step_repeats += 1
                    continue
                self._step_keys.add(digest)
                self.steps_recorded += 1
                self.dossiers[number]["TrangThaiHoSo"] = str(step["TrangThai"])
                if not self.lean:
                    self.progress[number].append(dict(step))
        return answer("00", "Thành công")

    def _lookup(self, body: dict[str, Any]) -> Reply:
        number = str(body.get("mahoso") or "")
        with self.lock:
            dossier = self.dossiers.get(number)
            if dossier is None:
                return answer("00", "Không tìm thấy hồ sơ", result=[])
            found = {**dossier, "QuaTrinhXuLy": list(self.progress.get(number, []))}
        return answer("00", "Thành công", result=[found])
