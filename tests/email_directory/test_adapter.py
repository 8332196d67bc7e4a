"""The directory adapter against a real slapd: reads, writes, hostile values, failures."""

from __future__ import annotations

import time

import ldap
import pytest

from lienthong.adapter import Change, Services, resolve_options
from lienthong.errors import ConfigError, FatalError, RejectedError, TransientError
from lienthong.plugins.email_directory.adapter import DirectoryAdapter, DirectoryLimitError
from lienthong.plugins.email_directory.slapd import free_port
from tests.email_directory.directory_fixtures import (
    ACCOUNTS,
    AGENCIES,
    Tree,
    add,
    read_all,
    start_slapd,
)

pytestmark = pytest.mark.server


def test_reads_every_agency_and_account_across_pages(seeded: Tree) -> None:
    adapter = seeded.adapter()
    agencies = read_all(adapter, "agency")
    assert set(agencies) == {a[0] for a in AGENCIES}  # the container OUs are not agencies
    assert agencies["sotc"] == {
        "code": "000.00.01.H53",
        "name": "Sở Tài chính",
        "mailbox": "sotc@tinh.gov.vn",
    }
    batch = adapter.sync_read("account", None)
    assert batch.complete is True
    records = list(batch.records)
    assert [r.key for r in records] == [a[0] for a in ACCOUNTS]
    assert dict(records[3].fields) == {
        "full_name": "Phạm Thị Hồng Đào",
        "given_name": "Đào",
        "family_name": "Phạm",
        "mail": "pthd@tinh.gov.vn",
        "title": "Văn thư",
        "agency": "ubnd-hd",
        "disabled": False,
    }
    assert batch.cursor and batch.cursor.endswith("Z") and len(batch.cursor) == 15


def test_create_update_disable_read_back(seeded: Tree) -> None:
    adapter = seeded.adapter()
    adapter.sync_apply(
        "account",
        Change(
            "create",
            "dtm",
            {
                "full_name": "Đỗ Thị Mai",
                "given_name": "Mai",
                "family_name": "Đỗ",
                "mail": "dtm@tinh.gov.vn",
                "title": "Chuyên viên",
                "agency": "soyt",
            },
        ),
    )
    adapter.sync_apply("account", Change("update", "nva", {"title": "Phó phòng", "mail": None}))
    adapter.sync_apply("account", Change("disable", "ttb", {}))
    accounts = read_all(adapter, "account")
    assert accounts["dtm"]["full_name"] == "Đỗ Thị Mai" and accounts["dtm"]["disabled"] is False
    assert accounts["nva"]["title"] == "Phó phòng" and accounts["nva"]["mail"] is None
    assert accounts["nva"]["full_name"] == "Nguyễn Văn An"
    assert accounts["ttb"]["disabled"] is True
    entry = seeded.conn.search_s(f"uid=ttb,{seeded.accounts_dn}", ldap.SCOPE_BASE)[0][1]
    assert entry["employeeType"] == [b"disabled"] and entry["cn"] == ["Trần Thị Bình".encode()]


def test_update_touches_only_differing_attributes(seeded: Tree) -> None:
    adapter = seeded.adapter()
    dn = f"uid=lvc,{seeded.accounts_dn}"

    def stamp() -> bytes:
        entry = seeded.conn.search_s(dn, ldap.SCOPE_BASE, attrlist=["entryCSN"])[0][1]
        return entry["entryCSN"][0]

    before = stamp()
    same = dict(read_all(adapter, "account")["lvc"])
    adapter.sync_apply("account", Change("update", "lvc", same))
    assert stamp() == before  # nothing differed, so nothing was written
    adapter.sync_apply("account", Change("update", "lvc", {"title": "Phó giám đốc"}))
    assert stamp() != before


def test_redelivered_create_converges_instead_of_failing(seeded: Tree) -> None:
    adapter = seeded.adapter()
    adapter.sync_apply(
        "account",
        Change(
            "create",
            "nva",
            {"full_name": "Nguyễn Văn An", "family_name": "Nguyễn", "title": "Phó phòng"},
        ),
    )
    assert read_all(adapter, "account")["nva"]["title"] == "Phó phòng"


