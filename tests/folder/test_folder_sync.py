"""The folder as a sync source: the newest staff file, CSV or XML, as a full snapshot."""

from __future__ import annotations

import hashlib
import os
import threading
import unicodedata
from pathlib import Path
from typing import Any

import ldap
import pytest

from lienthong.adapter import Change, Record, Services, resolve_options
from lienthong.errors import ConfigError, RejectedError, TransientError
from lienthong.mapping import MappingError
from lienthong.plugins.folder import FolderAdapter
from lienthong.store import make_engine, metadata
from lienthong.sync import GuardRefused, SyncSpec, recent_runs, run
from lienthong.testing import RecordingInbox
from tests.email_directory.directory_fixtures import Tree

REPO_MAPPINGS = Path(__file__).resolve().parents[2] / "mappings"
STAFF_XSL = "directory/staff-list-to-records.xsl"
CASES = REPO_MAPPINGS / "directory" / "staff-list-to-records.cases"

HEADER = "Tên đăng nhập,Họ và tên,Tên,Họ,Thư điện tử,Chức vụ,Đơn vị\n"
RENAMES = {
    "Họ và tên": "full_name",
    "Tên": "given_name",
    "Họ": "family_name",
    "Thư điện tử": "mail",
    "Chức vụ": "title",
    "Đơn vị": "agency",
}


def folder(tmp_path: Path, *, max_bytes: int = 10 * 1024 * 1024, **raw: Any) -> FolderAdapter:
    raw = {"path": str(tmp_path / "hr"), "direction": "sync", **raw}
    settings, problems = resolve_options(FolderAdapter, raw, "endpoints.hr-drop")
    assert not problems, problems
    services = Services(
        base_dir=tmp_path,
        var_dir=tmp_path / "var",
        max_message_bytes=max_bytes,
        mappings_dir=REPO_MAPPINGS,
    )
    adapter = FolderAdapter("hr-drop", settings, services)
    adapter.start()
    return adapter


def csv_folder(tmp_path: Path, **raw: Any) -> FolderAdapter:
    return folder(
        tmp_path, sync_pattern="staff-*.csv", sync_key="Tên đăng nhập", sync_fields=RENAMES, **raw
    )


def drop(adapter: FolderAdapter, name: str, data: str | bytes, age: float = 0) -> Path:
    """Write a file as the personnel system would, ``age`` seconds old."""
    path = Path(adapter.path) / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    stamp = path.stat().st_mtime - age
    os.utime(path, (stamp, stamp))
    return path


def read(adapter: FolderAdapter, since: str | None = None) -> dict[str, dict[str, Any]]:
    batch = adapter.sync_read("account", since)
    return {r.key: dict(r.fields) for r in batch.records}


# --- CSV ------------------------------------------------------------------


def test_csv_rows_become_records_with_renamed_fields(tmp_path: Path) -> None:
    adapter = csv_folder(tmp_path)
    decomposed = unicodedata.normalize("NFD", "Trần Thị Bình")
    body = (
        "\ufeff"  # Excel's "CSV UTF-8" starts with a byte-order mark
        + HEADER
        + "nva,Nguyễn Văn An,An,Nguyễn,nva@tinh.gov.vn,Chuyên viên,sotc\n"
        + f' ttb ,"{decomposed}",Bình,Trần,ttb@tinh.gov.vn,"Trưởng phòng, Kế toán",sotc\n'
        + "\n"
        + "lvc,Lê Văn Cường,Cường,Lê,lvc@tinh.gov.vn,,soyt\n"
    )
    file = drop(adapter, "staff-2026-11-28.csv", body)
    batch = adapter.sync_read("account", None)
    records = list(batch.records)
    assert batch.complete is True
    assert batch.cursor == f"{file.name}:{hashlib.sha256(file.read_bytes()).hexdigest()}"
    assert [r.key for r in records] == ["nva", "ttb", "lvc"]
    assert records[0] == Record(
        "nva",
        {
            "full_name": "Nguyễn Văn An",
            "given_name": "An",
            "family_name": "Nguyễn",
            "mail": "nva@tinh.gov.vn",
            "title": "Chuyên viên",
            "agency": "sotc",
        },
    )
    ttb = records[1].fields
    assert ttb["full_name"] == "Trần Thị Bình" and ttb["full_name"] != decomposed  # NFC
    assert ttb["title"] == "Trưởng phòng, Kế toán"
    assert records[2].fields["title"] is None  # an empty cell is no value


