<?xml version="1.0" encoding="UTF-8"?>
<!-- An edXML document that arrived from the axis -> a mail envelope
     ({urn:lienthong:mail}mail) notifying the receiving agency at its mailbox in
     the directory (to_agency: the email_directory endpoint looks the code up).
     Each attachment travels as it came: a file carried raw (PDF, Word) under its
     own name and type, a ZIP (labelled application/zip, the vendor library's
     rule for other files) as NAME.zip.
     Param: organ_id, the receiving agency's code (the axis endpoint's organ_id). -->
<xsl:stylesheet version="1.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:edXML="http://www.mic.gov.vn/TBT/QCVN_102_2016"
    xmlns="urn:lienthong:mail"
    exclude-result-prefixes="edXML">
  <xsl:output method="xml" encoding="UTF-8" indent="yes"/>
  <xsl:param name="organ_id" select="''"/>

  <xsl:variable name="h" select="/edXML:edXML/edXML:edXMLEnvelope/edXML:edXMLHeader/edXML:MessageHeader"/>

  <xsl:template match="/">
    <xsl:variable name="code" select="concat(normalize-space($h/edXML:Code/edXML:CodeNumber), '/', normalize-space($h/edXML:Code/edXML:CodeNotation))"/>
    <mail>
      <to_agency><xsl:value-of select="$organ_id"/></to_agency>
      <subject>Văn bản đến <xsl:value-of select="$code"/>: <xsl:value-of select="normalize-space($h/edXML:Subject)"/></subject>
      <text>
        <xsl:text>Văn bản điện tử đến qua Trục liên thông văn bản quốc gia.&#10;&#10;</xsl:text>
        <xsl:text>Số, ký hiệu: </xsl:text><xsl:value-of select="$code"/><xsl:text>&#10;</xsl:text>
        <xsl:text>Loại văn bản: </xsl:text><xsl:value-of select="normalize-space($h/edXML:DocumentType/edXML:TypeName)"/><xsl:text>&#10;</xsl:text>
        <xsl:text>Ngày ban hành: </xsl:text><xsl:value-of select="normalize-space($h/edXML:PromulgationInfo/edXML:PromulgationDate)"/><xsl:text>&#10;</xsl:text>
        <xsl:text>Nơi gửi: </xsl:text><xsl:value-of select="normalize-space($h/edXML:From/edXML:OrganName)"/>
        <xsl:text> (</xsl:text><xsl:value-of select="normalize-space($h/edXML:From/edXML:OrganId)"/><xsl:text>)&#10;</xsl:text>
        <xsl:text>Trích yếu: </xsl:text><xsl:value-of select="normalize-space($h/edXML:Subject)"/><xsl:text>&#10;</xsl:text>
        <xsl:text>Người ký: </xsl:text><xsl:value-of select="normalize-space($h/edXML:SignerInfo/edXML:FullName)"/><xsl:text>&#10;</xsl:text>
        <xsl:text>Mã định danh văn bản: </xsl:text><xsl:value-of select="normalize-space($h/edXML:DocumentId)"/><xsl:text>&#10;</xsl:text>
      </text>
      <xsl:for-each select="/edXML:edXML/edXML:AttachmentEncoded/edXML:Attachment">
        <xsl:variable name="type" select="normalize-space(edXML:ContentType)"/>
        <xsl:variable name="zipped" select="translate($type, 'ZIPAL', 'zipal') = 'application/zip'"/>
        <attachment>
          <xsl:attribute name="name">
            <xsl:value-of select="normalize-space(edXML:AttachmentName)"/>
            <xsl:if test="$zipped">.zip</xsl:if>
          </xsl:attribute>
          <xsl:attribute name="type">
            <xsl:choose>
              <xsl:when test="$zipped">application/zip</xsl:when>
              <xsl:when test="$type != ''"><xsl:value-of select="$type"/></xsl:when>
              <xsl:otherwise>application/octet-stream</xsl:otherwise>
            </xsl:choose>
          </xsl:attribute>
          <xsl:value-of select="normalize-space(edXML:ContentTransferEncoded)"/>
        </attachment>
      </xsl:for-each>
    </mail>
  </xsl:template>
</xsl:stylesheet>
