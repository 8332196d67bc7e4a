"""Helpers for the directory tests: seeded data, a fresh subtree per test, adapters on it."""

from __future__ import annotations

import itertools
from typing import Any

import ldap
import pytest

from lienthong.adapter import Services, resolve_options
from lienthong.plugins.email_directory.adapter import DirectoryAdapter
from lienthong.plugins.email_directory.slapd import SlapdMissing, TemporarySlapd

AGENCIES = [
    ("sotc", "000.00.01.H53", "Sở Tài chính", "sotc@tinh.gov.vn"),
    ("soyt", "000.00.02.H53", "Sở Y tế", "soyt@tinh.gov.vn"),
    ("ubnd-hd", "000.01.00.H53", "UBND huyện Hòa Đông", "ubnd-hd@tinh.gov.vn"),
]
ACCOUNTS = [
    ("nva", "Nguyễn Văn An", "An", "Nguyễn", "nva@tinh.gov.vn", "Chuyên viên", "sotc"),
    ("ttb", "Trần Thị Bình", "Bình", "Trần", "ttb@tinh.gov.vn", "Trưởng phòng", "sotc"),
    ("lvc", "Lê Văn Cường", "Cường", "Lê", "lvc@tinh.gov.vn", "Giám đốc", "soyt"),
    ("pthd", "Phạm Thị Hồng Đào", "Đào", "Phạm", "pthd@tinh.gov.vn", "Văn thư", "ubnd-hd"),
]


def start_slapd(**kwargs: Any) -> TemporarySlapd:
    try:
        return TemporarySlapd(**kwargs).start()
    except SlapdMissing as exc:
        pytest.skip(str(exc))


def admin(server: TemporarySlapd) -> Any:
    conn = ldap.initialize(server.url)
    conn.simple_bind_s(server.rootdn, server.password)
    return conn


def add(conn: Any, dn: str, **attrs: Any) -> None:
    entry = [
        (k, [v.encode() for v in (vs if isinstance(vs, list) else [vs])]) for k, vs in attrs.items()
    ]
    conn.add_s(dn, entry)


_counter = itertools.count()


class Tree:
    """A fresh subtree of the session's slapd with agencies and people, and adapters on it."""

    def __init__(self, server: TemporarySlapd) -> None:
        self.server = server
        self.base = f"ou=t{next(_counter)},{server.suffix}"
        self.agencies_dn = f"ou=agencies,{self.base}"
        self.accounts_dn = f"ou=people,{self.base}"
        self.conn = admin(server)
        add(self.conn, self.base, objectClass="organizationalUnit", ou=self.base[3:].split(",")[0])
        add(self.conn, self.agencies_dn, objectClass="organizationalUnit", ou="agencies")
        add(self.conn, self.accounts_dn, objectClass="organizationalUnit", ou="people")
        self.adapters: list[DirectoryAdapter] = []

    def seed(self) -> Tree:
        for key, code, name, mailbox in AGENCIES:
            add(
                self.conn,
                f"ou={key},{self.agencies_dn}",
                objectClass=["organizationalUnit", "extensibleObject"],
                ou=key,
                businessCategory=code,
                description=name,
                mail=mailbox,
            )
        for uid, cn, given, sn, mail, title, agency in ACCOUNTS:
            add(
                self.conn,
                f"uid={uid},{self.accounts_dn}",
                objectClass="inetOrgPerson",
                uid=uid,
                cn=cn,
                givenName=given,
                sn=sn,
                mail=mail,
                title=title,
                departmentNumber=agency,
                employeeType="active",
            )
        return self

    def settings(self, **overrides: Any) -> dict[str, Any]:
        raw = {
            "url": self.server.url,
            "bind_dn": self.server.rootdn,
            "password": self.server.password,
            "base_dn": self.base,
            "agencies_dn": self.agencies_dn,
            "accounts_dn": self.accounts_dn,
            "page_size": 2,
            "timeout": 5,
            **overrides,
        }
        settings, problems = resolve_options(DirectoryAdapter, raw, "endpoints.directory")
        assert not problems, problems
        return settings

    def adapter(self, endpoint: str = "directory", **overrides: Any) -> DirectoryAdapter:
        adapter = DirectoryAdapter(endpoint, self.settings(**overrides), Services())
        self.adapters.append(adapter)
        return adapter

    def close(self) -> None:
        for adapter in self.adapters:
            adapter.stop()
        self.conn.unbind_s()


def read_all(adapter: DirectoryAdapter, entity: str, since: str | None = None) -> dict[str, dict]:
    batch = adapter.sync_read(entity, since)
    return {r.key: dict(r.fields) for r in batch.records}
