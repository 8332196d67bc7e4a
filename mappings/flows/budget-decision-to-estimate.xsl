<?xml version="1.0" encoding="UTF-8"?>
<!-- An edXML budget allocation decision (Quyết định giao dự toán) -> the
     PostBudgetEstimate request for one agency, through
     accounting/budget-decision-to-post-estimate.xsl.
     The decision's Content lists each allocation as "<agency code>: <amount> đồng"
     (Vietnamese style, 1.250.000.000); the fiscal year is the one its Subject names
     ("năm 2026"), else the promulgation year. An agency's budget chapter and item
     are its own, so they come from the route.
     Params: agency (its code), chapter, item. -->
<xsl:stylesheet version="1.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:edXML="http://www.mic.gov.vn/TBT/QCVN_102_2016"
    xmlns:d="urn:lienthong:budget:decision:v1"
    xmlns:exsl="http://exslt.org/common"
    exclude-result-prefixes="edXML d exsl">
  <xsl:import href="../accounting/budget-decision-to-post-estimate.xsl"/>
  <xsl:output method="xml" encoding="UTF-8" indent="yes"/>
  <xsl:param name="chapter" select="''"/>
  <xsl:param name="item" select="''"/>

  <xsl:template match="/edXML:edXML">
    <xsl:variable name="h" select="edXML:edXMLEnvelope/edXML:edXMLHeader/edXML:MessageHeader"/>
    <xsl:variable name="content" select="normalize-space($h/edXML:Content)"/>
    <xsl:variable name="amount" select="normalize-space(substring-before(substring-after($content, concat($agency, ':')), 'đồng'))"/>
    <xsl:variable name="after-year" select="substring-after(normalize-space($h/edXML:Subject), 'năm ')"/>
    <xsl:variable name="year">
      <xsl:choose>
        <xsl:when test="string-length($after-year) &gt;= 4 and translate(substring($after-year, 1, 4), '0123456789', '') = ''">
          <xsl:value-of select="substring($after-year, 1, 4)"/>
        </xsl:when>
        <xsl:otherwise><xsl:value-of select="substring(normalize-space($h/edXML:PromulgationInfo/edXML:PromulgationDate), 1, 4)"/></xsl:otherwise>
      </xsl:choose>
    </xsl:variable>
    <xsl:if test="$agency = '' or $amount = ''">
      <xsl:message terminate="yes">budget decision <xsl:value-of select="$h/edXML:DocumentId"/> allocates nothing to agency '<xsl:value-of select="$agency"/>': its Content has no "<xsl:value-of select="$agency"/>: AMOUNT đồng"</xsl:message>
    </xsl:if>
    <xsl:variable name="decision">
      <d:budgetDecision>
        <d:number><xsl:value-of select="concat(normalize-space($h/edXML:Code/edXML:CodeNumber), '/', normalize-space($h/edXML:Code/edXML:CodeNotation))"/></d:number>
        <d:fiscalYear><xsl:value-of select="$year"/></d:fiscalYear>
        <d:allocation agency="{$agency}">
          <d:chapter><xsl:value-of select="$chapter"/></d:chapter>
          <d:item><xsl:value-of select="$item"/></d:item>
          <d:amount unit="dong"><xsl:value-of select="$amount"/></d:amount>
        </d:allocation>
      </d:budgetDecision>
    </xsl:variable>
    <xsl:apply-templates select="exsl:node-set($decision)/d:budgetDecision"/>
  </xsl:template>
</xsl:stylesheet>