def test_columns_without_a_rename_keep_their_header_and_a_delimiter_is_an_option(
    tmp_path: Path,
) -> None:
    adapter = folder(tmp_path, sync_pattern="*.csv", sync_key="uid", sync_delimiter=";")
    drop(adapter, "nhan-su.csv", "uid;mail;disabled\nnva;nva@tinh.gov.vn;\nttb;ttb@x.vn;x\n")
    assert read(adapter) == {
        "nva": {"mail": "nva@tinh.gov.vn", "disabled": False},
        "ttb": {"mail": "ttb@x.vn", "disabled": True},
    }


def test_the_newest_settled_file_is_read_and_others_are_left_alone(tmp_path: Path) -> None:
    adapter = csv_folder(tmp_path, settle_seconds=30)
    drop(adapter, "staff-old.csv", HEADER + "old,Cũ,,,,,\n", age=3600)
    drop(adapter, "staff-new.csv", HEADER + "new,Mới,,,,,\n", age=60)
    drop(adapter, "staff-writing.csv", HEADER + "half,Đang ghi", age=0)  # not settled
    drop(adapter, ".staff-tmp.csv", HEADER + "tmp,Tạm,,,,,\n", age=10)
    drop(adapter, "other.csv", HEADER + "other,Khác,,,,,\n", age=10)  # not the pattern
    assert list(read(adapter)) == ["new"]
    # A sync only reads: the bus's poll never takes the files of a sync folder.
    assert adapter.receive(RecordingInbox()) == 0
    assert len(list(Path(adapter.path).iterdir())) == 5


def test_the_same_file_again_is_an_empty_delta_and_another_a_full_snapshot(tmp_path: Path) -> None:
    adapter = csv_folder(tmp_path)
    drop(adapter, "staff-1.csv", HEADER + "nva,Nguyễn Văn An,,,,,\n", age=10)
    first = adapter.sync_read("account", None)
    assert list(first.records) and first.cursor
    same = adapter.sync_read("account", first.cursor)
    assert (list(same.records), same.complete, same.cursor) == ([], False, first.cursor)
    drop(adapter, "staff-2.csv", HEADER + "ttb,Trần Thị Bình,,,,,\n")
    newer = adapter.sync_read("account", first.cursor)
    assert newer.complete and [r.key for r in newer.records] == ["ttb"]
    assert newer.cursor and newer.cursor.startswith("staff-2.csv:")


def test_duplicate_keys_and_empty_keys_are_left_to_the_sync_engine(tmp_path: Path) -> None:
    adapter = csv_folder(tmp_path)
    drop(adapter, "staff-1.csv", HEADER + "nva,A,,,,,\nnva,B,,,,,\n,C,,,,,\n")
    records = list(adapter.sync_read("account", None).records)
    assert [(r.key, r.fields["full_name"]) for r in records] == [
        ("nva", "A"),
        ("nva", "B"),
        ("", "C"),
    ]


def test_a_header_only_file_is_an_empty_snapshot(tmp_path: Path) -> None:
    adapter = csv_folder(tmp_path)
    drop(adapter, "staff-1.csv", HEADER)
    batch = adapter.sync_read("account", None)
    assert list(batch.records) == [] and batch.complete  # the engine's guard decides


# --- hostile CSV ------------------------------------------------------------


