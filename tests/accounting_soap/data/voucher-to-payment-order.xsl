<?xml version="1.0" encoding="UTF-8"?>
<!-- TEST ONLY: an accounting payment voucher -> the treasury desk's SubmitPaymentOrder. -->
<xsl:stylesheet version="1.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:acc="urn:lienthong:sandbox:accounting:v1"
    xmlns:tr="urn:lienthong:test:treasury:v2"
    exclude-result-prefixes="acc">
  <xsl:template match="/acc:voucher">
    <tr:SubmitPaymentOrder>
      <tr:order>
        <tr:payer><xsl:value-of select="acc:agencyCode"/></tr:payer>
        <tr:beneficiaryAccount><xsl:value-of select="acc:debitAccount"/></tr:beneficiaryAccount>
        <tr:amountDong><xsl:value-of select="acc:amount"/></tr:amountDong>
        <tr:purpose><xsl:value-of select="concat(acc:number, ': ', acc:description)"/></tr:purpose>
      </tr:order>
    </tr:SubmitPaymentOrder>
  </xsl:template>
</xsl:stylesheet>
