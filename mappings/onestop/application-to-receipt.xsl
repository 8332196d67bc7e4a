<?xml version="1.0" encoding="UTF-8"?>
<!-- One-stop-shop application (hồ sơ một cửa) → receipt (giấy tiếp nhận) for the
     document-management system. Param: issuer, the organisation code issuing it. -->
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:output method="xml" encoding="UTF-8" indent="yes"/>
  <xsl:param name="issuer" select="''"/>

  <xsl:template match="/application">
    <receipt>
      <issuer><xsl:value-of select="$issuer"/></issuer>
      <caseNumber><xsl:value-of select="@id"/></caseNumber>
      <procedure><xsl:value-of select="procedure/@code"/></procedure>
      <procedureName><xsl:value-of select="normalize-space(procedure)"/></procedureName>
      <applicant><xsl:value-of select="normalize-space(applicant/name)"/></applicant>
      <receivedOn><xsl:value-of select="translate(submitted, '-', '/')"/></receivedOn>
      <documents count="{count(documents/document)}">
        <xsl:for-each select="documents/document">
          <document><xsl:value-of select="normalize-space(.)"/></document>
        </xsl:for-each>
      </documents>
    </receipt>
  </xsl:template>
</xsl:stylesheet>
