"""The plugin's hooks: the adapter registers, and lookups reach a started directory from XSLT."""

from __future__ import annotations

import pytest
from lxml import etree

from lienthong.adapter import Change
from lienthong.errors import FatalError
from lienthong.host import XPATH_NAMESPACE, PluginHost
from lienthong.plugins.email_directory import lookup, plugin
from lienthong.plugins.email_directory.adapter import DirectoryAdapter
from tests.email_directory.directory_fixtures import Tree

MAPPING = f"""<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:lt="{XPATH_NAMESPACE}">
  <xsl:template match="/doc">
    <out>
      <to><xsl:value-of select="lt:agency-mailbox(string(to/@code))"/></to>
      <cc><xsl:value-of select="lt:account-mail(cc)"/></cc>
      <none><xsl:value-of select="lt:agency-mailbox('*')"/></none>
    </out>
  </xsl:template>
</xsl:stylesheet>""".encode()


@pytest.fixture
def host() -> PluginHost:
    host = PluginHost(load_builtins=False, load_entry_points=False)
    host.add(plugin, "email_directory", origin="built-in")
    host.refresh()
    return host


def test_hooks_register_the_adapter_and_the_lookup_functions(host: PluginHost) -> None:
    assert host.adapter("email_directory") is DirectoryAdapter
    assert set(host.xpath_functions) == {"agency-mailbox", "account-mail"}


def test_lookups_in_a_mapping_query_the_started_directory(host: PluginHost, seeded: Tree) -> None:
    adapter = seeded.adapter()
    ns = etree.FunctionNamespace(XPATH_NAMESPACE)
    for name, function in host.xpath_functions.items():
        ns[name] = function
    try:
        with pytest.raises(FatalError, match="no email_directory endpoint is started"):
            lookup.agency_mailbox(None, "000.00.01.H53")
        adapter.start()
        transform = etree.XSLT(etree.XML(MAPPING))
        doc = etree.XML(b'<doc><to code="000.00.02.H53"/><cc>lvc</cc></doc>')
        out = transform(doc).getroot()
        assert out.findtext("to") == "soyt@tinh.gov.vn"
        assert out.findtext("cc") == "lvc@tinh.gov.vn"
        assert out.findtext("none") == ""
        other = seeded.adapter("directory-2")
        other.start()
        with pytest.raises(FatalError, match="2 directory endpoints.*name one"):
            lookup.account_mail(None, "lvc")
        assert lookup.account_mail(None, "lvc", "directory-2") == "lvc@tinh.gov.vn"
        with pytest.raises(FatalError, match="no started email_directory endpoint 'nope'"):
            lookup.account_mail(None, "lvc", "nope")
        other.stop()
        adapter.sync_apply("account", Change("disable", "lvc", {}))
        assert lookup.account_mail(None, ["lvc"]) == ""  # disabled accounts get no mail
    finally:
        for name in host.xpath_functions:
            del ns[name]
        adapter.stop()
