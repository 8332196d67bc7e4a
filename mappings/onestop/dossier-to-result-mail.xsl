<?xml version="1.0" encoding="UTF-8"?>
<!-- A one-stop-shop dossier whose result is ready (JSON from the provincial system,
     as fn:json-to-xml gives it) → a mail envelope ({urn:lienthong:mail}mail) telling
     the citizen, at the address the dossier gives, that the result can be collected.
     A dossier without a contact address is refused (dead letter), naming it.
     Param: office, who writes (default: the one-stop desk of the dossier's agency). -->
<xsl:stylesheet version="1.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:j="http://www.w3.org/2005/xpath-functions"
    xmlns:lt="urn:lienthong:functions"
    xmlns="urn:lienthong:mail"
    exclude-result-prefixes="j lt">
  <xsl:output method="xml" encoding="UTF-8" indent="yes"/>
  <xsl:param name="office" select="''"/>

  <xsl:variable name="d" select="/j:map"/>
  <xsl:variable name="number" select="normalize-space($d/j:string[@key='dossierNo'])"/>
  <xsl:variable name="agency" select="normalize-space($d/j:string[@key='govAgencyName'])"/>
  <!-- The finish date when the system gives one, else the time the dossier last changed. -->
  <xsl:variable name="finished">
    <xsl:choose>
      <xsl:when test="normalize-space($d/j:string[@key='finishDate']) != ''">
        <xsl:value-of select="$d/j:string[@key='finishDate']"/>
      </xsl:when>
      <xsl:otherwise><xsl:value-of select="$d/j:string[@key='updatedAt']"/></xsl:otherwise>
    </xsl:choose>
  </xsl:variable>

  <xsl:template match="/">
    <xsl:if test="normalize-space($d/j:string[@key='contactEmail']) = ''">
      <xsl:message terminate="yes">result mail: dossier '<xsl:value-of select="$number"/>' has no contactEmail. Hint: the citizen is told at the desk; drop this message (lienthong dlq)</xsl:message>
    </xsl:if>
    <mail>
      <to><xsl:value-of select="normalize-space($d/j:string[@key='contactEmail'])"/></to>
      <subject>Kết quả giải quyết hồ sơ <xsl:value-of select="$number"/></subject>
      <text>
        <xsl:text>Kính gửi Ông/Bà </xsl:text><xsl:value-of select="normalize-space($d/j:string[@key='applicantName'])"/>
        <xsl:text>,&#10;&#10;Hồ sơ của Ông/Bà đã được giải quyết xong.&#10;&#10;</xsl:text>
        <xsl:text>Mã hồ sơ: </xsl:text><xsl:value-of select="$number"/><xsl:text>&#10;</xsl:text>
        <xsl:text>Thủ tục: </xsl:text><xsl:value-of select="normalize-space($d/j:string[@key='serviceName'])"/><xsl:text>&#10;</xsl:text>
        <xsl:text>Cơ quan giải quyết: </xsl:text><xsl:value-of select="$agency"/><xsl:text>&#10;</xsl:text>
        <xsl:text>Ngày tiếp nhận: </xsl:text>
        <xsl:value-of select="lt:format_datetime(string($d/j:string[@key='receiveDate']), 'dd/MM/yyyy', 'Asia/Ho_Chi_Minh')"/><xsl:text>&#10;</xsl:text>
        <xsl:text>Ngày có kết quả: </xsl:text>
        <xsl:value-of select="lt:format_datetime($finished, 'dd/MM/yyyy', 'Asia/Ho_Chi_Minh')"/><xsl:text>&#10;&#10;</xsl:text>
        <xsl:text>Mời Ông/Bà nhận kết quả tại Bộ phận tiếp nhận và trả kết quả hoặc tra cứu trên Cổng Dịch vụ công quốc gia theo mã hồ sơ.&#10;&#10;</xsl:text>
        <xsl:choose>
          <xsl:when test="$office != ''"><xsl:value-of select="$office"/></xsl:when>
          <xsl:otherwise>Bộ phận một cửa - <xsl:value-of select="$agency"/></xsl:otherwise>
        </xsl:choose>
        <xsl:text>&#10;</xsl:text>
      </text>
    </mail>
  </xsl:template>
</xsl:stylesheet>
