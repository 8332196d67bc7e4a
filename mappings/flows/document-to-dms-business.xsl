<?xml version="1.0" encoding="UTF-8"?>
<!-- An edXML document that arrived from the axis -> what a document system (DMS) must do
     with it, for a DMS that reads a small instruction rather than edXML: register a new
     document, or mark an earlier one revoked, updated or replaced.
     Params: business (new, revoke, update or replace) and concerns (the DocumentIds of the
     earlier documents, joined by " | "): a route may pass them; by default they are read
     from the document's Bussiness, as the axis adapter's edxml_business and edxml_concerns
     headers say them. The edXML itself (with its attachments) goes to the DMS beside this. -->
<xsl:stylesheet version="1.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:edXML="http://www.mic.gov.vn/TBT/QCVN_102_2016"
    exclude-result-prefixes="edXML">
  <xsl:output method="xml" encoding="UTF-8" indent="yes"/>

  <xsl:variable name="h" select="/edXML:edXML/edXML:edXMLEnvelope/edXML:edXMLHeader/edXML:MessageHeader"/>
  <xsl:variable name="b" select="/edXML:edXML/edXML:edXMLEnvelope/edXML:edXMLHeader/edXML:TraceHeaderList/edXML:Bussiness"/>
  <xsl:variable name="code" select="normalize-space($b/edXML:BussinessDocType)"/>

  <xsl:param name="business">
    <xsl:choose>
      <xsl:when test="$code = '1'">revoke</xsl:when>
      <xsl:when test="$code = '2'">update</xsl:when>
      <xsl:when test="$code = '3'">replace</xsl:when>
      <xsl:otherwise>new</xsl:otherwise>
    </xsl:choose>
  </xsl:param>
  <xsl:param name="concerns">
    <xsl:if test="$code = '1' or $code = '2' or $code = '3'">
      <xsl:for-each select="$b/edXML:DocumentId | $b/edXML:ReplacementInfoList/edXML:ReplacementInfo/edXML:DocumentId">
        <xsl:if test="normalize-space(.) != '' and not(preceding::edXML:DocumentId[ancestor::edXML:Bussiness][normalize-space(.) = normalize-space(current())])">
          <xsl:value-of select="concat(' | ', normalize-space(.))"/>
        </xsl:if>
      </xsl:for-each>
    </xsl:if>
  </xsl:param>

  <xsl:template match="/">
    <xsl:if test="not($h/edXML:DocumentId)">
      <xsl:message terminate="yes">DMS instruction: the document has no DocumentId</xsl:message>
    </xsl:if>
    <xsl:if test="$business != 'new' and normalize-space($concerns) = ''">
      <xsl:message terminate="yes">DMS instruction: a <xsl:value-of select="$business"/> names no earlier document (Bussiness/DocumentId)</xsl:message>
    </xsl:if>
    <document xmlns="urn:lienthong:dms" action="{$business}">
      <id><xsl:value-of select="normalize-space($h/edXML:DocumentId)"/></id>
      <from><xsl:value-of select="normalize-space($h/edXML:From/edXML:OrganId)"/></from>
      <code><xsl:value-of select="concat(normalize-space($h/edXML:Code/edXML:CodeNumber), '/', normalize-space($h/edXML:Code/edXML:CodeNotation))"/></code>
      <subject><xsl:value-of select="normalize-space($h/edXML:Subject)"/></subject>
      <xsl:if test="$business != 'new'">
        <xsl:call-template name="concerns">
          <xsl:with-param name="rest" select="$concerns"/>
        </xsl:call-template>
        <reason><xsl:value-of select="normalize-space($b/edXML:BussinessDocReason)"/></reason>
      </xsl:if>
    </document>
  </xsl:template>

  <!-- One <concerns> per DocumentId in the " | "-joined list. -->
  <xsl:template name="concerns">
    <xsl:param name="rest"/>
    <xsl:variable name="first" select="normalize-space(substring-before(concat($rest, ' | '), ' | '))"/>
    <xsl:if test="$first != ''">
      <concerns xmlns="urn:lienthong:dms"><xsl:value-of select="$first"/></concerns>
    </xsl:if>
    <xsl:if test="contains($rest, ' | ')">
      <xsl:call-template name="concerns">
        <xsl:with-param name="rest" select="substring-after($rest, ' | ')"/>
      </xsl:call-template>
    </xsl:if>
  </xsl:template>
</xsl:stylesheet>
