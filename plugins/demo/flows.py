"""The main job on the embedded default: the reference flows against sandboxes, with a summary.

``lienthong demo`` reads ``config/reference-flows.yaml`` (or ``--config``),
starts a SANDBOX of every system it names on the loopback port its URL gives
(the axis, one accounting service per port, slapd for the directory, an SMTP
sink for mail, the one-stop-shop system and the national portal), seeds them
with a province's day (agencies on the axis, vouchers, a staff list, documents
other agencies send ours, dossiers lodged at our one-stop desks), then runs
cycles: the directory syncs (as their nightly schedule would), the bus until
nothing is due, the Department of Finance answering the reports it got, UBND
tỉnh the letters asking its opinion, and the bus again. It prints what moved,
read back from the store and the sandboxes.

Everything lives under the config's ``bus.var_dir`` (``var/demo/``), which
each run starts afresh: the sandboxes keep their state in memory, so an old
store would take their new document ids for ones it had seen. A folder that a
demo did not make is never wiped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
import shutil
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import click
from sqlalchemy import select

from lienthong import config as config_module
from lienthong.bus import Bus
from lienthong.errors import ConfigError
from lienthong.exits import Exit
from lienthong.host import PluginHost
from lienthong.store import Store, deliveries, messages, utcnow
from lienthong.sync import recent_runs

DEFAULT_FLOWS = Path("config/reference-flows.yaml")
#: A retry due within this is waited for by :meth:`Demo.drain`.
SOON = timedelta(seconds=5)
#: Marks a var folder a demo made, so only such a folder is ever wiped.
MARKER = ".lienthong-demo"

ED = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
ACC = "urn:lienthong:sandbox:accounting:v1"
FN = "http://www.w3.org/2005/xpath-functions"  # JSON as XML (fn:json-to-xml)

# --- the province the demo plays -----------------------------------------------

# Đắk Lắk: its people's committee's code is the one public code that talks to the
# national portal gives it; its departments' numbers here are the demo's.
UBND = "000.00.00.H15"  # UBND tỉnh Đắk Lắk: sends decisions
VPCP = "000.00.00.G22"  # Văn phòng Chính phủ: sends official letters
STC = "000.00.01.H15"  # Sở Tài chính: receives the financial reports
SYT = "000.00.15.H15"  # Sở Y tế: one of ours
SGD = "000.00.16.H15"  # Sở Giáo dục và Đào tạo: one of ours
NGHEAN = "000.00.00.H41"  # UBND tỉnh Nghệ An: a correspondent province

#: The axis agency list: code, name, mailbox, parent code.
AGENCIES = (
    (VPCP, "Văn phòng Chính phủ", "vanthu@chinhphu.vn", ""),
    (UBND, "UBND tỉnh Đắk Lắk", "ubnd@daklak.gov.vn", ""),
    (STC, "Sở Tài chính", "stc@daklak.gov.vn", UBND),
    (SYT, "Sở Y tế", "syt@daklak.gov.vn", UBND),
    (SGD, "Sở Giáo dục và Đào tạo", "sgddt@daklak.gov.vn", UBND),
    (NGHEAN, "UBND tỉnh Nghệ An", "ubnd@nghean.gov.vn", ""),
)
NAMES = {code: name for code, name, _, _ in AGENCIES}
#: Where each sender's promulgation place is.
PLACES = {VPCP: "Hà Nội", NGHEAN: "Nghệ An"}
#: The Department of Finance's document system, answering the reports it receives.
FINANCE_SYSTEM = ("stc-qlvb", "sandbox-secret-stc")
#: UBND tỉnh's document system, which asks to recall a document it sent.
UBND_SYSTEM = ("ubnd-qlvb", "sandbox-secret-ubnd")
#: The mail domain of the province's agencies and people.
MAIL_DOMAIN = "daklak.gov.vn"
#: The province's time: one-stop dossiers are numbered by their day in it.
VN = ZoneInfo("Asia/Ho_Chi_Minh")

#: Sở Y tế's people already in the directory: one has left, one changed post.
DIRECTORY_PEOPLE = (
    ("nva", "Nguyễn Văn An", "An", "Nguyễn", "Chuyên viên"),
    ("ttb", "Trần Thị Bình", "Bình", "Trần", "Chuyên viên"),
    ("dtminh", "Đỗ Tuấn Minh", "Minh", "Đỗ", "Văn thư"),
)
#: Staff lists Sở Y tế's personnel system drops: (cycle, people); a person is
#: (account, full name, given name, post, status).
STAFF_LISTS = (
    (
        1,
        (
            ("nva", "Nguyễn Văn An", "An", "Chuyên viên", "DangCongTac"),
            ("ttb", "Trần Thị Bình", "Bình", "Trưởng phòng Kế hoạch - Tài chính", "DangCongTac"),
            ("lthoa", "Lê Thị Hoa", "Hoa", "Văn thư", "DangCongTac"),
            ("pvduc", "Phạm Văn Đức", "Đức", "Chuyên viên", "DangCongTac"),
        ),
    ),
    (
        2,
        (
            ("nva", "Nguyễn Văn An", "An", "Chuyên viên", "NghiHuu"),
            ("ttb", "Trần Thị Bình", "Bình", "Trưởng phòng Kế hoạch - Tài chính", "DangCongTac"),
            ("lthoa", "Lê Thị Hoa", "Hoa", "Văn thư", "DangCongTac"),
            ("pvduc", "Phạm Văn Đức", "Đức", "Phó Trưởng phòng", "DangCongTac"),
            ("ntmai", "Nguyễn Thị Mai", "Mai", "Kế toán", "DangCongTac"),
        ),
    ),
)


@dataclass(frozen=True)
class Voucher:
    agency: str
    kind: str
    amount: int
    description: str


#: Vouchers entered at each agency's accounting package, by cycle (later cycles: the last).
VOUCHERS = {
    1: (
        Voucher(SYT, "receipt", 125_000_000, "Thu phí thẩm định hồ sơ hành nghề"),
        Voucher(SYT, "payment", 48_500_000, "Chi lương tháng 11"),
        Voucher(SGD, "receipt", 30_000_000, "Thu phí thi chứng chỉ"),
    ),
    2: (Voucher(SYT, "payment", 3_250_000, "Chi văn phòng phẩm"),),
    3: (Voucher(SGD, "payment", 12_000_000, "Chi tập huấn giáo viên"),),
}


@dataclass(frozen=True)
class Incoming:
    """A document another agency sends ours through the axis."""

    sender: str
    recipients: tuple[str, ...]
    number: str
    notation: str
    type_name: str
    subject: str
    content: str
    signed: bool = True
    revokes: str = ""  # the number of an earlier document of the same sender it revokes


#: Documents arriving, by cycle.
DOCUMENTS = {
    1: (
        Incoming(
            VPCP,
            (SYT,),
            "8123",
            "VPCP-KGVX",
            "Công văn",
            "V/v triển khai chiến dịch tiêm chủng mở rộng",
            "Đề nghị Sở Y tế triển khai chiến dịch tiêm chủng mở rộng trên địa bàn tỉnh.",
        ),
        Incoming(
            UBND,
            (SYT, SGD),
            "215",
            "QĐ-UBND",
            "Quyết định",
            "Về việc giao dự toán ngân sách nhà nước năm 2026",
            f"Giao dự toán chi ngân sách năm 2026: {SYT}: 1.250.000.000 đồng; "
            f"{SGD}: 2.500.000.000 đồng.",
        ),
        # Its sender's signing failed: the axis endpoints require a signature.
        Incoming(
            UBND,
            (SGD,),
            "1187",
            "UBND-VX",
            "Công văn",
            "V/v tổ chức kỳ thi học sinh giỏi cấp tỉnh",
            "Giao Sở Giáo dục và Đào tạo tổ chức kỳ thi học sinh giỏi cấp tỉnh.",
            signed=False,
        ),
        # From the correspondent province.
        Incoming(
            NGHEAN,
            (SYT,),
            "356",
            "UBND-VX",
            "Công văn",
            "V/v phối hợp phòng, chống dịch bệnh giữa hai tỉnh",
            "Đề nghị Sở Y tế tỉnh Đắk Lắk phối hợp trao đổi thông tin dịch bệnh.",
        ),
        # UBND tỉnh will ask to recall it (13) in cycle 2 and revoke it in cycle 3.
        Incoming(
            UBND,
            (SYT,),
            "1201",
            "UBND-VX",
            "Công văn",
            "V/v báo cáo tình hình dịch sốt xuất huyết",
            "Đề nghị Sở Y tế báo cáo tình hình dịch sốt xuất huyết trên địa bàn tỉnh.",
        ),
    ),
    2: (
        Incoming(
            VPCP,
            (SGD,),
            "8190",
            "VPCP-KGVX",
            "Công văn",
            "V/v chuẩn bị năm học mới",
            "Đề nghị Sở Giáo dục và Đào tạo chuẩn bị các điều kiện cho năm học mới.",
        ),
    ),
    3: (
        Incoming(
            UBND,
            (SYT,),
            "1205",
            "UBND-VX",
            "Công văn",
            "V/v thu hồi Công văn số 1201/UBND-VX",
            "Thu hồi Công văn số 1201/UBND-VX do ban hành nhầm.",
            revokes="1201",
        ),
    ),
}
#: UBND tỉnh asks to recall (13) its document of this number, in this cycle.
RECALLS = {2: "1201"}


@dataclass(frozen=True)
class Step:
    """A step of a dossier's handling, as the one-stop-shop system records it."""

    user: str
    title: str
    department: str
    note: str
    status: str  # the dossier's status after it (OpenCPS's: received, processing, ...)