def test_disable_deletes_when_configured(seeded: Tree) -> None:
    adapter = seeded.adapter(delete_on_disable=True)
    adapter.sync_apply("account", Change("disable", "lvc", {}))
    adapter.sync_apply("account", Change("disable", "lvc", {}))  # again: a no-op
    assert "lvc" not in read_all(adapter, "account")


def test_disable_without_a_marker_is_rejected_with_a_hint(seeded: Tree) -> None:
    with pytest.raises(RejectedError, match="no 'active' marker.*delete_on_disable"):
        seeded.adapter().sync_apply("agency", Change("disable", "soyt", {}))


def test_a_bad_entry_is_rejected_alone(seeded: Tree) -> None:
    adapter = seeded.adapter()
    with pytest.raises(RejectedError, match="uid='nosn'.*create.*refused") as info:
        adapter.sync_apply("account", Change("create", "nosn", {"full_name": "Không Họ"}))
    assert isinstance(info.value.__cause__, ldap.OBJECT_CLASS_VIOLATION)
    with pytest.raises(RejectedError, match="'ghost' is not in the directory.*plan a create"):
        adapter.sync_apply("account", Change("update", "ghost", {"title": "x"}))
    adapter.sync_apply("account", Change("create", "ok", {"full_name": "Có", "family_name": "Có"}))
    assert "ok" in read_all(adapter, "account")


def test_special_characters_and_diacritics_are_stored_and_found_exactly(seeded: Tree) -> None:
    adapter = seeded.adapter()
    uid = "vũ*(đặc)\\biệt, #1"
    name = 'Vũ Thị *(Ngọc)\\ Ánh = Đặng + "Ỷ"'
    adapter.sync_apply(
        "account",
        Change("create", uid, {"full_name": name, "family_name": "Vũ", "mail": "vta@tinh.gov.vn"}),
    )
    accounts = read_all(adapter, "account")
    assert accounts[uid]["full_name"] == name
    assert adapter.account_mail(uid) == "vta@tinh.gov.vn"
    assert adapter.account_mail("vũ*") is None  # a star in data is not a wildcard
    adapter.sync_apply("account", Change("update", uid, {"title": "Kế toán (trưởng)"}))
    assert read_all(adapter, "account")[uid]["title"] == "Kế toán (trưởng)"


@pytest.mark.parametrize("uid", ["*", "nva)(uid=*", "*)(|(uid=*", "nva\\", "\x00"])
def test_filter_injection_in_a_key_matches_nothing(seeded: Tree, uid: str) -> None:
    adapter = seeded.adapter()
    assert adapter.account_mail(uid) is None
    with pytest.raises(RejectedError, match="is not in the directory"):
        adapter.sync_apply("account", Change("update", uid, {"title": "hacked"}))
    assert all(a["title"] != "hacked" for a in read_all(adapter, "account").values())


