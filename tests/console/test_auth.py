"""Local accounts, the login limiter and the console's config section (pure logic)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from lienthong.console.auth import LoginLimiter, add_local_account, local_login
from lienthong.console.settings import from_config


def test_local_accounts_are_argon2_hashes_in_a_file_only_its_owner_reads(tmp_path: Path):
    path = tmp_path / "users"
    add_local_account(path, "nva", "operator", "mot-mat-khau-dai")
    text = path.read_text()
    assert "mot-mat-khau-dai" not in text and "nva:operator:$argon2id$" in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    user = local_login(path, "nva", "mot-mat-khau-dai")
    assert user is not None and (user.name, user.role, user.via) == ("nva", "operator", "local")
    assert local_login(path, "nva", "wrong") is None
    assert local_login(path, "nobody", "mot-mat-khau-dai") is None
    add_local_account(path, "nva", "admin", "mat-khau-moi-dai")  # replaced, not added
    assert path.read_text().count("nva:") == 1
    assert local_login(path, "nva", "mat-khau-moi-dai").role == "admin"
    assert local_login(tmp_path / "missing", "nva", "x") is None


@pytest.mark.parametrize(
    ("name", "role", "password", "problem"),
    [
        ("a:b", "viewer", "long enough pass", "is not allowed"),
        ("", "viewer", "long enough pass", "is not allowed"),
        ("nva", "root", "long enough pass", "unknown role"),
        ("nva", "viewer", "short", "at least 10"),
    ],
)
def test_bad_accounts_are_refused_saying_why(tmp_path, name, role, password, problem):
    with pytest.raises(ValueError, match=problem):
        add_local_account(tmp_path / "users", name, role, password)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_limiter_waits_after_five_failures_doubling_and_forgets_after_the_window():
    clock = Clock()
    limiter = LoginLimiter(clock=clock)
    for _ in range(4):
        limiter.failed("nva", "10.0.0.1")
        assert limiter.wait("nva", "10.0.0.1") == 0
    limiter.failed("NVA ", "10.0.0.1")  # the same account, however typed
    assert limiter.wait("nva", "10.0.0.2") == 30
    clock.now += 30
    assert limiter.wait("nva", "10.0.0.1") == 0
    limiter.failed("nva", "10.0.0.1")
    assert limiter.wait("nva", "10.0.0.1") == 60
    assert limiter.wait("ttb", "10.0.0.9") == 0  # others are not held up
    clock.now += 16 * 60  # a quiet quarter of an hour: a fresh start
    limiter.failed("nva", "10.0.0.1")
    assert limiter.wait("nva", "10.0.0.1") == 0
    limiter.succeeded("nva", "10.0.0.1")


def test_the_limiter_also_slows_one_address_trying_many_accounts_and_is_bounded():
    clock = Clock()
    limiter = LoginLimiter(clock=clock, remembered=50)
    for i in range(20):
        limiter.failed(f"user{i}", "10.0.0.7")
    assert limiter.wait("someone-new", "10.0.0.7") == 30
    assert limiter.wait("someone-new", "10.0.0.8") == 0
    for i in range(200):
        limiter.failed(f"spray{i}", f"10.1.{i}.1")
    assert len(limiter._tries) <= 50


def where(*keys: object) -> str:
    return "config:1 " + ".".join(str(k) for k in keys)


def test_the_console_section_is_checked_with_suggestions(tmp_path):
    settings, problems = from_config(
        {"users_fil": "x", "session_hours": -1, "behind_proxy": "yes",
         "ldap": {"url": "http://x", "user_dn": "uid=x", "groups": {"boss": "cn=b"}},
         "secret_key": "short"},
        tmp_path, where, {},
    )
    found = {p.location: p.message for p in problems}
    assert "Did you mean 'users_file'?" in found["config:1 console.users_fil"]
    assert "expected a positive number" in found["config:1 console.session_hours"]
    assert "expected true or false" in found["config:1 console.behind_proxy"]
    assert "not an LDAP URL" in found["config:1 console.ldap.url"]
    assert "must contain {username}" in found["config:1 console.ldap.user_dn"]
    assert "unknown role 'boss'" in found["config:1 console.ldap.groups.boss"]
    assert "at least 32 characters" in found["config:1 console.secret_key"]
    none, nothing = from_config(None, tmp_path, where, {})
    assert nothing == [] and none.users_file is None and none.ldap is None
    good, fine = from_config(
        {"users_file": "users", "ldap": {"url": "ldaps://ldap/", "user_dn": "uid={username},o=x",
                                         "role_attribute": "employeeType"},
         "secret_key": {"env": "K"}},
        tmp_path, where, {"K": "k" * 40},
    )
    assert fine == [] and good.users_file == tmp_path / "users"
    assert good.secret_key is not None and "k" * 40 not in repr(good)
