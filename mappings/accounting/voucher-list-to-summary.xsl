<?xml version="1.0" encoding="UTF-8"?>
<!-- Vouchers (a ListVoucherChanges answer, or any document holding acc:voucher
     elements) -> totals of receipts and payments per agency, in whole dong.
     Param: period, a label copied to the summary (e.g. "2026-01"). -->
<xsl:stylesheet version="1.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:acc="urn:lienthong:sandbox:accounting:v1"
    xmlns:s="urn:lienthong:accounting:summary:v1"
    exclude-result-prefixes="acc">
  <xsl:output method="xml" encoding="UTF-8" indent="yes"/>
  <xsl:param name="period" select="''"/>
  <xsl:key name="by-agency" match="acc:voucher" use="normalize-space(acc:agencyCode)"/>

  <xsl:template match="/">
    <xsl:variable name="all" select="//acc:voucher"/>
    <s:voucherSummary period="{$period}">
      <xsl:for-each select="$all[generate-id() = generate-id(key('by-agency', normalize-space(acc:agencyCode))[1])]">
        <xsl:sort select="normalize-space(acc:agencyCode)"/>
        <xsl:variable name="mine" select="key('by-agency', normalize-space(acc:agencyCode))"/>
        <s:agency code="{normalize-space(acc:agencyCode)}">
          <xsl:call-template name="totals">
            <xsl:with-param name="vouchers" select="$mine"/>
          </xsl:call-template>
        </s:agency>
      </xsl:for-each>
      <s:total>
        <xsl:call-template name="totals">
          <xsl:with-param name="vouchers" select="$all"/>
        </xsl:call-template>
      </s:total>
    </s:voucherSummary>
  </xsl:template>

  <xsl:template name="totals">
    <xsl:param name="vouchers"/>
    <xsl:variable name="in" select="sum($vouchers[acc:kind = 'receipt']/acc:amount)"/>
    <xsl:variable name="out" select="sum($vouchers[acc:kind = 'payment']/acc:amount)"/>
    <s:receipts count="{count($vouchers[acc:kind = 'receipt'])}"><xsl:value-of select="format-number($in, '0')"/></s:receipts>
    <s:payments count="{count($vouchers[acc:kind = 'payment'])}"><xsl:value-of select="format-number($out, '0')"/></s:payments>
    <s:net><xsl:value-of select="format-number($in - $out, '0')"/></s:net>
  </xsl:template>
</xsl:stylesheet>