def test_another_schema_works_through_options_only(tree: Tree) -> None:
    base = tree.base
    add(
        tree.conn,
        f"o=Sở Nội vụ,{base}",
        objectClass=["organization", "extensibleObject"],
        o="Sở Nội vụ",
        postalCode="000.00.05.H53",
        description="Sở Nội vụ tỉnh",
        rfc822Mailbox="snv@tinh.gov.vn",
    )
    add(
        tree.conn,
        f"employeeNumber=E1,{base}",
        objectClass="inetOrgPerson",
        employeeNumber="E1",
        cn="Hoàng Văn Em",
        displayName="Hoàng Văn Em",
        sn="Hoàng",
        mail="hve@tinh.gov.vn",
        businessCategory="enabled",
        ou="Sở Nội vụ",
    )
    maps = {
        "agency_map": {
            "objectclass": ["organization"],
            "key": "o",
            "code": "postalCode",
            "name": "description",
            "mailbox": "mail",
        },
        "account_map": {
            "objectclass": "inetOrgPerson",
            "key": "employeeNumber",
            "full_name": ["displayName", "cn"],
            "family_name": "sn",
            "mail": "mail",
            "agency": "ou",
            "active": {"attribute": "businessCategory", "value": "enabled", "disabled": "locked"},
        },
    }
    adapter = tree.adapter(agencies_dn="", accounts_dn="", **maps)
    assert read_all(adapter, "agency") == {
        "Sở Nội vụ": {
            "code": "000.00.05.H53",
            "name": "Sở Nội vụ tỉnh",
            "mailbox": "snv@tinh.gov.vn",
        }
    }
    assert read_all(adapter, "account")["E1"]["agency"] == "Sở Nội vụ"
    adapter.sync_apply(
        "account",
        Change(
            "create",
            "E2",
            {"full_name": "Đinh Thị Gấm", "family_name": "Đinh", "agency": "Sở Nội vụ"},
        ),
    )
    adapter.sync_apply("account", Change("disable", "E1", {}))
    entry = tree.conn.search_s(f"employeeNumber=E2,{base}", ldap.SCOPE_BASE)[0][1]
    assert entry["cn"] == entry["displayName"] == ["Đinh Thị Gấm".encode()]
    assert entry["businessCategory"] == [b"enabled"]
    accounts = read_all(adapter, "account")
    assert accounts["E1"]["disabled"] is True and accounts["E2"]["disabled"] is False
    assert adapter.agency_mailbox("000.00.05.H53") == "snv@tinh.gov.vn"


def test_unreachable_directory_is_transient() -> None:
    settings, _ = resolve_options(
        DirectoryAdapter,
        {
            "url": f"ldap://127.0.0.1:{free_port()}/",
            "base_dn": "dc=x",
            "timeout": 2,
        },
        "endpoints.directory",
    )
    adapter = DirectoryAdapter("directory", settings, Services())
    with pytest.raises(TransientError, match="unreachable") as info:
        adapter.start()
    assert adapter.is_transient(info.value)
    assert isinstance(info.value.__cause__, ldap.SERVER_DOWN)
    assert adapter.is_transient(info.value.__cause__)


def test_wrong_password_is_a_clear_config_error(seeded: Tree) -> None:
    adapter = seeded.adapter(password="wrong-password-123")
    with pytest.raises(ConfigError) as info:
        list(adapter.sync_read("account", None).records)
    text = str(info.value)
    assert seeded.server.rootdn in text and "invalid credentials" in text
    assert "wrong-password-123" not in text
    assert not adapter.is_transient(info.value)


def test_size_limit_is_an_error_never_the_end() -> None:
    server = start_slapd(size_limit=3)
    try:
        reader = server.add_reader(password="reader-pw")
        conn = ldap.initialize(server.url)
        conn.simple_bind_s(server.rootdn, server.password)
        for i in range(5):
            add(
                conn,
                f"uid=u{i},{server.suffix}",
                objectClass="inetOrgPerson",
                uid=f"u{i}",
                cn=f"U {i}",
                sn="U",
            )
        conn.unbind_s()
        for page_size in (2, 100):
            settings, _ = resolve_options(
                DirectoryAdapter,
                {
                    "url": server.url,
                    "bind_dn": reader,
                    "password": "reader-pw",
                    "base_dn": server.suffix,
                    "page_size": page_size,
                },
                "endpoints.directory",
            )
            adapter = DirectoryAdapter("directory", settings, Services())
            with pytest.raises(DirectoryLimitError, match="Size limit exceeded.*incomplete.*Hint"):
                list(adapter.sync_read("account", None).records)
            adapter.stop()
    finally:
        server.stop()


