"""Logging in with the official directory, and syncs into it, against the real slapd."""

from __future__ import annotations

import html
import re

import pytest

from lienthong.console.auth import LoginUnavailable, ldap_login
from lienthong.console.settings import LdapLogin
from lienthong.store import audit as audit_table
from tests.console.console_fixtures import PEOPLE, csrf, log_in, post, text

pytestmark = pytest.mark.server


def ldap_login_as(client, uid: str, password: str | None = None):
    token = csrf(client.get("/login"))
    return client.post("/login", data={"username": uid, "password": password or PEOPLE[uid][0],
                                       "csrf": token, "next": "/"})


def test_a_person_binds_with_their_own_account_and_their_group_gives_the_role(directory_project):
    client = directory_project.client()
    assert ldap_login_as(client, "lan").status_code == 302
    assert "lan · người vận hành" in text(client.get("/"))

    viewer = directory_project.client()
    assert ldap_login_as(viewer, "minh").status_code == 302
    assert "minh · người xem" in text(viewer.get("/"))


def test_no_group_no_console_and_wrong_or_empty_passwords_fail(directory_project):
    client = directory_project.client()
    nobody = ldap_login_as(client, "tuan")
    assert nobody.status_code == 403
    assert "chưa có vai trò" in text(nobody)
    assert ldap_login_as(client, "lan", "not her password").status_code == 401
    # An empty password is an anonymous bind to LDAP, which succeeds: never a login.
    settings = LdapLogin(**directory_project.directory.login_settings())
    assert ldap_login(settings, "lan", "") is None
    assert ldap_login(settings, "lan)(uid=*", PEOPLE["lan"][0]) is None


def test_a_role_can_come_from_an_attribute_of_the_person(directory):
    conn = directory.tree.conn
    import ldap

    conn.modify_s(directory.user_dn("tuan"), [(ldap.MOD_ADD, "businessCategory", [b"admin"])])
    raw = directory.login_settings()
    settings = LdapLogin(url=raw["url"], user_dn=raw["user_dn"], role_attribute="businessCategory")
    user = ldap_login(settings, "tuan", PEOPLE["tuan"][0])
    assert user is not None and user.role == "admin" and user.via == "ldap"


def test_a_directory_that_is_down_says_so_and_local_accounts_still_work(tmp_path, users_file):
    from lienthong.plugins.email_directory.slapd import free_port
    from tests.console.console_fixtures import ConsoleProject

    down = {"url": f"ldap://127.0.0.1:{free_port()}/", "user_dn": "uid={username},ou=x",
            "groups": {"operator": "cn=ops"}, "timeout": 2}
    with pytest.raises(LoginUnavailable, match="did not answer"):
        ldap_login(LdapLogin(url=down["url"], user_dn=down["user_dn"], groups=down["groups"],
                             timeout=2), "lan", "whatever")
    project = ConsoleProject(tmp_path, users_file, console={"ldap": down})
    try:
        client = project.client()
        unavailable = ldap_login_as(client, "lan", "whatever")
        assert unavailable.status_code == 503
        assert "không kết nối được" in text(unavailable)
        assert log_in(client, "vanhanh").status_code == 302
    finally:
        project.close()