def test_ragged_rows_refuse_the_whole_file_naming_the_lines(tmp_path: Path) -> None:
    adapter = csv_folder(tmp_path)
    body = HEADER + "nva,Nguyễn Văn An,An,Nguyễn,nva@tinh.gov.vn,Chuyên viên,sotc\n"
    body += "ttb,Trần Thị Bình,Bình,Trần,ttb@tinh.gov.vn,Trưởng phòng, Kế toán,sotc\n"
    body += "lvc,Lê Văn Cường\n"
    drop(adapter, "staff-1.csv", body)
    with pytest.raises(RejectedError) as caught:
        adapter.sync_read("account", None)
    text = str(caught.value)
    assert "differs from the header's 7" in text
    assert "line 3 has 8 columns; line 4 has 2 columns" in text
    assert "nothing was read from" in text and "Hint: quote values" in text


def test_a_broken_quote_is_refused_with_its_line(tmp_path: Path) -> None:
    adapter = csv_folder(tmp_path)
    drop(adapter, "staff-1.csv", HEADER + 'nva,"Nguyễn "Văn" An,,,,,\n')
    with pytest.raises(RejectedError, match="not valid CSV at line 2"):
        adapter.sync_read("account", None)


def test_a_file_over_the_bus_limit_is_refused_unread(tmp_path: Path) -> None:
    adapter = csv_folder(tmp_path, max_bytes=1000)
    drop(adapter, "staff-1.csv", HEADER + "nva,Nguyễn Văn An,,,,,\n" * 40)
    with pytest.raises(RejectedError, match=r"over the limit of 1,000 bytes.*max_message_bytes"):
        adapter.sync_read("account", None)


def test_a_file_that_is_not_utf8_is_refused_with_the_fix(tmp_path: Path) -> None:
    adapter = csv_folder(tmp_path)
    drop(adapter, "staff-1.csv", (HEADER + "nva,Nguyễn Văn An,,,,,\n").encode("utf-16"))
    with pytest.raises(RejectedError, match="is not UTF-8 .*CSV UTF-8"):
        adapter.sync_read("account", None)
    drop(adapter, "staff-2.csv", HEADER.encode() + "lvc,Lê Văn,,,,,\n".encode("cp1258"))
    with pytest.raises(RejectedError, match=r"not UTF-8 \(line 2"):
        adapter.sync_read("account", None)


def test_an_empty_file_or_a_header_without_the_key_is_refused(tmp_path: Path) -> None:
    adapter = csv_folder(tmp_path)
    drop(adapter, "staff-1.csv", b"")
    with pytest.raises(RejectedError, match="is empty: no header row"):
        adapter.sync_read("account", None)
    drop(adapter, "staff-2.csv", HEADER.replace("Tên đăng nhập", "Ten dang nhap"))
    with pytest.raises(
        RejectedError, match="no column named 'Tên đăng nhập' .*; column 1 has a close name"
    ):
        adapter.sync_read("account", None)
    drop(adapter, "staff-3.csv", HEADER.replace(",Chức vụ", ""))
    with pytest.raises(
        RejectedError, match=r"lacks column\(s\) \['Chức vụ'\] named in sync_fields"
    ):
        adapter.sync_read("account", None)
    drop(adapter, "staff-4.csv", HEADER.replace("Chức vụ", "Tên"))
    with pytest.raises(
        RejectedError, match=r"repeats a column name in its header \(columns 3 and 6\)"
    ):
        adapter.sync_read("account", None)
    drop(adapter, "staff-5.csv", HEADER.replace("\n", ",title\n"))
    with pytest.raises(RejectedError, match=r"two columns the same field name \(columns 6 and 8\)"):
        adapter.sync_read("account", None)


def test_a_disabled_column_must_say_true_or_false(tmp_path: Path) -> None:
    adapter = folder(tmp_path, sync_pattern="*.csv", sync_key="uid")
    drop(adapter, "a.csv", "uid,disabled\nnva,Nghỉ hưu\n")
    with pytest.raises(
        RejectedError, match="has the record on line 2 whose field 'disabled' is neither true"
    ) as caught:
        adapter.sync_read("account", None)
    assert "Nghỉ hưu" not in str(caught.value) and "nva" not in str(caught.value)


