"""The sandbox slapd: starts on loopback, loads LDIF, cleans up, and says how to install it."""

from __future__ import annotations

import socket

import ldap
import pytest

from lienthong.plugins.email_directory import slapd as slapd_module
from lienthong.plugins.email_directory.slapd import SlapdMissing, TemporarySlapd
from tests.email_directory.directory_fixtures import start_slapd


def test_missing_slapd_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(slapd_module, "find_binary", lambda name: None)
    with pytest.raises(SlapdMissing, match=r"slapd not found: apt-get install slapd ldap-utils"):
        TemporarySlapd()


@pytest.mark.server
def test_lifecycle_bulk_load_and_cleanup() -> None:
    server = start_slapd(suffix="dc=huyen,dc=vn")
    folder = server.dir
    assert server.url.startswith("ldap://127.0.0.1:")
    server.load_ldif_text(  # while running: paused, loaded, restarted on the same port
        "dn: ou=people,dc=huyen,dc=vn\nobjectClass: organizationalUnit\nou: people\n\n"
        "dn: uid=x,ou=people,dc=huyen,dc=vn\nobjectClass: inetOrgPerson\nuid: x\n"
        "cn: Đặng Xuân\nsn: Đặng\n"
    )
    conn = ldap.initialize(server.url)
    conn.simple_bind_s(server.rootdn, server.password)
    ((dn, attrs),) = conn.search_s(
        "dc=huyen,dc=vn", ldap.SCOPE_SUBTREE, "(uid=x)", ["cn", "modifyTimestamp"]
    )
    assert attrs["cn"] == ["Đặng Xuân".encode()] and attrs["modifyTimestamp"]
    conn.unbind_s()
    with pytest.raises(RuntimeError, match="slapadd of .* failed"):
        server.load_ldif_text("dn: uid=orphan,ou=nowhere,dc=other\nobjectClass: account\n")
    port = server.port
    server.stop()
    assert not folder.exists()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass
