"""The province the demo plays, Đắk Lắk, and its day: who sends what, in which cycle.

Agencies and their codes, the documents other agencies send ours, the vouchers
entered at our accounting packages, the staff lists our personnel system drops,
the dossiers lodged at our one-stop desks and the answers UBND tỉnh gives. Data
only: the demo's modules act on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

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
