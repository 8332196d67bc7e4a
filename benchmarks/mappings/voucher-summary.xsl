<?xml version="1.0" encoding="UTF-8"?>
<!-- Benchmark mapping: a ~5 KB voucher batch → a per-account summary. -->
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:key name="by-account" match="voucher" use="debit"/>
  <xsl:template match="/batch">
    <summary agency="{@agency}" vouchers="{count(voucher)}" total="{sum(voucher/amount)}">
      <xsl:for-each select="voucher[generate-id() = generate-id(key('by-account', debit)[1])]">
        <account code="{debit}" total="{sum(key('by-account', debit)/amount)}"/>
      </xsl:for-each>
    </summary>
  </xsl:template>
</xsl:stylesheet>
