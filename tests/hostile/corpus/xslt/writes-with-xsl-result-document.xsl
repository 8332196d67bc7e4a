<xsl:stylesheet version="2.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:template match="/"><xsl:result-document href="pwned.xml"><pwned/></xsl:result-document><out/></xsl:template>
</xsl:stylesheet>
