<?xml version="1.0" encoding="UTF-8"?>
<!-- Upper-cases each item's name and stamps the sending agency (a string param). -->
<xsl:stylesheet version="1.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:lt="urn:lienthong:functions"
    exclude-result-prefixes="lt">
  <xsl:param name="agency" select="'unknown'"/>
  <xsl:template match="/list">
    <out agency="{$agency}">
      <xsl:for-each select="item">
        <item code="{@code}">
          <name><xsl:value-of select="lt:upper(string(name))"/></name>
        </item>
      </xsl:for-each>
    </out>
  </xsl:template>
</xsl:stylesheet>