def test_no_file_yet_is_transient(tmp_path: Path) -> None:
    adapter = csv_folder(tmp_path)
    with pytest.raises(TransientError, match="no file matching 'staff-\\*.csv'"):
        adapter.sync_read("account", None)


# --- links, pipes and what errors show -------------------------------------------

SHADOW = (
    "root:$6$Xq1salt$Hh8secrethashvalue:19700:0:99999:7:::\nnva:$6$abc$def:19700:0:99999:7:::\n"
)


@pytest.mark.parametrize("link", ["symbolic", "hard"])
def test_a_link_as_the_newest_file_is_refused_unread(tmp_path: Path, link: str) -> None:
    adapter = csv_folder(tmp_path)
    drop(adapter, "staff-1.csv", HEADER + "nva,Nguyễn Văn An,,,,,\n", age=60)
    shadow = tmp_path / "shadow"
    shadow.write_text(SHADOW)
    newest = Path(adapter.path) / "staff-2.csv"
    if link == "symbolic":
        newest.symlink_to(shadow)
    else:
        os.link(shadow, newest)
    with pytest.raises(RejectedError) as caught:
        adapter.sync_read("account", None)
    text = str(caught.value)
    assert "nothing was read from" in text and "staff-2.csv" in text
    assert ("is a symbolic link" if link == "symbolic" else "has 2 hard links") in text
    assert "$6$" not in text and "Xq1salt" not in text


