<?xml version="1.0" encoding="UTF-8"?>
<!-- A page of vouchers from an agency's accounting package (the acc:vouchers of one
     ListVoucherChanges answer) -> an edXML report document to the finance
     department: accounting/voucher-list-to-summary.xsl totals them,
     accounting/summary-to-edxml-report.xsl writes the header, and this adds the
     envelope, the recipient and the DocumentId.
     The report is numbered and dated by its newest voucher change, so the same
     page always makes the same document.
     Params: organ_id, organ_name (the reporting agency), to_id, to_name (the
     finance department), code_notation, place, signer, period. -->
<xsl:stylesheet version="1.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:acc="urn:lienthong:sandbox:accounting:v1"
    xmlns:s="urn:lienthong:accounting:summary:v1"
    xmlns:edXML="http://www.mic.gov.vn/TBT/QCVN_102_2016"
    xmlns:exsl="http://exslt.org/common"
    exclude-result-prefixes="acc s exsl">
  <xsl:import href="../accounting/voucher-list-to-summary.xsl"/>
  <xsl:import href="../accounting/summary-to-edxml-report.xsl"/>
  <xsl:output method="xml" encoding="UTF-8" indent="yes"/>
  <xsl:param name="to_id" select="''"/>
  <xsl:param name="to_name" select="''"/>

  <xsl:variable name="newest">
    <xsl:for-each select="//acc:voucher/acc:changedAt">
      <xsl:sort select="." order="descending"/>
      <xsl:if test="position() = 1"><xsl:value-of select="normalize-space(.)"/></xsl:if>
    </xsl:for-each>
  </xsl:variable>
  <!-- These override the imported stylesheet's params of the same name. -->
  <xsl:variable name="promulgation_date" select="translate(substring($newest, 1, 10), '-', '/')"/>
  <xsl:variable name="code_number" select="translate(substring($newest, 12, 15), ':.', '')"/>

  <xsl:template match="/">
    <xsl:if test="not(//acc:voucher) or $newest = '' or $organ_id = '' or $to_id = ''">
      <xsl:message terminate="yes">report: no vouchers with a change time, or the route gives no organ_id/to_id param</xsl:message>
    </xsl:if>
    <xsl:variable name="summary"><xsl:apply-imports/></xsl:variable>
    <xsl:variable name="header">
      <xsl:apply-templates select="exsl:node-set($summary)/s:voucherSummary"/>
    </xsl:variable>
    <edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016">
      <edXML:edXMLEnvelope>
        <edXML:edXMLHeader>
          <edXML:MessageHeader>
            <xsl:copy-of select="exsl:node-set($header)/edXML:MessageHeader/edXML:From"/>
            <edXML:To>
              <edXML:OrganId><xsl:value-of select="$to_id"/></edXML:OrganId>
              <edXML:OrganName><xsl:value-of select="$to_name"/></edXML:OrganName>
            </edXML:To>
            <edXML:DocumentId><xsl:value-of select="concat($organ_id, ',', $promulgation_date, ',', $code_number, '/', $code_notation)"/></edXML:DocumentId>
            <xsl:copy-of select="exsl:node-set($header)/edXML:MessageHeader/*[not(self::edXML:From)]"/>
          </edXML:MessageHeader>
        </edXML:edXMLHeader>
      </edXML:edXMLEnvelope>
    </edXML>
  </xsl:template>
</xsl:stylesheet>
