<?xml version="1.0" encoding="UTF-8"?>
<!-- The asked agency's answer to an opinion request (an edXML status, 06 "done",
     from the axis) → a processing step posted to the one-stop-shop system, which
     moves the dossier on (JSON, as fn:xml-to-json will write it).
     The dossier is found from the letter answered (onestop/dossier-to-edxml-opinion.xsl
     numbers it after the dossier): the letter 2612020002/LYK-SGD of 000.00.16.H15
     answers for the dossier 000.00.16.H15-261202-0002.
     Param: step_status, the local status the dossier moves on to (default processing). -->
<xsl:stylesheet version="1.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns="http://www.w3.org/2005/xpath-functions"
    xmlns:edXML="http://www.mic.gov.vn/TBT/QCVN_102_2016"
    exclude-result-prefixes="edXML">
  <xsl:output method="xml" encoding="UTF-8"/>
  <xsl:param name="step_status" select="'processing'"/>

  <xsl:variable name="h" select="/edXML:edXML/edXML:edXMLEnvelope/edXML:edXMLHeader/edXML:MessageHeader"/>
  <xsl:variable name="asked" select="normalize-space($h/edXML:ResponseFor/edXML:OrganId)"/>
  <xsl:variable name="number" select="substring-before(normalize-space($h/edXML:ResponseFor/edXML:Code), '/')"/>

  <xsl:template match="/">
    <xsl:if test="$asked = '' or string-length($number) != 10 or translate($number, '0123456789', '') != ''">
      <xsl:message terminate="yes">opinion answer: it answers '<xsl:value-of select="$h/edXML:ResponseFor/edXML:Code"/>' of '<xsl:value-of select="$asked"/>', not a letter numbered YYMMDDXXXX/... after a dossier. Hint: route only the answers to opinion requests here (when: on ResponseFor/Code)</xsl:message>
    </xsl:if>
    <map>
      <string key="dossierNo"><xsl:value-of select="concat($asked, '-', substring($number, 1, 6), '-', substring($number, 7, 4))"/></string>
      <string key="actionUser">
        <xsl:value-of select="normalize-space($h/edXML:StaffInfo/edXML:Staff)"/>
        <xsl:text>, </xsl:text>
        <xsl:value-of select="normalize-space($h/edXML:From/edXML:OrganName)"/>
      </string>
      <string key="actionTitle">Cơ quan phối hợp</string>
      <string key="department"><xsl:value-of select="normalize-space($h/edXML:From/edXML:OrganName)"/></string>
      <string key="actionNote">
        <xsl:text>Nhận ý kiến của </xsl:text>
        <xsl:value-of select="normalize-space($h/edXML:From/edXML:OrganName)"/>
        <xsl:text> (</xsl:text><xsl:value-of select="normalize-space($h/edXML:From/edXML:OrganId)"/>
        <xsl:text>, trạng thái </xsl:text><xsl:value-of select="normalize-space($h/edXML:StatusCode)"/>
        <xsl:text>): </xsl:text>
        <xsl:value-of select="normalize-space($h/edXML:Description)"/>
      </string>
      <string key="stepStatus"><xsl:value-of select="$step_status"/></string>
    </map>
  </xsl:template>
</xsl:stylesheet>