@dataclass(frozen=True)
class Dossier:
    """A dossier a citizen or a business lodges at one of our agencies' one-stop desks."""

    agency: str
    service: tuple[str, str, str, str]  # procedure code and name, domain code and name
    applicant: str
    email: str
    note: str
    steps: tuple[Step, ...]  # done on the day it is lodged
    #: Done once another agency's opinion has come back (the dossier moved on from
    #: interoperating), in the next cycle.
    after_opinion: tuple[Step, ...] = ()
    business: bool = False


DESK_SYT = ("Hồ Thị Nga", "Cán bộ một cửa", "Bộ phận một cửa Sở Y tế")
DESK_SGD = ("H'Linh Niê", "Cán bộ một cửa", "Bộ phận một cửa Sở Giáo dục và Đào tạo")
#: Dossiers lodged, by cycle: one done the same day (its result mailed), one that
#: needs UBND tỉnh's opinion (asked through the axis), one just received.
DOSSIERS = {
    1: (
        Dossier(
            SYT,
            ("1.004546", "Cấp chứng chỉ hành nghề khám bệnh, chữa bệnh", "YT01", "Khám chữa bệnh"),
            "Y Bhim Niê",
            "ybhim.nie@example.vn",
            "Cấp chứng chỉ hành nghề bác sĩ đa khoa",
            (
                Step(*DESK_SYT, "Tiếp nhận hồ sơ", "received"),
                Step(
                    "Võ Văn Minh",
                    "Chuyên viên",
                    "Phòng Nghiệp vụ Y",
                    "Thẩm định hồ sơ",
                    "processing",
                ),
                Step("Đặng Thị Lan", "Trưởng phòng", "Phòng Nghiệp vụ Y", "Trình ký", "processing"),
                Step(
                    "Bùi Văn Nam", "Phó Giám đốc", "Ban Giám đốc", "Ký duyệt kết quả", "releasing"
                ),
                Step(*DESK_SYT, "Trả kết quả cho công dân", "done"),
            ),
        ),
        Dossier(
            SGD,
            (
                "1.005081",
                "Cho phép trường trung học phổ thông tư thục hoạt động giáo dục",
                "GD01",
                "Giáo dục trung học",
            ),
            "Công ty CP Giáo dục Tây Nguyên",
            "lienhe@giaoductaynguyen.example.vn",
            "Trường THPT tư thục Tây Nguyên, phường Tân Lợi, TP Buôn Ma Thuột",
            (
                Step(*DESK_SGD, "Tiếp nhận hồ sơ", "received"),
                Step(
                    "Lê Quang Huy",
                    "Chuyên viên",
                    "Phòng Kế hoạch - Tài chính",
                    "Thẩm định hồ sơ",
                    "processing",
                ),
                Step(
                    "Lê Quang Huy",
                    "Chuyên viên",
                    "Phòng Kế hoạch - Tài chính",
                    "Gửi lấy ý kiến UBND tỉnh",
                    "interoperating",
                ),
            ),
            after_opinion=(
                Step(
                    "Phạm Thị Thu",
                    "Phó Giám đốc",
                    "Ban Giám đốc",
                    "Ký quyết định cho phép hoạt động",
                    "releasing",
                ),
                Step(*DESK_SGD, "Trả kết quả cho tổ chức", "done"),
            ),
            business=True,
        ),
        Dossier(
            SYT,
            (
                "1.002398",
                "Cấp giấy phép hoạt động đối với phòng khám đa khoa",
                "YT02",
                "Khám chữa bệnh",
            ),
            "Nguyễn Thị Hạnh",
            "hanh.nguyen@example.vn",
            "Phòng khám đa khoa Hạnh Phúc, xã Hòa Thắng",
            (Step(*DESK_SYT, "Tiếp nhận hồ sơ", "received"),),
        ),
    ),
}
#: UBND tỉnh's answer to a letter asking its opinion (its statuses 01, then 06).
OPINION_STAFF = ("Văn phòng UBND tỉnh", "Chuyên viên Phòng Khoa giáo - Văn xã")
OPINION_ANSWERS = (
    ("01", "Đã đến - hệ thống quản lý văn bản đã nhận"),
    ("06", "Đã xử lý xong: UBND tỉnh thống nhất, đề nghị Sở hoàn thiện thủ tục theo quy định"),
)


# --- the sandboxes ---------------------------------------------------------------


class DemoError(click.ClickException):
    """The demo cannot run as configured, or not now; the message says why and what to do.

    Exits with the table's code for a config problem (:mod:`lienthong.exits`).
    """

    exit_code = Exit.CONFIG


class DemoUnavailable(DemoError):
    """What the demo needs is missing or taken on this machine (a port, slapd): not now."""

    exit_code = Exit.UNAVAILABLE


def _loopback_port(url: str, where: str) -> int:
    parts = urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost") or not parts.port:
        raise DemoError(
            f"{where}: {url!r} is not a loopback URL with a port. Hint: the demo starts its "
            "sandboxes on 127.0.0.1 only; use config/reference-flows.yaml or a copy of it"
        )
    return parts.port


