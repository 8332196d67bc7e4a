<?xml version="1.0" encoding="UTF-8"?>
<!-- An incoming budget decision (quyết định giao dự toán) -> the PostBudgetEstimate
     request of the accounting service, for one agency's allocation.
     Amounts are written Vietnamese style (1.250.000 or 2,5); unit="million" or
     "thousand" amounts become whole dong.
     Param: agency, the agency code to take (default: the first allocation).
     The external reference is left empty: the adapter fills it with the delivery key. -->
<xsl:stylesheet version="1.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:d="urn:lienthong:budget:decision:v1"
    xmlns:acc="urn:lienthong:sandbox:accounting:v1"
    exclude-result-prefixes="d">
  <xsl:output method="xml" encoding="UTF-8" indent="yes"/>
  <xsl:param name="agency" select="''"/>

  <xsl:template match="/d:budgetDecision">
    <xsl:variable name="chosen" select="d:allocation[normalize-space(@agency) = $agency or $agency = ''][1]"/>
    <xsl:if test="not($chosen)">
      <xsl:message terminate="yes">budget decision <xsl:value-of select="d:number"/> has no allocation for agency '<xsl:value-of select="$agency"/>'</xsl:message>
    </xsl:if>
    <xsl:variable name="factor">
      <xsl:choose>
        <xsl:when test="$chosen/d:amount/@unit = 'million'">1000000</xsl:when>
        <xsl:when test="$chosen/d:amount/@unit = 'thousand'">1000</xsl:when>
        <xsl:otherwise>1</xsl:otherwise>
      </xsl:choose>
    </xsl:variable>
    <acc:PostBudgetEstimate>
      <acc:estimate>
        <acc:agencyCode><xsl:value-of select="normalize-space($chosen/@agency)"/></acc:agencyCode>
        <acc:fiscalYear><xsl:value-of select="normalize-space(d:fiscalYear)"/></acc:fiscalYear>
        <acc:chapter><xsl:value-of select="normalize-space($chosen/d:chapter)"/></acc:chapter>
        <acc:item><xsl:value-of select="normalize-space($chosen/d:item)"/></acc:item>
        <acc:amount><xsl:value-of select="format-number(round(number(translate($chosen/d:amount, ',. ', '.')) * $factor), '0')"/></acc:amount>
        <acc:decisionNumber><xsl:value-of select="normalize-space(d:number)"/></acc:decisionNumber>
      </acc:estimate>
    </acc:PostBudgetEstimate>
  </xsl:template>
</xsl:stylesheet>
