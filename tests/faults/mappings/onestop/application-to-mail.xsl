<?xml version="1.0" encoding="UTF-8"?>
<!-- One-stop-shop application (hồ sơ một cửa) → a mail to the finance department,
     copied to the mailbox the directory gives for agency $cc (a lookup at accept
     time; none when $cc is empty). Params: directory (the directory endpoint), cc. -->
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:lt="urn:lienthong:functions" exclude-result-prefixes="lt">
  <xsl:output method="xml" encoding="UTF-8"/>
  <xsl:param name="directory" select="'directory'"/>
  <xsl:param name="cc" select="'000.00.02.H53'"/>

  <xsl:template match="/application">
    <mail xmlns="urn:lienthong:mail">
      <to_agency>000.00.01.H53</to_agency>
      <xsl:if test="$cc != ''">
        <to><xsl:value-of select="lt:agency-mailbox($cc, $directory)"/></to>
      </xsl:if>
      <subject>Hồ sơ <xsl:value-of select="@id"/></subject>
      <text>Tiếp nhận hồ sơ <xsl:value-of select="@id"/>: <xsl:value-of select="normalize-space(procedure)"/></text>
    </mail>
  </xsl:template>
</xsl:stylesheet>