def _check_free(port: int, what: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise DemoUnavailable(
                f"port {port} on 127.0.0.1 ({what}) is in use: {exc.strerror}. Hint: is another "
                "demo still running? Stop it, or change the port in the config"
            ) from exc


class MailSink:
    """A SANDBOX SMTP server on loopback that keeps every mail, in memory and as .eml files."""

    def __init__(self, port: int, folder: Path) -> None:
        from aiosmtpd.controller import Controller

        self.folder = folder
        self.mails: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self._lock = threading.Lock()
        self.controller = Controller(self, hostname="127.0.0.1", port=port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        data = envelope.original_content or envelope.content
        mail = message_from_bytes(data, policy=policy.default)
        assert isinstance(mail, EmailMessage)
        with self._lock:
            self.mails.append(mail)
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            number = len(self.mails)
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / f"{number:03d}.eml").write_bytes(data)
        return "250 OK"

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()


class Sandboxes:
    """Every sandbox the config's endpoints name, started on their configured ports."""

    def __init__(self, cfg: config_module.Config) -> None:
        from ..accounting_soap.sandbox import AccountingSandbox
        from ..document_axis.sandbox import SandboxAxis

        self.cfg = cfg
        self.axis_endpoints: dict[str, dict[str, Any]] = {}
        self.accounting: dict[str, AccountingSandbox] = {}  # endpoint → its sandbox
        self.directory: dict[str, Any] | None = None
        # The fourth flow's JSON/REST systems, when the config has them.
        self.onestop: Any = None  # OneStopSandbox
        self.portal: Any = None  # PortalSandbox
        self.onestop_endpoints: set[str] = set()
        self.portal_endpoints: set[str] = set()
        rest: dict[int, tuple[str, str]] = {}  # port → (role, endpoint that set it)
        ports: dict[int, str] = {}
        axis_port = None
        by_port: dict[int, AccountingSandbox] = {}
        for name, ep in cfg.endpoints.items():
            s = ep.settings
            where = f"endpoints.{name}"
            if ep.adapter == "axis":
                port = _loopback_port(str(s["url"]), f"{where}.url")
                if axis_port not in (None, port):
                    raise DemoError(
                        f"{where}.url: the axis endpoints name two ports ({axis_port}, {port}). "
                        "Hint: the demo starts one sandbox axis; give them one URL"
                    )
                axis_port = port
                ports.setdefault(port, f"{where}.url")
                self.axis_endpoints[name] = s
            elif ep.adapter == "accounting_soap":
                port = _loopback_port(str(s.get("address") or s["wsdl"]), f"{where}.wsdl")
                if port not in by_port:
                    ports[port] = f"{where}.wsdl"
                    by_port[port] = AccountingSandbox(port=port)
                self.accounting[name] = by_port[port]
            elif ep.adapter == "email_directory":
                port = _loopback_port(str(s["url"]), f"{where}.url")
                if self.directory is None:
                    self.directory = dict(s)
                    ports[port] = f"{where}.url"
                    if s.get("smtp_host"):
                        ports[int(s["smtp_port"])] = f"{where}.smtp_port"
                elif port != _loopback_port(str(self.directory["url"]), where):
                    raise DemoError(f"{where}.url: the demo starts one directory; give one URL")
                if s.get("smtp_host") and not self.directory.get("smtp_host"):
                    self.directory.update(smtp_host=s["smtp_host"], smtp_port=s["smtp_port"])
                    ports[int(s["smtp_port"])] = f"{where}.smtp_port"
            elif ep.adapter == "rest_json":
                self._rest_endpoint(name, s, where, rest, ports)
        if axis_port is None or self.directory is None or not self.accounting:
            raise DemoError(
                "the config needs axis, accounting_soap and email_directory endpoints. "
                "Hint: run the demo with config/reference-flows.yaml"
            )
        if str(self.directory.get("smtp_host")) not in ("127.0.0.1", "localhost"):
            raise DemoError(
                "the demo's mail sink needs an email_directory endpoint with smtp_host: "
                "127.0.0.1 and an smtp_port. Hint: see config/reference-flows.yaml"
            )
        for port, what in ports.items():
            _check_free(port, what)
        # The axis binds each system to the agency it acts for.
        systems = {
            str(s["system_id"]): (s["secret"].reveal(), str(s["organ_id"]))
            for s in self.axis_endpoints.values()
        }
        systems[FINANCE_SYSTEM[0]] = (FINANCE_SYSTEM[1], STC)
        systems[UBND_SYSTEM[0]] = (UBND_SYSTEM[1], UBND)
        self.axis = SandboxAxis(systems, port=axis_port)
        self.smtp_port = int(self.directory["smtp_port"])
        self.slapd: Any = None
        self.mail: MailSink | None = None
        self._started: list[Callable[[], None]] = []

    def _rest_endpoint(
        self,
        name: str,
        s: dict[str, Any],
        where: str,
        rest: dict[int, tuple[str, str]],
        ports: dict[int, str],
    ) -> None:
        """A JSON/REST endpoint: the national portal or the one-stop-shop system, by its login.

        The portal gives a session for a username and password (``auth: login``); the
        province's integration platform issues OAuth2 tokens (``auth: oauth2``).
        """
        from ..rest_json.onestop_sandbox import OneStopSandbox
        from ..rest_json.portal_sandbox import PortalSandbox

        port = _loopback_port(str(s["base_url"]), f"{where}.base_url")
        roles = {"login": "portal", "oauth2": "onestop"}
        role = roles.get(str(s["auth"]))
        if role is None:
            raise DemoError(
                f"{where}.auth: {s['auth']!r} is neither the portal's session login (login) nor "
                "the one-stop platform's OAuth2 (oauth2). Hint: see config/reference-flows.yaml"
            )
        existing = self.portal if role == "portal" else self.onestop
        if port in rest:
            if rest[port][0] != role:
                raise DemoError(
                    f"{where}.base_url: port {port} is already the {rest[port][0]} sandbox's "
                    f"({rest[port][1]}). Hint: give the portal and the one-stop system a port each"
                )
        elif existing is not None:
            raise DemoError(
                f"{where}.base_url: the demo starts one {role} sandbox, on one port. "
                f"Hint: give every {role} endpoint the same base_url host and port"
            )
        elif role == "portal":
            madonvi = str((s.get("body_fields") or {}).get("madonvi") or "")
            if not madonvi:
                raise DemoError(
                    f"{where}.body_fields: the portal needs madonvi, the agency code it syncs "
                    'for. Hint: body_fields: {madonvi: "000.00.00.H15"}'
                )
            self.portal = PortalSandbox(
                username=str(s["username"]),
                password=s["password"].reveal(),
                agencies=(madonvi,),
                port=port,
            )
        else:
            self.onestop = OneStopSandbox(
                client_id=str(s["client_id"]), client_secret=s["client_secret"].reveal(), port=port
            )
        rest.setdefault(port, (role, name))
        ports.setdefault(port, f"{where}.base_url")
        (self.portal_endpoints if role == "portal" else self.onestop_endpoints).add(name)

    @property
    def organs(self) -> dict[str, str]:
        """Our axis endpoints' agency codes, by endpoint."""
        return {name: str(s["organ_id"]) for name, s in self.axis_endpoints.items()}

    def start(self, var_dir: Path) -> None:
        try:
            self.axis.start()
            self._started.append(self.axis.stop)
            for sandbox in dict.fromkeys(self.accounting.values()):
                sandbox.start()
                self._started.append(sandbox.stop)
            for rest in (self.onestop, self.portal):
                if rest is not None:
                    rest.start()
                    self._started.append(rest.stop)
            self._start_directory()
            self.mail = MailSink(self.smtp_port, var_dir / "mailbox")
            self.mail.start()
            self._started.append(self.mail.stop)
        except BaseException:
            self.stop()
            raise

    def _start_directory(self) -> None:
        from ..email_directory.slapd import SlapdMissing, TemporarySlapd

        assert self.directory is not None
        d = self.directory
        try:
            server = TemporarySlapd(str(d["base_dn"]), password=d["password"].reveal())
        except SlapdMissing as exc:
            raise DemoUnavailable(f"{exc}. The demo's email directory is a real slapd") from exc
        server.port = _loopback_port(str(d["url"]), "directory url")
        containers = {str(d["agencies_dn"]), str(d["accounts_dn"])}
        for ep in self.cfg.endpoints.values():
            if ep.adapter == "email_directory":
                containers.update(
                    {str(ep.settings["agencies_dn"]), str(ep.settings["accounts_dn"])}
                )
        ldif = []
        for dn in sorted(containers - {str(d["base_dn"])}, key=len):
            ou = dn.split(",")[0].split("=", 1)[1]
            ldif.append(f"dn: {dn}\nobjectClass: organizationalUnit\nou: {ou}\n")
        # The accounts a staff list is reconciled into: the target of the account sync.
        people = next(
            (
                str(self.cfg.endpoints[job.sync.target_endpoint].settings["accounts_dn"])
                for job in self.cfg.jobs.values()
                if job.sync is not None and job.sync.entity == "account"
            ),
            str(d["accounts_dn"]),
        )
        for uid, full, given, family, title in DIRECTORY_PEOPLE:
            ldif.append(
                f"dn: uid={uid},{people}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {full}\n"
                f"givenName: {given}\nsn: {family}\nmail: {uid}@{MAIL_DOMAIN}\ntitle: {title}\n"
                f"departmentNumber: {SYT}\nemployeeType: active\n"
            )
        server.load_ldif_text("\n".join(ldif))
        server.start()
        if server.port != _loopback_port(str(d["url"]), "directory url"):
            server.stop()
            raise DemoUnavailable(f"slapd could not listen on {d['url']}. Hint: free that port")
        self.slapd = server
        self._started.append(server.stop)

    def stop(self) -> None:
        while self._started:
            with contextlib.suppress(Exception):
                self._started.pop()()


# --- seed data -----------------------------------------------------------------


@dataclass
class Pki:
    """The demo's SANDBOX CA (trusted by the config) and each agency's signing key."""

    folder: Path
    ca: Any
    signers: dict[str, Any]


#: Each agency's clerk's certificate subject, as the config's ``signer_agencies`` binds it:
#: the province's departments by name and place (names repeat across provinces).
SIGNERS = {
    code: f"CN=Văn thư điện tử,O={name}"
    + (",L=Đắk Lắk" if code in (STC, SYT, SGD) else "")
    + ",C=VN"
    for code, name, _, _ in AGENCIES
}

#: Our agencies' key and certificate files, as their axis endpoints name them.
OWN_KEYS = {SYT: "syt", SGD: "sgd"}


def make_pki(folder: Path) -> Pki:
    """A SANDBOX CA under ``folder`` (root, CRLs) and a signing certificate per agency.

    Each agency's clerk signs with a certificate whose ``O`` is the agency's
    name, as the config's ``signer_agencies`` binds it.
    """
    from ..document_axis.sandbox_ca import SandboxCA, write_key

    ca = SandboxCA(
        "CN=SANDBOX CA phục vụ các cơ quan nhà nước,O=lienthong demo,C=VN",
        intermediate="CN=SANDBOX CA cấp 2,O=lienthong demo,C=VN",
    )
    ca.write(folder, crl_days=365)
    signers = {code: ca.issue(SIGNERS[code]) for code in NAMES}
    for code, stem in OWN_KEYS.items():
        write_key(signers[code], folder / f"{stem}.key", folder / f"{stem}.pem")
    return Pki(folder, ca, signers)


def build_document(doc: Incoming, pki: Pki, today: str) -> bytes:
    """The edXML of ``doc``, with one attachment, signed unless it is the unsigned one."""
    from ..document_axis import edxml, signature

    built = edxml.Document(
        sender=edxml.Organization(
            organ_id=doc.sender,
            organ_name=NAMES[doc.sender],
            organization_in_charge=NAMES[doc.sender],
        ),
        recipients=[edxml.Organization(organ_id=r, organ_name=NAMES[r]) for r in doc.recipients],
        document_id=document_id(doc.sender, today, doc.number),
        code_number=doc.number,
        code_notation=doc.notation,
        place=PLACES.get(doc.sender, "Đắk Lắk"),
        promulgation_date=today,
        document_type="1",
        type_detail="2" if doc.type_name == "Quyết định" else "0",
        type_name=doc.type_name,
        subject=doc.subject,
        content=doc.content,
        signer=edxml.Signer(
            competence="KT. CHỦ TỊCH", position="Phó Chủ tịch", full_name="Lê Hồng Vinh"
        ),
        other_info=edxml.OtherInfo(priority="0", promulgation_amount="1", page_amount="2"),
        attachments=[
            edxml.Attachment.from_file(
                f"{doc.number}-{doc.notation.split('-')[0]}.pdf",
                b"%PDF-1.4\n% SANDBOX " + doc.subject.encode("utf-8") + b"\n%%EOF\n",
                "application/pdf",
            )
        ],
    )
    if doc.revokes:
        built.business = edxml.Business(
            doc_type="1",
            reason=doc.content,
            paper="0",
            document_id=document_id(doc.sender, today, doc.revokes),
        )
    data = edxml.build(built)
    return signature.sign(data, pki.signers[doc.sender]) if doc.signed else data


def document_id(sender: str, today: str, number: str) -> str:
    """The DocumentId the demo gives a sender's document of that number, sent today."""
    notation = next(
        d.notation
        for docs in DOCUMENTS.values()
        for d in docs
        if d.sender == sender and d.number == number
    )
    return f"{sender},{today},{number}/{notation}"


def _status(organ: str, answered: str, document: str, code: str, text: str) -> Any:
    """A status ``code`` from ``organ`` about ``document``, a document of ``answered``."""
    from ..document_axis import edxml

    return edxml.Status(
        sender=edxml.Organization(organ_id=organ, organ_name=NAMES.get(organ)),
        response_for=edxml.ResponseFor(organ_id=answered, document_id=document),
        staff=edxml.StaffInfo(department="Văn thư", staff="Văn thư điện tử"),
        status_code=code,
        description=text,
        timestamp=datetime.now(VN).strftime("%Y/%m/%d %H:%M:%S"),
    )


def staff_list(people: tuple[tuple[str, str, str, str, str], ...]) -> bytes:
    """A personnel-system export (the format mappings/directory/staff-list-to-records.xsl reads)."""
    from lxml import etree

    root = etree.Element("DuLieuCanBo", PhienBan="2.1", NgayXuat=datetime.now(UTC).isoformat())
    unit = etree.SubElement(root, "DonVi", Ma=SYT, Ten=NAMES[SYT])
    for number, (uid, full, given, post, state) in enumerate(people, start=1):
        person = etree.SubElement(unit, "CanBo", Ma=f"CB-{number:04d}")
        for tag, value in (
            ("HoVaTen", full),
            ("Ten", given),
            ("TaiKhoan", uid),
            ("ThuDienTu", f"{uid}@{MAIL_DOMAIN}"),
            ("ChucVu", post),
            ("TrangThai", state),
        ):
            etree.SubElement(person, tag).text = value
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


# --- the summary ---------------------------------------------------------------


@dataclass
class DocumentLine:
    agency: str
    document_id: str
    sender: str
    subject: str
    deliveries: dict[str, str]  # endpoint → state


@dataclass
class ReportLine:
    agency: str
    vouchers: int
    document_id: str
    state: str
    statuses: list[str]


@dataclass
class DossierLine:
    """A one-stop dossier as the bus carried it to the portal."""

    number: str
    service: str = ""
    status: str = "?"  # of the newest version taken
    versions: int = 0  # versions taken (each one delivery to the portal)
    versions_delivered: int = 0
    steps: int = 0
    steps_delivered: int = 0


@dataclass
class Summary:
    """What moved, read back from the store, the sync reports and the mail sink."""

    documents: list[DocumentLine] = field(default_factory=list)
    statuses_sent: int = 0
    #: Statuses our agencies sent through the axis, by code (01 by the bus, 02 refusals,
    #: the others from their document systems), and those they received: (code, from, document).
    statuses_out: dict[str, int] = field(default_factory=dict)
    statuses_in: list[tuple[str, str, str]] = field(default_factory=list)
    refusals: list[tuple[str, str, str]] = field(default_factory=list)  # (document, sender, reason)
    business: list[tuple[str, str, str]] = field(
        default_factory=list
    )  # (business, document, concerns)
    estimates: list[tuple[str, str]] = field(default_factory=list)  # (endpoint, state)
    reports: list[ReportLine] = field(default_factory=list)
    syncs: dict[str, dict[str, int]] = field(default_factory=dict)  # job → summed counts
    mails: list[tuple[list[str], str, list[str]]] = field(default_factory=list)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    #: The fourth flow, when the config has it: dossiers by number, the letters asking
    #: an opinion (dossier, to, DocumentId, state), the answers posted back as steps
    #: (dossier, from, status code, state), the results mailed (dossier, to, state).
    onestop: bool = False
    dossiers: dict[str, DossierLine] = field(default_factory=dict)
    letters: list[tuple[str, str, str, str]] = field(default_factory=list)
    opinions: list[tuple[str, str, str, str]] = field(default_factory=list)
    results: list[tuple[str, str, str]] = field(default_factory=list)

    def lines(self) -> Iterator[str]:
        yield f"== documents received from the axis: {len(self.documents)}"
        for d in self.documents:
            moved = ", ".join(f"{e} {s}" for e, s in d.deliveries.items()) or "parked"
            yield f"  {d.agency} ← {d.sender}  {d.document_id}"
            yield f"      {d.subject}"
            yield f"      {moved}"
        yield f"== status 01 sent back to senders: {self.statuses_sent}"
        for business, document, concerns in self.business:
            yield f"  {business} {document}: of {concerns}"
        by_code = ", ".join(f"{code} ×{n}" for code, n in sorted(self.statuses_out.items()))
        total = sum(self.statuses_out.values())
        yield f"== statuses our agencies sent: {total} ({by_code or 'none'})"
        for document, sender, reason in self.refusals:
            reason = reason if len(reason) <= 160 else reason[:157] + "..."
            yield f"  02 to {sender} for {document}: {reason}"
        received = sorted({(c, f) for c, f, _ in self.statuses_in})
        yield f"== statuses received: {len(self.statuses_in)}"
        for code, sender in received:
            documents = sorted({d for c, f, d in self.statuses_in if (c, f) == (code, sender)})
            shown = ", ".join(documents) if len(documents) == 1 else f"{len(documents)} documents"
            yield f"  {code} from {sender}: {shown}"
        yield f"== budget estimates posted: {sum(s == 'delivered' for _, s in self.estimates)}"
        for endpoint, state in self.estimates:
            yield f"  {endpoint}: {state}"
        vouchers = sum(r.vouchers for r in self.reports)
        yield f"== vouchers read: {vouchers}, in {len(self.reports)} report(s) to finance"
        for r in self.reports:
            answered = ", ".join(sorted(r.statuses)) or "no status yet"
            yield f"  {r.agency}: {r.vouchers} voucher(s) → {r.document_id} {r.state}; {answered}"
        for job, counts in self.syncs.items():
            yield (
                f"== sync {job}: created {counts.get('create', 0)}, updated "
                f"{counts.get('update', 0)}, disabled {counts.get('disable', 0)}, "
                f"unchanged {counts.get('unchanged', 0)}, failed {counts.get('failed', 0)}"
            )
        if self.onestop:
            yield from self._onestop_lines()
        yield f"== mails sent: {len(self.mails)}"
        for to, subject, files in self.mails:
            yield f"  to {', '.join(to)}: {subject} [{', '.join(files) or 'no attachment'}]"
        yield f"== dead letters: {len(self.dead_letters)}"
        for dead in self.dead_letters:
            reason = " ".join(str(dead["reason"]).split())
            reason = reason if len(reason) <= 220 else reason[:217] + "..."
            where = dead["endpoint"] or dead["source"]
            yield f"  #{dead['id']} {dead['kind']} at {dead['stage']} ({where}): {reason}"

    def _onestop_lines(self) -> Iterator[str]:
        lines = self.dossiers.values()
        versions = sum(d.versions for d in lines)
        steps = sum(d.steps for d in lines)
        yield (
            f"== one-stop dossiers synced to the portal: {len(self.dossiers)} "
            f"({sum(d.versions_delivered for d in lines)} of {versions} version(s) delivered), "
            f"progress steps: {sum(d.steps_delivered for d in lines)} of {steps} delivered"
        )
        for d in lines:
            yield f"  {d.number} {d.status}: {d.versions} version(s), {d.steps} step(s)"
            yield f"      {d.service}"
        yield (
            f"== opinions asked through the axis: {len(self.letters)}; answers posted back to "
            f"the one-stop system: {sum(s == 'delivered' for *_, s in self.opinions)}"
        )
        for number, to, document, state in self.letters:
            yield f"  {number} → {to}: {document} {state}"
        for number, sender, code, state in self.opinions:
            yield f"  {number} ← {code} from {sender}: step {state}"
        yield f"== results mailed to citizens: {sum(s == 'delivered' for *_, s in self.results)}"
        for number, to, state in self.results:
            yield f"  {number} → {to}: {state}"


# --- the demo ------------------------------------------------------------------


def _json_fields(body: bytes) -> dict[str, str]:
    """The top-level strings of a JSON message (as XML in the fn:json-to-xml vocabulary)."""
    from lienthong import xml

    tree = xml.parse(body)
    return {
        str(e.get("key")): (e.text or "").strip()
        for e in tree.getroot()
        if isinstance(e.tag, str) and e.tag == f"{{{FN}}}string"
    }


def _mail_to(body: bytes) -> str:
    from lienthong import xml

    found = xml.parse(body).xpath("//m:to/text()", namespaces={"m": "urn:lienthong:mail"})
    return ", ".join(str(t).strip() for t in found) or "?"


def _texts(body: bytes, path: str) -> list[str]:
    from lienthong import xml

    tree = xml.parse(body)
    return [str(t).strip() for t in tree.xpath(path, namespaces={"ed": ED, "acc": ACC})]


class Demo:
    """The reference flows on the embedded default against sandboxes; a context manager."""

    def __init__(
        self,
        config_path: Path,
        *,
        echo: Callable[[str], None] = click.echo,
        start_bus: bool = True,
    ) -> None:
        self.echo = echo
        self.host = PluginHost()
        self.config_path = config_path
        self.cfg = config_module.load(config_path, host=self.host)
        # The demo serves the console itself, with a sandbox login; not through its bus.
        self.console_port = self.cfg.bus.console_port
        self.cfg.bus.console_port = None
        # Without its own bus, the demo only runs the sandboxes and the other
        # agencies' side: 'lienthong run' workers elsewhere are the bus.
        self.start_bus = start_bus
        self.var_dir = self.cfg.bus.var_dir
        self.sandboxes = Sandboxes(self.cfg)
        self.bus: Bus | None = None
        self.pki: Pki | None = None
        self.cycles = 0
        # Our clerks' work: the files they have read, the documents to finish next cycle.
        self._handled: set[Path] = set()
        self._accepted: dict[str, list[tuple[str, str]]] = {}
        self._dropped = 0
        # Reports the Department of Finance accepted, to finish next cycle.
        self._reports: list[Any] = []
        # One-stop dossiers: lodged per agency and day (their numbers), and those waiting
        # for another agency's opinion with the steps that finish them once it is in.
        self._lodged: dict[tuple[str, str], int] = {}
        self._awaiting: dict[str, tuple[Step, ...]] = {}

    # --- lifecycle ---

    def __enter__(self) -> Demo:
        self._fresh_var()
        self.pki = make_pki(self.var_dir / "keys")
        self.sandboxes.start(self.var_dir)
        try:
            self._seed_axis()
            if self.start_bus:
                self.bus = Bus(self.cfg, self.host, worker="demo")
                self.bus.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.bus is not None:
            self.bus.close()
            self.bus = None
        self.sandboxes.stop()

    def _fresh_var(self) -> None:
        var = self.var_dir
        if var.exists() and any(var.iterdir()) and not (var / MARKER).exists():
            raise DemoError(
                f"{var} exists and was not made by a demo, so the demo will not wipe it. "
                "Hint: point bus.var_dir at a folder of its own (var/demo)"
            )
        shutil.rmtree(var, ignore_errors=True)
        var.mkdir(parents=True)
        (var / MARKER).write_text("made by 'lienthong demo'; wiped by the next run\n")

    def _seed_axis(self) -> None:
        axis = self.sandboxes.axis
        for code, name, mail, parent in AGENCIES:
            pid = axis.agencies[parent]["id"] if parent else ""
            axis.register_agency(code, name, pid=pid, mail=mail)

    # --- one cycle ---

    def cycle(self) -> None:
        """Seed this cycle's events, sync, run the bus, let the others answer, run again.

        The Department of Finance answers the reports it got; our agencies'
        clerks, in their document systems, answer what arrived (03, 04 now, 05
        and 06 a cycle later; 15 to a recall request).
        """
        assert self.bus is not None
        self.seed()
        self._run_jobs()
        self.drain()
        answered = self.finance_answers()
        answered += self.clerks_answer()
        answered += self.opinions_answer()
        if answered:
            self.drain()

    def seed(self) -> None:
        """What happens at the other agencies during the next cycle."""
        self.cycles += 1
        self._seed(self.cycles)

    def _seed(self, n: int) -> None:
        assert self.pki is not None
        today = datetime.now(VN).strftime("%Y/%m/%d")
        for doc in DOCUMENTS.get(n, ()):
            body = build_document(doc, self.pki, today)
            self.sandboxes.axis.deliver(doc.sender, list(doc.recipients), body)
        for voucher in VOUCHERS.get(n, VOUCHERS[max(VOUCHERS)] if n > max(VOUCHERS) else ()):
            sandbox = self.sandboxes.accounting.get(self._accounting_of.get(voucher.agency, ""))
            if sandbox is None:
                continue
            debit, credit = ("1111", "5111") if voucher.kind == "receipt" else ("6612", "1111")
            sandbox.add_voucher(
                kind=voucher.kind,
                date=datetime.now(VN).date().isoformat(),
                agencyCode=voucher.agency,
                debitAccount=debit,
                creditAccount=credit,
                amount=voucher.amount,
                description=voucher.description,
            )
        for cycle, people in STAFF_LISTS:
            if cycle == n:
                self._drop_staff(cycle, people)
        if n in RECALLS:
            self._ask_recall(document_id(UBND, today, RECALLS[n]))
        self._lodge(n)

    def _lodge(self, n: int) -> None:
        """At the one-stop desks: this cycle's dossiers are lodged and handled as far as they
        go today; a dossier whose opinion came back (it moved on from interoperating) is
        finished."""
        from ..rest_json.onestop_sandbox import iso

        onestop = self.sandboxes.onestop
        if onestop is None:
            return
        for number, steps in list(self._awaiting.items()):
            if onestop.dossiers[number]["dossierStatus"] != "interoperating":
                del self._awaiting[number]
                self._handle(number, steps)
        today = datetime.now(VN).strftime("%y%m%d")
        for dossier in DOSSIERS.get(n, ()):
            day = (dossier.agency, today)  # numbered per agency and day (circular 01/2018)
            self._lodged[day] = self._lodged.get(day, 0) + 1
            code, name, domain, domain_name = dossier.service
            number = onestop.add_dossier(
                dossierNo=f"{dossier.agency}-{today}-{self._lodged[day]:04d}",
                serviceCode=code,
                serviceName=name,
                domainCode=domain,
                domainName=domain_name,
                applicantName=dossier.applicant,
                applicantIdType="business" if dossier.business else "citizen",
                contactEmail=dossier.email,
                dossierNote=dossier.note,
                dueDate=iso(datetime.now(UTC) + timedelta(days=20)),
                govAgencyCode=dossier.agency,
                govAgencyName=f"{NAMES[dossier.agency]} tỉnh Đắk Lắk",
            )["dossierNo"]
            self._handle(number, dossier.steps)
            if dossier.after_opinion:
                self._awaiting[number] = dossier.after_opinion

    def _handle(self, number: str, steps: tuple[Step, ...]) -> None:
        from ..rest_json.onestop_sandbox import iso

        onestop = self.sandboxes.onestop
        for step in steps:
            if step.status == "done":
                # Finished and dated in one change: one version of the dossier, one result mail.
                onestop.update_dossier(
                    number, dossierStatus="done", finishDate=iso(datetime.now(UTC))
                )
            onestop.add_step(
                number,
                actionUser=step.user,
                actionTitle=step.title,
                department=step.department,
                actionNote=step.note,
                stepStatus=step.status,
            )

    def opinions_answer(self) -> int:
        """UBND tỉnh answers each letter asking its opinion: 01 arrived, 06 done (its opinion).

        Signed with its key, as our axis endpoints require. Returns the letters answered.
        """
        from lienthong.adapter import Secret

        from ..document_axis import edxml
        from ..document_axis.client import AxisClient

        assert self.pki is not None
        client = AxisClient(self.sandboxes.axis.url, UBND_SYSTEM[0], Secret(UBND_SYSTEM[1]))
        answered = 0
        try:
            for item in client.received(message_type="edoc"):
                letter = edxml.read(client.fetch(item.doc_id))
                assert isinstance(letter, edxml.Document)
                client.update_status(item.doc_id, "done")
                for code, text in OPINION_ANSWERS:
                    self._send_status(
                        client, UBND, letter, OPINION_STAFF, code, text, f"{item.doc_id}-{code}"
                    )
                answered += 1
        finally:
            client.session.close()
        return answered

    def _send_status(
        self,
        client: Any,
        organ: str,
        document: Any,
        staff: tuple[str, str],
        code: str,
        text: str,
        key: str,
    ) -> None:
        """``organ``'s document system answers ``document`` with status ``code``, signed."""
        from ..document_axis import edxml, signature

        assert self.pki is not None
        status = edxml.Status(
            sender=edxml.Organization(organ_id=organ, organ_name=NAMES[organ]),
            response_for=edxml.ResponseFor(
                organ_id=document.sender.organ_id,
                code=f"{document.code_number}/{document.code_notation}",
                promulgation_date=document.promulgation_date,
                document_id=document.document_id,
            ),
            staff=edxml.StaffInfo(department=staff[0], staff=staff[1]),
            status_code=code,
            description=text,
            timestamp=datetime.now(VN).strftime("%Y/%m/%d %H:%M:%S"),
        )
        client.send(
            signature.sign(edxml.build(status), self.pki.signers[organ]),
            organ_id=organ,
            message_type="status",
            key=key,
        )

    def _ask_recall(self, recalled: str) -> None:
        """UBND tỉnh's document system asks the recipients to recall a document (status 13)."""
        from lienthong.adapter import Secret

        from ..document_axis import edxml, signature
        from ..document_axis.client import AxisClient

        assert self.pki is not None
        status = _status(UBND, UBND, recalled, "13", "Đề nghị thu hồi văn bản do ban hành nhầm")
        client = AxisClient(self.sandboxes.axis.url, UBND_SYSTEM[0], Secret(UBND_SYSTEM[1]))
        try:
            client.send(
                signature.sign(edxml.build(status), self.pki.signers[UBND]),
                organ_id=UBND,
                message_type="status",
                key=f"recall-{recalled}",
            )
        finally:
            client.session.close()

    def clerks_answer(self) -> int:
        """Our agencies' clerks answer in their document systems; returns the statuses dropped.

        A document that arrived is accepted (03) and assigned (04) at once,
        processed (05) and completed (06) a cycle later; a recall request (13)
        is agreed to (15). Each status is a file in the document system's
        outbox, which the bus sends through the agency's axis endpoint.
        """
        from ..document_axis import edxml

        dropped = 0
        for organ, (inbox, outbox) in self._dms_folders.items():
            finishing = self._accepted.pop(organ, [])
            for sender, doc_id in finishing:
                for code, text in (("05", "Đang xử lý"), ("06", "Đã xử lý xong")):
                    dropped += self._drop_status(outbox, _status(organ, sender, doc_id, code, text))
            for path in sorted(inbox.glob("*.xml")) if inbox.is_dir() else []:
                if path in self._handled:
                    continue
                self._handled.add(path)
                message = edxml.read(path.read_bytes())
                doc_id = message.document_id or ""
                if isinstance(message, edxml.Document):
                    sender = message.sender.organ_id or ""
                    for code, text in (
                        ("03", "Đã tiếp nhận, vào sổ văn bản đến"),
                        ("04", "Lãnh đạo đã phân công xử lý"),
                    ):
                        dropped += self._drop_status(
                            outbox, _status(organ, sender, doc_id, code, text)
                        )
                    self._accepted.setdefault(organ, []).append((sender, doc_id))
                elif message.status_code == "13":
                    sender = message.response_for.organ_id or ""
                    status = _status(organ, sender, doc_id, "15", "Đồng ý thu hồi văn bản")
                    dropped += self._drop_status(outbox, status)
        return dropped

    def _drop_status(self, outbox: Path, status: Any) -> int:
        from ..document_axis import edxml

        outbox.mkdir(parents=True, exist_ok=True)
        self._dropped += 1
        (outbox / f"trang-thai-{self._dropped:04d}.xml").write_bytes(edxml.build(status))
        return 1

    @property
    def _dms_folders(self) -> dict[str, tuple[Path, Path]]:
        """Each of our agencies' document system: (inbox, outbox), by agency code.

        The inbox is the folder its axis endpoint's documents go to; the outbox
        the folder whose statuses a route sends through that endpoint.
        """
        folders = {
            name: self.cfg.base_dir / Path(ep.settings["path"])
            for name, ep in self.cfg.endpoints.items()
            if ep.adapter == "folder"
        }
        found: dict[str, tuple[Path, Path]] = {}
        for name, organ in self.sandboxes.organs.items():
            inbox = outbox = None
            for route in self.cfg.routes:
                targets = {t.endpoint for t in route.targets}
                if name in route.sources and "edxml.document" in route.kinds:
                    inbox = inbox or next((folders[t] for t in targets if t in folders), None)
                if name in targets and route.sources & set(folders):
                    outbox = outbox or folders[next(iter(route.sources & set(folders)))]
            if inbox is not None and outbox is not None:
                found[organ] = (inbox, outbox)
        return found

    def _drop_staff(self, cycle: int, people: tuple[tuple[str, str, str, str, str], ...]) -> None:
        for ep in self.cfg.endpoints.values():
            if ep.adapter != "folder" or ep.settings.get("direction") != "sync":
                continue
            folder = self.cfg.base_dir / Path(ep.settings["path"])
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"nhan-su-{cycle:02d}.xml"
            path.write_bytes(staff_list(people))
            # As if dropped a while ago (the folder reads only settled files), newest last.
            settle = float(ep.settings.get("settle_seconds") or 0)
            stamp = time.time() - settle - 1 - (len(STAFF_LISTS) - cycle)
            os.utime(path, (stamp, stamp))

    @property
    def _accounting_of(self) -> dict[str, str]:
        """Each agency's accounting endpoint: the source of the route reporting for it."""
        found: dict[str, str] = {}
        for route in self.cfg.routes:
            for source in route.sources & set(self.sandboxes.accounting):
                for target in route.targets:
                    if target.params.get("organ_id"):
                        found[target.params["organ_id"]] = source
        return found

    def _run_jobs(self) -> None:
        """Each job once (syncs, then the scheduled polls), as its tick would run it.

        Through the scheduler, so a run takes the job's lease and is recorded
        (``lienthong jobs``, ``lienthong sync runs``) like a scheduled one.
        """
        assert self.bus is not None and self.bus.scheduler is not None
        ordered = sorted(self.cfg.jobs.items(), key=lambda item: item[1].sync is None)
        for name, _job in ordered:
            outcome = self.bus.scheduler.fire(name)
            if outcome != "ok":
                self.echo(f"job {name}: {outcome}. Hint: lienthong jobs")

    def drain(self, timeout: float = 30.0) -> None:
        """Run the bus until nothing is received and nothing is due within a few seconds.

        A retry due that soon is waited for: the flows expect some (a progress step
        polled before its dossier reaches the portal first and is retried), and a
        cycle should end with what it started done.
        """
        assert self.bus is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            step = self.bus.run_cycle()
            if not step.idle:
                continue
            due = self.bus.store.next_due()
            now = utcnow()
            if due is None or due > now + SOON:
                return
            time.sleep(min(max((due - now).total_seconds(), 0.0), 0.5))

    def finance_answers(self) -> int:
        """The Department of Finance's system answers each report: 01 arrived, 03 accepted,
        and a cycle later 04 assigned, 05 processing, 06 completed.

        It signs its statuses, as our axis endpoints require (signature_policy: require).
        """
        from lienthong.adapter import Secret

        from ..document_axis import edxml
        from ..document_axis.client import AxisClient

        client = AxisClient(self.sandboxes.axis.url, FINANCE_SYSTEM[0], Secret(FINANCE_SYSTEM[1]))
        answered = 0
        earlier, self._reports = self._reports, []
        try:
            received: list[tuple[Any, Any, tuple[tuple[str, str], ...]]] = []
            for item in client.received(message_type="edoc"):
                report = edxml.read(client.fetch(item.doc_id))
                assert isinstance(report, edxml.Document)
                client.update_status(item.doc_id, "done")
                received.append(
                    (
                        item,
                        report,
                        (
                            ("01", "Đã đến - phần mềm quản lý văn bản đã nhận"),
                            ("03", "Đã tiếp nhận và vào sổ văn bản đến"),
                        ),
                    )
                )
                self._reports.append((item, report))
            for item, report in earlier:
                received.append(
                    (
                        item,
                        report,
                        (
                            ("04", "Lãnh đạo đã phân công xử lý"),
                            ("05", "Đang xử lý"),
                            ("06", "Đã xử lý xong"),
                        ),
                    )
                )
            for item, report, steps in received:
                for code, text in steps:
                    self._send_status(
                        client,
                        STC,
                        report,
                        ("Văn phòng Sở", "Văn thư"),
                        code,
                        text,
                        f"{item.doc_id}-{code}",
                    )
                answered += 1
        finally:
            client.session.close()
        return answered

    # --- what moved ---

    def summary(self, store: Store | None = None) -> Summary:
        """What moved, from ``store`` (default: the demo's bus's) and the mail sink."""
        if store is None:
            assert self.bus is not None
            store = self.bus.store
        result = Summary()
        for name, job in self.cfg.jobs.items():
            if job.sync is None:
                continue
            totals = result.syncs.setdefault(name, {})
            for report in recent_runs(store.engine, name, limit=1000):
                for key, value in report.counts.items():
                    totals[key] = totals.get(key, 0) + int(value)
        axis_names = set(self.sandboxes.organs)
        acct_names = set(self.sandboxes.accounting)
        with store.engine.connect() as conn:
            rows = conn.execute(
                select(
                    messages.c.id,
                    messages.c.kind,
                    messages.c.source,
                    messages.c.headers,
                    messages.c.body,
                ).order_by(messages.c.accepted_at, messages.c.id)
            ).all()
            sent = conn.execute(
                select(
                    deliveries.c.message_id,
                    deliveries.c.endpoint,
                    deliveries.c.state,
                    deliveries.c.headers,
                    deliveries.c.body,
                )
            ).all()
        by_message: dict[str, list[Any]] = {}
        for d in sent:
            by_message.setdefault(d.message_id, []).append(d)
        statuses_for: dict[str, list[str]] = {}
        ours = set(self.sandboxes.organs.values())
        for m in rows:
            headers = json.loads(m.headers)
            if m.source in axis_names and m.kind == "edxml.status":
                statuses_for.setdefault(headers.get("response_for", ""), []).append(
                    f"{headers.get('status_code', '?')} from {headers.get('from', '?')}"
                )
                result.statuses_in.append(
                    (
                        headers.get("status_code", "?"),
                        headers.get("from", "?"),
                        headers.get("response_for", "?"),
                    )
                )
            elif headers.get("edxml_kind") == "status" and headers.get("edxml_from") in ours:
                sent_ok = any(
                    d.endpoint in axis_names and d.state == "delivered"
                    for d in by_message.get(m.id, [])
                )
                if sent_ok:
                    code = headers.get("edxml_status", "?")
                    result.statuses_out[code] = result.statuses_out.get(code, 0) + 1
            if (
                m.source in axis_names
                and m.kind == "edxml.document"
                and headers.get("edxml_business", "new") != "new"
            ):
                result.business.append(
                    (
                        headers["edxml_business"],
                        headers.get("edxml_document_id", "?"),
                        headers.get("edxml_concerns", "?"),
                    )
                )
        from ..document_axis import refusal

        with store.engine.connect() as conn:
            refused = conn.execute(
                select(refusal.refusals).order_by(refusal.refusals.c.sent_at)
            ).all()
        for r in refused:
            result.refusals.append((r.document_id, r.sender, r.reason))
        if refused:
            result.statuses_out["02"] = len(refused)
        for m in rows:
            headers = json.loads(m.headers)
            outgoing = by_message.get(m.id, [])
            if m.source in axis_names and m.kind == "edxml.document":
                ones = sum(d.endpoint in axis_names and d.state == "delivered" for d in outgoing)
                if ones:
                    result.statuses_out["01"] = result.statuses_out.get("01", 0) + ones
            if m.source in axis_names and m.kind == "edxml.document":
                states: dict[str, str] = {}
                for d in outgoing:
                    label = d.endpoint
                    if d.endpoint in axis_names:
                        label = "status 01"
                        result.statuses_sent += d.state == "delivered"
                    elif d.endpoint in acct_names:
                        label = f"estimate to {d.endpoint}"
                        result.estimates.append((d.endpoint, d.state))
                    elif d.endpoint.startswith("directory"):
                        label = "mail"
                    states[label] = d.state
                subject = ""
                with contextlib.suppress(Exception):
                    subject = (_texts(m.body, "//ed:MessageHeader/ed:Subject/text()") or [""])[0]
                result.documents.append(
                    DocumentLine(
                        self.sandboxes.organs[m.source],
                        headers.get("document_id") or headers.get("edxml_document_id", "?"),
                        headers.get("from", "?"),
                        subject,
                        states,
                    )
                )
            elif m.source in acct_names:
                count = len(_texts(m.body, "//acc:voucher/acc:number/text()"))
                for d in outgoing:
                    doc_ids = _texts(d.body, "//ed:MessageHeader/ed:DocumentId/text()")
                    doc_id = doc_ids[0] if doc_ids else "?"
                    result.reports.append(
                        ReportLine(m.source, count, doc_id, d.state, statuses_for.get(doc_id, []))
                    )
                if not outgoing:
                    result.reports.append(ReportLine(m.source, count, "-", "parked", []))
        mail = self.sandboxes.mail
        if mail is not None:
            for (_, rcpts), message in zip(mail.envelopes, mail.mails, strict=True):
                files = [p.get_filename() or "?" for p in message.iter_attachments()]
                result.mails.append((rcpts, str(message["Subject"]), files))
        self._onestop_summary(result, rows, by_message)
        result.dead_letters = list(reversed(store.dead_letters()))
        return result

    def _onestop_summary(
        self, result: Summary, rows: list[Any], by_message: dict[str, list[Any]]
    ) -> None:
        """The fourth flow: what the one-stop system's dossiers and steps became, and the
        opinions asked and answered through the axis."""
        sandboxes = self.sandboxes
        if sandboxes.onestop is None:
            return
        result.onestop = True
        axis_names = set(sandboxes.organs)
        mailers = {n for n, ep in self.cfg.endpoints.items() if ep.adapter == "email_directory"}
        for m in rows:
            outgoing = by_message.get(m.id, [])
            if m.source in sandboxes.onestop_endpoints:
                item = _json_fields(m.body)
                number = item.get("dossierNo", "?")
                line = result.dossiers.setdefault(number, DossierLine(number))
                to_portal = [d for d in outgoing if d.endpoint in sandboxes.portal_endpoints]
                delivered = sum(d.state == "delivered" for d in to_portal)
                if "stepStatus" in item:
                    line.steps += len(to_portal)
                    line.steps_delivered += delivered
                    continue
                line.service = item.get("serviceName", "")
                line.status = item.get("dossierStatus", "?")
                line.versions += len(to_portal)
                line.versions_delivered += delivered
                for d in outgoing:
                    if d.endpoint in axis_names:
                        to = _texts(d.body, "//ed:MessageHeader/ed:To/ed:OrganId/text()") or ["?"]
                        doc = _texts(d.body, "//ed:MessageHeader/ed:DocumentId/text()") or ["?"]
                        result.letters.append((number, to[0], doc[0], d.state))
                    elif d.endpoint in mailers:
                        address = _mail_to(d.body)
                        result.results.append((number, address, d.state))
            elif m.source in axis_names:
                for d in outgoing:
                    if d.endpoint in sandboxes.onestop_endpoints:
                        headers = json.loads(m.headers)
                        step = _json_fields(d.body)
                        result.opinions.append(
                            (
                                step.get("dossierNo", "?"),
                                headers.get("from", "?"),
                                headers.get("status_code", "?"),
                                d.state,
                            )
                        )

    def print_summary(self) -> None:
        for line in self.summary().lines():
            self.echo(line)


def _serve_console(instance: Demo) -> Any:
    """The web console over the demo's store, with a sandbox login made for this run only.

    The account lives in the demo's var folder (wiped by the next run), so the
    config's own console accounts are never touched. A taken port is reported
    and the demo goes on without the console.
    """
    from lienthong.console.auth import add_local_account
    from lienthong.console.server import ConsoleServer
    from lienthong.console.settings import DEFAULT_PORT

    users = instance.var_dir / "console-users"
    password = secrets.token_urlsafe(9)
    add_local_account(users, "demo", "admin", password)
    cfg = dataclasses.replace(
        instance.cfg, console=dataclasses.replace(instance.cfg.console, users_file=users)
    )
    port = instance.console_port if instance.console_port is not None else DEFAULT_PORT
    try:
        server = ConsoleServer(cfg, instance.host, listen=cfg.bus.console_host, port=port)
    except ConfigError as exc:
        click.echo(f"The console did not start: {exc}")
        return None
    server.start()
    click.echo(
        f"Console (SANDBOX data): {server.url} - log in as demo / {password} "
        "(admin; a new password each run)"
    )
    return server


def _config_path(ctx: click.Context) -> Path:
    given = getattr(ctx.obj, "config_path", None) if ctx.obj is not None else None
    return Path(given) if given else DEFAULT_FLOWS


def run_demo(ctx: click.Context, once: bool, cycles: int | None) -> None:
    """What ``lienthong demo`` does (the command itself is in :mod:`.plugin`)."""
    path = _config_path(ctx)
    count = 1 if once else (cycles or 3)
    try:
        instance = Demo(path)
    except ConfigError as exc:
        raise DemoError(str(exc)) from exc
    if not instance.cfg.bus.embedded:
        raise DemoError(
            f"{path}: the demo runs on the embedded default (broker: embedded). "
            "Hint: use config/reference-flows.yaml; production runs 'lienthong run'"
        )
    with instance:
        for n in range(1, count + 1):
            click.echo(f"-- cycle {n}")
            instance.cycle()
        click.echo("")
        instance.print_summary()
        if once or cycles:
            return
        bus = instance.bus
        assert bus is not None
        # bus.run() installs the same handlers; these cover the moment before it does.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: bus.stop())
        click.echo("")
        console = _serve_console(instance)
        click.echo(
            "The bus keeps running on the sandboxes (axis at "
            f"{instance.sandboxes.axis.url}); press Ctrl-C to stop."
        )
        # bus.run() stops on SIGINT/SIGTERM after its current batch, so nothing is cut short.
        try:
            bus.run()
        finally:
            if console is not None:
                console.stop()
        click.echo("")
        click.echo("stopped: the batch in hand was finished; the rest waits in var/demo/.")
        instance.print_summary()