def test_delta_read_returns_only_entries_changed_since_the_cursor(seeded: Tree) -> None:
    adapter = seeded.adapter()
    first = adapter.sync_read("account", None)
    assert len(list(first.records)) == len(ACCOUNTS)
    time.sleep(1.1)  # modifyTimestamp has one-second resolution
    adapter.sync_apply("account", Change("update", "lvc", {"title": "Phó giám đốc"}))
    adapter.sync_apply("account", Change("create", "new", {"full_name": "M", "family_name": "M"}))
    stamps = sorted(
        seeded.conn.search_s(
            f"uid={u},{seeded.accounts_dn}", ldap.SCOPE_BASE, attrlist=["modifyTimestamp"]
        )[0][1]["modifyTimestamp"][0].decode()
        for u in ("lvc", "new")
    )
    assert stamps[0] > first.cursor
    delta = adapter.sync_read("account", stamps[0])
    records = {r.key: r.fields for r in delta.records}
    assert delta.complete is False and delta.cursor == stamps[-1]
    assert set(records) == {"lvc", "new"}
    assert records["lvc"]["title"] == "Phó giám đốc"
    with pytest.raises(FatalError, match="not an LDAP time"):
        adapter.sync_read("account", "2026-01-01)(uid=*")


def test_bad_config_is_reported_all_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        DirectoryAdapter(
            "directory",
            {
                "url": "http://ldap",
                "base_dn": "",
                "page_size": 0,
                "account_map": {"objectclass": "inetOrgPerson", "mail": "ma il", "disabled": "x"},
                "agency_map": {"objectclass": "x", "key": "ou", "active": "yes"},
            },
            Services(),
        )
    text = str(info.value)
    for part in (
        "url: 'http://ldap'",
        "base_dn: required",
        "page_size",
        "account_map.key: required",
        "'ma il' is not an LDAP attribute name",
        "agency_map.active",
        "account_map.disabled: reserved",
    ):
        assert part in text
    with pytest.raises(ConfigError, match="unknown entity 'person'"):
        DirectoryAdapter("d", {"url": "ldap://x/", "base_dn": "dc=x"}, Services()).sync_read(
            "person", None
        )


def test_start_tls_and_ldaps_verify_the_server_certificate(certificate: tuple) -> None:
    server = start_slapd(tls=certificate)
    try:
        ldaps = {
            "url": server.ldaps_url,
            "bind_dn": server.rootdn,
            "password": server.password,
            "base_dn": server.suffix,
        }
        settings, _ = resolve_options(
            DirectoryAdapter, {**ldaps, "ca_file": str(certificate[0])}, "endpoints.directory"
        )
        DirectoryAdapter("directory", settings, Services()).start()
        settings, _ = resolve_options(DirectoryAdapter, ldaps, "endpoints.directory")
        with pytest.raises(ConfigError, match="ca_file: TLS"):
            DirectoryAdapter("directory", settings, Services()).start()
        common = {
            "url": server.url,
            "bind_dn": server.rootdn,
            "password": server.password,
            "base_dn": server.suffix,
            "start_tls": True,
        }
        settings, _ = resolve_options(
            DirectoryAdapter, {**common, "ca_file": str(certificate[0])}, "endpoints.directory"
        )
        adapter = DirectoryAdapter("directory", settings, Services())
        adapter.start()
        assert list(adapter.sync_read("account", None).records) == []
        adapter.stop()
        settings, _ = resolve_options(DirectoryAdapter, common, "endpoints.directory")
        with pytest.raises(ConfigError, match="ca_file: TLS"):
            DirectoryAdapter("directory", settings, Services()).start()
    finally:
        server.stop()


def test_a_container_that_looks_like_an_agency_is_not_read_as_one(tree: Tree) -> None:
    container = f"ou=Sở Nội Vụ,{tree.base}"
    add(
        tree.conn,
        container,
        objectClass=["organizationalUnit", "extensibleObject"],
        ou="Sở Nội Vụ",
        businessCategory="000.00.05.H53",
    )
    add(
        tree.conn,
        f"ou=Phòng Tổ chức,{container}",
        objectClass=["organizationalUnit", "extensibleObject"],
        ou="Phòng Tổ chức",
    )
    adapter = tree.adapter(agencies_dn=container.upper())  # DNs compare without case
    assert set(read_all(adapter, "agency")) == {"Phòng Tổ chức"}
