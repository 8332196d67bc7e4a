<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:template match="/"><out><xsl:copy-of select="document('file:///etc/hostname')"/></out></xsl:template>
</xsl:stylesheet>
