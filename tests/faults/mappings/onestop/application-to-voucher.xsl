<?xml version="1.0" encoding="UTF-8"?>
<!-- One-stop-shop application (hồ sơ một cửa) → PostVoucher: the fee collected at the
     counter, as a receipt voucher for the SANDBOX accounting service. Param: agency. -->
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:acc="urn:lienthong:sandbox:accounting:v1">
  <xsl:output method="xml" encoding="UTF-8"/>
  <xsl:param name="agency" select="'000.00.15.H41'"/>

  <xsl:template match="/application">
    <acc:PostVoucher>
      <acc:voucher>
        <acc:kind>receipt</acc:kind>
        <acc:date><xsl:value-of select="submitted"/></acc:date>
        <acc:agencyCode><xsl:value-of select="$agency"/></acc:agencyCode>
        <acc:debitAccount>1111</acc:debitAccount>
        <acc:creditAccount>5111</acc:creditAccount>
        <acc:amount>50000</acc:amount>
        <acc:description>Lệ phí hồ sơ <xsl:value-of select="@id"/></acc:description>
      </acc:voucher>
    </acc:PostVoucher>
  </xsl:template>
</xsl:stylesheet>