def test_a_dry_run_plan_is_a_table_and_approving_it_changes_the_directory(directory_project):
    directory = directory_project.directory
    directory_project.drop_staff([
        "nva,Nguyễn Văn An,An,Nguyễn,nva@tinh.gov.vn,Phó Giám đốc",  # was Chuyên viên
        "ttb,Trần Thị Bình,Bình,Trần,ttb@tinh.gov.vn,Trưởng phòng",
        "lvc,Lê Văn Cường,Cường,Lê,lvc@tinh.gov.vn,Giám đốc",
        "pthd,Phạm Thị Hồng Đào,Đào,Phạm,pthd@tinh.gov.vn,Văn thư",
        "hlm,Hoàng Lan Mai,Mai,Hoàng,hlm@tinh.gov.vn,Kế toán",
    ])
    client = directory_project.client()
    ldap_login_as(client, "lan")
    dry = post(client, "/syncs/staff-sync/run", {"mode": "dry"})
    assert dry.status_code == 302
    report_url = dry.headers["Location"]
    page = html.unescape(text(client.get(report_url)))
    assert "chạy thử" in page and "tạo mới 1, cập nhật 1, vô hiệu hóa 0, không đổi 3" in page
    assert re.search(r"<td>nva</td><td>cập nhật</td>.*?title: <del>Chuyên viên</del> → "
                     r"<ins>Phó Giám đốc</ins>", page, re.S)
    assert re.search(r"<td>hlm</td><td>tạo mới</td>.*?title: <ins>Kế toán</ins>", page, re.S)
    assert directory.account("hlm") is None, "a dry run changes nothing"

    run_id = int(report_url.rsplit("/", 1)[1])
    approved = post(client, f"/syncs/runs/{run_id}/approve", {})
    assert approved.status_code == 302
    assert directory.account("hlm")["title"] == ["Kế toán"]
    assert directory.account("nva")["title"] == ["Phó Giám đốc"]
    applied = html.unescape(text(client.get(approved.headers["Location"])))
    assert f"applied the plan of dry run {run_id}, approved by lan (operator)" in applied
    store = directory_project.console().queries
    with store.engine.connect() as conn:
        details = [r.detail for r in conn.execute(
            audit_table.select().where(audit_table.c.event == "operator"))]
    assert any(d.startswith("lan (operator, ldap) ran sync 'staff-sync' (dry run)")
               for d in details)
    assert any(d.startswith(f"lan (operator, ldap) approved the plan of sync run {run_id}")
               for d in details)


def test_approving_a_plan_the_directory_outran_shows_the_difference(directory_project):
    directory = directory_project.directory
    directory_project.drop_staff([
        "nva,Nguyễn Văn An,An,Nguyễn,nva@tinh.gov.vn,Phó Giám đốc",
        "ttb,Trần Thị Bình,Bình,Trần,ttb@tinh.gov.vn,Trưởng phòng",
        "lvc,Lê Văn Cường,Cường,Lê,lvc@tinh.gov.vn,Giám đốc",
        "pthd,Phạm Thị Hồng Đào,Đào,Phạm,pthd@tinh.gov.vn,Văn thư",
    ])
    client = directory_project.client()
    ldap_login_as(client, "lan")
    run_id = int(post(client, "/syncs/staff-sync/run", {"mode": "dry"})
                 .headers["Location"].rsplit("/", 1)[1])
    directory.set_title("nva", "Chánh Văn phòng")  # someone edits the directory meanwhile

    refused = post(client, f"/syncs/runs/{run_id}/approve", {})
    assert refused.status_code == 409
    page = html.unescape(text(refused))
    assert re.search(r"<td>nva</td><td>cập nhật</td><td>title</td><td>Chuyên viên</td>"
                     r"<td>Chánh Văn phòng</td>", page)
    assert directory.account("nva")["title"] == ["Chánh Văn phòng"], "nothing was applied"


def test_a_viewer_sees_the_plan_but_cannot_approve_it(directory_project):
    directory_project.drop_staff(["hlm,Hoàng Lan Mai,Mai,Hoàng,hlm@tinh.gov.vn,Kế toán"])
    operator = directory_project.client()
    ldap_login_as(operator, "lan")
    report = post(operator, "/syncs/staff-sync/run", {"mode": "dry"}).headers["Location"]
    viewer = directory_project.client()
    ldap_login_as(viewer, "minh")
    page = text(viewer.get(report))
    assert 'id="plan"' in page and 'id="approve"' not in page
    assert post(viewer, report + "/approve", {}).status_code == 403


def test_no_secret_is_rendered_on_any_page(directory_project):
    secret = directory_project.directory.server.password
    directory_project.park()
    client = directory_project.client()
    log_in(client, "quantri")
    post(client, "/syncs/staff-sync/run", {"mode": "dry"})
    pages = ["/", "/dead-letters", "/dead-letters/1", "/trace", "/syncs", "/syncs/runs/1",
             "/config", "/mappings", "/documents"]
    config = text(client.get("/config"))
    assert "••••••" in config and "bind_dn" in config
    for page in pages:
        body = text(client.get(page))
        assert client.get(page).status_code == 200, page
        assert secret not in body, page
        assert "argon2" not in body, page
        assert directory_project.console().secret_key not in body, page
