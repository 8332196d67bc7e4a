<?xml version="1.0" encoding="UTF-8"?>
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:include href="_rows.xsl"/>
  <xsl:template match="/list">
    <report count="{count(item)}">
      <xsl:apply-templates select="item" mode="row"/>
    </report>
  </xsl:template>
</xsl:stylesheet>
