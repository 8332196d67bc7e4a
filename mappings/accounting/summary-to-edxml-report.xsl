<?xml version="1.0" encoding="UTF-8"?>
<!-- A voucher summary -> the MessageHeader fields of an edXML report document
     (QCVN 102:2016), for the axis adapter to wrap and send. Amounts are shown
     Vietnamese style (1.250.000 đồng). Params: organ_id, organ_name, code_number,
     code_notation, place, promulgation_date (yyyy/MM/dd), signer. -->
<xsl:stylesheet version="1.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:s="urn:lienthong:accounting:summary:v1"
    xmlns:edXML="http://www.mic.gov.vn/TBT/QCVN_102_2016"
    exclude-result-prefixes="s">
  <xsl:output method="xml" encoding="UTF-8" indent="yes"/>
  <xsl:decimal-format name="vnd" decimal-separator="," grouping-separator="."/>
  <xsl:param name="organ_id" select="''"/>
  <xsl:param name="organ_name" select="''"/>
  <xsl:param name="code_number" select="''"/>
  <xsl:param name="code_notation" select="'BC-STC'"/>
  <xsl:param name="place" select="''"/>
  <xsl:param name="promulgation_date" select="''"/>
  <xsl:param name="signer" select="''"/>

  <xsl:template match="/s:voucherSummary">
    <edXML:MessageHeader>
      <edXML:From>
        <edXML:OrganId><xsl:value-of select="$organ_id"/></edXML:OrganId>
        <edXML:OrganName><xsl:value-of select="$organ_name"/></edXML:OrganName>
      </edXML:From>
      <edXML:Code>
        <edXML:CodeNumber><xsl:value-of select="$code_number"/></edXML:CodeNumber>
        <edXML:CodeNotation><xsl:value-of select="$code_notation"/></edXML:CodeNotation>
      </edXML:Code>
      <edXML:PromulgationInfo>
        <edXML:Place><xsl:value-of select="$place"/></edXML:Place>
        <edXML:PromulgationDate><xsl:value-of select="$promulgation_date"/></edXML:PromulgationDate>
      </edXML:PromulgationInfo>
      <edXML:DocumentType>
        <edXML:Type>1</edXML:Type>
        <edXML:TypeDetail>11</edXML:TypeDetail>
        <edXML:TypeName>Báo cáo</edXML:TypeName>
      </edXML:DocumentType>
      <edXML:Subject>
        <xsl:text>Báo cáo tổng hợp thu, chi</xsl:text>
        <xsl:if test="normalize-space(@period)"> kỳ <xsl:value-of select="@period"/></xsl:if>
      </edXML:Subject>
      <edXML:Content>
        <xsl:for-each select="s:agency">
          <xsl:value-of select="@code"/>
          <xsl:text>: </xsl:text>
          <xsl:apply-templates select="s:receipts | s:payments"/>
          <xsl:text>; </xsl:text>
        </xsl:for-each>
        <xsl:text>Tổng: </xsl:text>
        <xsl:apply-templates select="s:total/s:receipts | s:total/s:payments"/>
        <xsl:text>.</xsl:text>
      </edXML:Content>
      <edXML:SignerInfo>
        <edXML:FullName><xsl:value-of select="$signer"/></edXML:FullName>
      </edXML:SignerInfo>
    </edXML:MessageHeader>
  </xsl:template>

  <xsl:template match="s:receipts">
    <xsl:text>thu </xsl:text>
    <xsl:call-template name="dong"/>
  </xsl:template>

  <xsl:template match="s:payments">
    <xsl:text>, chi </xsl:text>
    <xsl:call-template name="dong"/>
  </xsl:template>

  <xsl:template name="dong">
    <xsl:value-of select="format-number(., '#.##0', 'vnd')"/>
    <xsl:text> đồng (</xsl:text>
    <xsl:value-of select="@count"/>
    <xsl:text> chứng từ)</xsl:text>
  </xsl:template>
</xsl:stylesheet>
