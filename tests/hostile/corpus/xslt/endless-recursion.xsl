<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:template match="/"><out><xsl:call-template name="again"/></out></xsl:template>
  <xsl:template name="again"><x><xsl:call-template name="again"/></x></xsl:template>
</xsl:stylesheet>
