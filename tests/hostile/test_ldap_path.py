"""Hostile values in and against the LDAP directory, on a real slapd started for the tests.

Values full of filter metacharacters already in the directory must read back
exactly and be found only by themselves; injection attempts in lookups (from
code or from a mapping inside the bus) must match nothing; a value that is not
UTF-8 must be refused with the entry named; keys that look like DNs stay keys.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import ldap
import ldap.dn
import pytest
from lxml import etree

from lienthong import xml
from lienthong.adapter import Change
from lienthong.errors import FatalError, LienthongError
from lienthong.host import XPATH_NAMESPACE
from lienthong.message import Message
from lienthong.plugins import memory
from lienthong.plugins.email_directory.slapd import TemporarySlapd
from tests.email_directory.directory_fixtures import Tree, add, read_all
from tests.hostile.cases import CORPUS

pytestmark = pytest.mark.server


def _values(name: str) -> list[str]:
    """One value per line of a corpus file; ``\\x00`` written as the two characters."""
    text = (CORPUS / "ldap" / name).read_text(encoding="utf-8")
    return [line.replace("\\x00", "\x00") for line in text.splitlines() if line]


STORED = _values("stored-values.txt")
PROBES = _values("filter-injections.txt")


@pytest.fixture
def seeded(slapd: TemporarySlapd) -> Iterator[Tree]:
    tree = Tree(slapd).seed()
    yield tree
    tree.close()


@pytest.mark.parametrize("value", STORED, ids=[f"stored-{i}" for i in range(len(STORED))])
def test_a_value_full_of_metacharacters_reads_back_exactly_and_matches_only_itself(
    seeded: Tree, value: str
) -> None:
    add(
        seeded.conn,
        f"uid={ldap.dn.escape_dn_chars(value)},{seeded.accounts_dn}",
        objectClass="inetOrgPerson",
        uid=value,
        cn=value,
        sn="Hostile",
        title=value,
        mail="hostile@tinh.gov.vn",
        employeeType="active",
    )
    adapter = seeded.adapter()
    accounts = read_all(adapter, "account")
    assert accounts[value]["full_name"] == value and accounts[value]["title"] == value
    assert len(accounts) == 5, "the four seeded accounts and this one, nothing more"
    assert adapter.account_mail(value) == "hostile@tinh.gov.vn"
    assert adapter.account_mail("nva") == "nva@tinh.gov.vn"


@pytest.mark.parametrize("probe", PROBES, ids=[f"probe-{i}" for i in range(len(PROBES))])
def test_an_injection_attempt_in_a_lookup_matches_nothing(seeded: Tree, probe: str) -> None:
    adapter = seeded.adapter()
    assert adapter.agency_mailbox(probe) is None
    assert adapter.account_mail(probe) is None
    assert adapter.agency_mailbox("000.00.01.H53") == "sotc@tinh.gov.vn"


def test_a_cursor_that_smuggles_a_filter_is_refused(seeded: Tree) -> None:
    adapter = seeded.adapter()
    with pytest.raises(FatalError, match="is not an LDAP time like 20260101120000Z. Hint:"):
        adapter.sync_read("account", "20260101000000Z)(uid=*")


@pytest.mark.parametrize(
    "key", ["nva,ou=agencies", "x+cn=admin", "=", "#01", " lead", "trail ", "a\\,b"]
)
def test_a_key_that_looks_like_a_dn_stays_a_key(seeded: Tree, key: str) -> None:
    adapter = seeded.adapter()
    adapter.sync_apply(
        "account", Change("create", key, {"full_name": "Khóa lạ", "family_name": "Lạ"})
    )
    found = seeded.conn.search_s(seeded.base, ldap.SCOPE_SUBTREE, "(sn=Lạ)", ["uid"])
    [(dn, attrs)] = found
    assert dn.endswith(f",{seeded.accounts_dn}"), "created in the accounts container only"
    assert attrs["uid"] == [key.encode()]
    assert read_all(adapter, "account")[key]["full_name"] == "Khóa lạ"


def test_a_value_that_is_not_utf8_is_refused_naming_the_entry(seeded: Tree) -> None:
    dn = f"uid=binary,{seeded.accounts_dn}"
    seeded.conn.add_s(
        dn,
        [
            ("objectClass", [b"inetOrgPerson"]),
            ("uid", [b"binary"]),
            ("cn", [b"binary"]),
            ("sn", [b"binary"]),
            ("audio", [b"Nguy\xea\xb5n \xff\xfe"]),  # octet string: slapd stores any bytes
        ],
    )
    account_map = {
        "objectclass": ["inetOrgPerson"],
        "key": "uid",
        "full_name": "cn",
        "voice": "audio",
    }
    adapter = seeded.adapter(account_map=account_map)
    with pytest.raises(LienthongError) as caught:
        read_all(adapter, "account")
    assert "uid=binary" in str(caught.value) and "audio" in str(caught.value)


def test_injection_through_a_mapping_in_the_bus_finds_nothing(
    lienthong_bus, seeded: Tree, tmp_path: Path
) -> None:
    mappings = tmp_path / "mappings"
    mappings.mkdir()
    (mappings / "mailbox.xsl").write_text(
        f'<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform" '
        f'xmlns:lt="{XPATH_NAMESPACE}"><xsl:template match="/notice"><mail>'
        '<to><xsl:value-of select="lt:agency-mailbox(string(code))"/></to>'
        "</mail></xsl:template></xsl:stylesheet>",
        encoding="utf-8",
    )
    directory = {
        "adapter": "email_directory",
        "url": seeded.server.url,
        "bind_dn": seeded.server.rootdn,
        "password": seeded.server.password,
        "base_dn": seeded.base,
        "agencies_dn": seeded.agencies_dn,
        "accounts_dn": seeded.accounts_dn,
    }
    bus = lienthong_bus(
        mappings=mappings,
        endpoints={
            "directory": directory,
            "in": {"adapter": "memory"},
            "out": {"adapter": "memory"},
        },
        routes=[{"name": "r", "from": "in", "to": [{"endpoint": "out", "mapping": "mailbox.xsl"}]}],
    )
    codes = [*PROBES[:6], "000.00.02.H53"]
    memory.feed("in", [Message(body=_notice(code)) for code in codes])
    total = bus.run(once=True)
    assert total.delivered == len(codes) and total.dead == 0
    found = [xml.parse(m.body).findtext("to") or "" for m in memory.delivered("out")]
    assert found.count("soyt@tinh.gov.vn") == 1 and set(found) == {"soyt@tinh.gov.vn", ""}


def _notice(code: str) -> bytes:
    root = etree.Element("notice")
    etree.SubElement(root, "code").text = code.replace("\x00", "")
    return xml.serialize(root)
