<?xml version="1.0" encoding="UTF-8"?>
<!-- A fragment: included by report.xsl, not a mapping on its own. -->
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:template match="item" mode="row">
    <row n="{position()}"><xsl:value-of select="name"/></row>
  </xsl:template>
</xsl:stylesheet>