def test_a_named_pipe_as_the_newest_file_is_refused_without_blocking(tmp_path: Path) -> None:
    adapter = csv_folder(tmp_path)
    os.mkfifo(Path(adapter.path) / "staff-2.csv")
    outcome: list[BaseException] = []

    def read() -> None:
        try:
            adapter.sync_read("account", None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(20)
    if thread.is_alive():
        os.close(os.open(Path(adapter.path) / "staff-2.csv", os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("the sync blocked opening a named pipe")
    [error] = outcome
    assert isinstance(error, RejectedError)
    assert "'staff-2.csv' is a named pipe (FIFO), not a plain file" in str(error)


def test_errors_about_a_file_never_show_its_content(tmp_path: Path) -> None:
    adapter = folder(tmp_path, sync_pattern="*.csv", sync_key="uid")
    drop(adapter, "a.csv", SHADOW)
    with pytest.raises(RejectedError) as caught:
        adapter.sync_read("account", None)
    text = str(caught.value)
    assert "has no column named 'uid' (sync_key) among the 1 of its header row" in text
    assert "$6$" not in text and "Xq1salt" not in text and "19700" not in text
    drop(adapter, "b.csv", b"uid,name\nnva,Nguy\xe1n\xff\n")
    with pytest.raises(RejectedError, match=r"not UTF-8 \(line 2, byte 18\)") as caught:
        adapter.sync_read("account", None)
    assert "Nguy" not in str(caught.value) and "xff" not in str(caught.value)


# --- XML through a mapping ----------------------------------------------------


def test_an_xml_export_becomes_records_through_the_shipped_mapping(tmp_path: Path) -> None:
    adapter = folder(tmp_path, sync_pattern="canbo-*.xml", sync_mapping=STAFF_XSL)
    drop(adapter, "canbo-1.xml", (CASES / "so-tai-chinh" / "input.xml").read_bytes())
    records = read(adapter)
    assert list(records) == ["nva", "ttb", "lvc", "pthdao"]  # CB-0003 has no account
    assert records["ttb"] == {
        "full_name": "Trần Thị Bình",
        "given_name": "Bình",
        "family_name": "Trần",
        "mail": "ttb@tinh.gov.vn",
        "title": "Trưởng phòng Quản lý ngân sách",
        "agency": "000.00.01.H53",
    }
    assert records["lvc"]["disabled"] is True  # retired (NghiHuu)
    assert records["pthdao"]["title"] is None


def test_hostile_xml_is_refused(tmp_path: Path) -> None:
    adapter = folder(tmp_path, sync_pattern="canbo-*.xml", sync_mapping=STAFF_XSL)
    drop(adapter, "canbo-1.xml", "<DuLieuCanBo><DonVi>")
    with pytest.raises(RejectedError, match="not well-formed XML"):
        adapter.sync_read("account", None)
    drop(adapter, "canbo-2.xml", '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>')
    with pytest.raises(RejectedError, match="DTD or entities"):
        adapter.sync_read("account", None)
    export = (CASES / "so-tai-chinh" / "input.xml").read_text(encoding="utf-8")
    drop(adapter, "canbo-3.xml", export.replace("NghiThaiSan", "DiHoc"))
    with pytest.raises(MappingError, match="TaiKhoan 'ttb' has an unknown TrangThai 'DiHoc'"):
        adapter.sync_read("account", None)
    drop(adapter, "canbo-4.xml", "<NhanSu/>")
    with pytest.raises(MappingError, match="expected a DuLieuCanBo export, got <NhanSu>"):
        adapter.sync_read("account", None)


BAD_OUTPUT = """<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:template match="/">{}</xsl:template>
</xsl:stylesheet>"""


@pytest.mark.parametrize(
    ("output", "error"),
    [
        ("<people/>", "produced <people>, not <records>"),
        ("<records><person/></records>", "child 1 is <person>"),
        ('<records><record><field name="a"/></record></records>', "child 1 is <record>, not"),
        (
            '<records><record key="k"><field name="a"/><field name="a"/></record></records>',
            "child 2 of record 1 repeats a field",
        ),
        (
            '<records><record key="k"><value/></record></records>',
            "child 1 of record 1 is not a <field",
        ),
    ],
)
def test_a_mapping_that_outputs_no_records_shape_is_refused(
    tmp_path: Path, output: str, error: str
) -> None:
    mappings = tmp_path / "mappings"
    mappings.mkdir()
    (mappings / "bad.xsl").write_text(BAD_OUTPUT.format(output))
    raw = {"path": str(tmp_path / "hr"), "direction": "sync"}
    raw |= {"sync_pattern": "*.xml", "sync_mapping": "bad.xsl"}
    settings, _ = resolve_options(FolderAdapter, raw, "endpoints.hr-drop")
    adapter = FolderAdapter("hr-drop", settings, Services(base_dir=tmp_path))
    adapter.start()  # without mappings_dir: the config's default folder, ./mappings
    drop(adapter, "a.xml", "<x/>")
    with pytest.raises(
        RejectedError, match=r"mapping 'bad.xsl' on 'a.xml'.*Hint: output <records>"
    ) as c:
        adapter.sync_read("account", None)
    assert error in str(c.value)


# --- configuration --------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ({}, "direction 'sync' needs sync_pattern"),
        ({"sync_pattern": "staff.txt"}, "sync_format must be one of csv, xml, got 'txt'"),
        ({"sync_pattern": "staff.csv"}, "a CSV sync source needs sync_key"),
        (
            {
                "sync_pattern": "*.txt",
                "sync_format": "csv",
                "sync_key": "uid",
                "sync_delimiter": ";;",
            },
            "sync_delimiter must be one character",
        ),
        (
            {"sync_pattern": "*.csv", "sync_key": "uid", "sync_fields": {"a": "x", "b": "x"}},
            r"names field\(s\) \['x'\] for more than one column",
        ),
        (
            {"sync_pattern": "*.csv", "sync_key": "uid", "sync_fields": {"a": ""}},
            "sync_fields maps a CSV column to a field name",
        ),
        ({"sync_pattern": "*.xml"}, "an XML sync source needs sync_mapping"),
        (
            {"sync_pattern": "*.xml", "sync_mapping": "directory/staff.xsl"},
            "mapping 'directory/staff.xsl' not found.*Did you mean 'directory/staff-list-to-records.xsl'",
        ),
        (
            {"direction": "in", "sync_pattern": "*.csv"},
            "sync_pattern only apply to a sync source.*direction: sync",
        ),
    ],
)
def test_bad_sync_settings_refuse_to_start(tmp_path: Path, raw: dict, error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        folder(tmp_path, **raw)


def test_a_sync_cannot_read_an_in_folder_or_write_any_folder(tmp_path: Path) -> None:
    inbox = folder(tmp_path, direction="in")
    with pytest.raises(ConfigError, match="direction is 'in', so a sync cannot read it"):
        inbox.sync_read("account", None)
    source = csv_folder(tmp_path)
    with pytest.raises(NotImplementedError, match="is a sync source only.*Hint"):
        source.sync_apply("account", Change("create", "nva", {"full_name": "An"}))


# --- reconciles into the real directory ---------------------------------------


def staff_row(i: int, title: str = "Chuyên viên") -> str:
    return f"nvs{i},Nguyễn Văn Số {i},Số {i},Nguyễn,nvs{i}@tinh.gov.vn,{title},sotc\n"


def staff_file(rows: list[str]) -> str:
    return HEADER + "".join(rows)


@pytest.mark.server
def test_a_csv_staff_list_reconciles_into_the_directory(tree: Tree, tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'bus.db'}")
    metadata.create_all(engine)
    source, target = csv_folder(tmp_path), tree.adapter()
    spec = SyncSpec("staff-nightly", "hr-drop", "directory", "account")

    drop(source, "staff-1.csv", staff_file([staff_row(i) for i in range(1, 21)]), age=600)
    first = run(spec, source, target, engine)
    assert (first.outcome, first.counts["create"], first.counts["applied"]) == ("ok", 20, 20)
    entry = tree.conn.search_s(f"uid=nvs7,{tree.accounts_dn}", ldap.SCOPE_BASE)[0][1]
    assert entry["cn"] == ["Nguyễn Văn Số 7".encode()] and entry["employeeType"] == [b"active"]
    assert first.cursor_after and first.cursor_after.startswith("staff-1.csv:")

    again = run(spec, source, target, engine)
    assert again.counts == {
        "create": 0,
        "update": 0,
        "disable": 0,
        "unchanged": 20,
        "rejected": 0,
        "applied": 0,
        "failed": 0,
    }

    # Tomorrow's file: nvs1 promoted, nvs21 hired, nvs2 gone.
    rows = [staff_row(1, "Trưởng phòng"), *[staff_row(i) for i in range(3, 22)]]
    drop(source, "staff-2.csv", staff_file(rows), age=500)
    changed = run(spec, source, target, engine)
    assert {(i.key, i.action, i.status) for i in changed.items} == {
        ("nvs1", "update", "applied"),
        ("nvs21", "create", "applied"),
        ("nvs2", "disable", "applied"),
    }
    accounts = {r.key: r.fields for r in target.sync_read("account", None).records}
    assert accounts["nvs1"]["title"] == "Trưởng phòng" and accounts["nvs2"]["disabled"] is True
    assert accounts["nvs21"]["full_name"] == "Nguyễn Văn Số 21"

    # A truncated export that lost half the staff: the guard stops it, nothing changes.
    drop(source, "staff-3.csv", staff_file(rows[:10]), age=400)
    with pytest.raises(GuardRefused, match="would disable 10 of 20 active 'account'"):
        run(spec, source, target, engine)
    drop(source, "staff-4.csv", HEADER, age=300)  # zero rows
    with pytest.raises(GuardRefused, match="would disable 20 of 20 active"):
        run(spec, source, target, engine)
    # A ragged file is refused before any plan: the run is stored as an error.
    drop(source, "staff-4b.csv", staff_file([*rows[:5], "nvs99,Lê Văn\n", *rows[5:]]), age=250)
    with pytest.raises(RejectedError, match="line 7 has 2 columns"):
        run(spec, source, target, engine)
    [refused] = recent_runs(engine, "staff-nightly", limit=1)
    assert refused.outcome == "error" and "nothing was read" in (refused.message or "")
    accounts = {r.key: r.fields for r in target.sync_read("account", None).records}
    assert sum(not f["disabled"] for f in accounts.values()) == 20

    # A duplicated uid: both of its rows are rejected, the rest is applied.
    rows = [staff_row(1, "Trưởng phòng")]
    rows += [staff_row(i, "Kế toán" if i == 6 else "Chuyên viên") for i in range(3, 22)]
    rows.append(staff_row(5, "Bản sao"))
    drop(source, "staff-5.csv", staff_file(rows), age=200)
    dup = run(spec, source, target, engine)
    assert dup.outcome == "failed"
    assert [(i.key, i.status) for i in dup.items if i.status != "applied"] == [("nvs5", "rejected")]
    assert "appears 2 times in 'hr-drop'" in (dup.items[0].reason or "")
    accounts = {r.key: r.fields for r in target.sync_read("account", None).records}
    assert accounts["nvs5"]["title"] == "Chuyên viên" and not accounts["nvs5"]["disabled"]
    assert accounts["nvs6"]["title"] == "Kế toán"


@pytest.mark.server
def test_an_xml_export_reconciles_through_a_configured_bus_job(
    tree: Tree, tmp_path: Path, lienthong_bus: Any
) -> None:
    server = tree.server
    bus = lienthong_bus(
        endpoints={
            "hr-drop": {
                "adapter": "folder",
                "path": "hr",
                "direction": "sync",
                "sync_pattern": "canbo-*.xml",
                "sync_mapping": STAFF_XSL,
            },
            "directory": {
                "adapter": "email_directory",
                "url": server.url,
                "bind_dn": server.rootdn,
                "password": server.password,
                "base_dn": tree.base,
                "agencies_dn": tree.agencies_dn,
                "accounts_dn": tree.accounts_dn,
            },
        },
        jobs={
            "staff-nightly": {
                "cron": "0 2 * * *",
                "sync": {
                    "source": "hr-drop",
                    "target": "directory",
                    "entity": "account",
                    "max_disable_share": 0.5,
                },
            }
        },
        mappings=REPO_MAPPINGS,
    )
    spec = bus.config.jobs["staff-nightly"].sync
    export = (CASES / "so-tai-chinh" / "input.xml").read_text(encoding="utf-8")
    hr = tmp_path / "hr"
    drop(bus.adapters["hr-drop"], "canbo-1.xml", export, age=100)

    assert bus.poll() == 0 and (hr / "canbo-1.xml").exists()  # the poll leaves it alone
    first = bus.run_sync(spec, False)
    assert first.outcome == "ok"
    # lvc is retired in the export and not in the directory: nothing to create.
    assert sorted((i.key, i.action) for i in first.items) == [
        ("nva", "create"),
        ("pthdao", "create"),
        ("ttb", "create"),
    ]
    entry = tree.conn.search_s(f"uid=ttb,{tree.accounts_dn}", ldap.SCOPE_BASE)[0][1]
    assert entry["cn"] == ["Trần Thị Bình".encode()] and entry["sn"] == ["Trần".encode()]
    assert entry["departmentNumber"] == [b"000.00.01.H53"]

    # nva leaves (ThoiViec), pthdao gets a title.
    later = export.replace(
        '<TrangThai>DangCongTac</TrangThai>\n    </CanBo>\n    <CanBo Ma="CB-0002">',
        '<TrangThai>ThoiViec</TrangThai>\n    </CanBo>\n    <CanBo Ma="CB-0002">',
    ).replace("<ChucVu/>", "<ChucVu>Phó Chánh Thanh tra</ChucVu>")
    assert later.count("ThoiViec") == 1
    drop(bus.adapters["hr-drop"], "canbo-2.xml", later)
    second = bus.run_sync(spec, False)
    assert sorted((i.key, i.action, dict(i.fields)) for i in second.items) == [
        ("nva", "disable", {"disabled": True}),
        ("pthdao", "update", {"title": "Phó Chánh Thanh tra"}),
    ]
    counts = bus.run_sync(spec, False).counts
    assert (counts["create"], counts["update"], counts["disable"], counts["unchanged"]) == (
        0,
        0,
        0,
        4,
    )
