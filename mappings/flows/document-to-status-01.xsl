<?xml version="1.0" encoding="UTF-8"?>
<!-- An edXML document that arrived from the axis -> the status 01 ("arrived") the
     receiving agency sends back to the sender (QCVN 102:2016 status message).
     Params: organ_id, organ_name (the receiving agency: the axis endpoint's organ_id),
     staff (who or what received it), timestamp (yyyy/MM/dd HH:mm:ss; empty: now in Vietnam, as edXML times are written:
     UTC+7 all year, whatever the machine's own zone). -->
<xsl:stylesheet version="1.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:edXML="http://www.mic.gov.vn/TBT/QCVN_102_2016"
    xmlns:date="http://exslt.org/dates-and-times"
    exclude-result-prefixes="date">
  <xsl:output method="xml" encoding="UTF-8" indent="yes"/>
  <xsl:param name="organ_id" select="''"/>
  <xsl:param name="organ_name" select="''"/>
  <xsl:param name="staff" select="'lienthong'"/>
  <xsl:param name="timestamp" select="''"/>

  <xsl:variable name="h" select="/edXML:edXML/edXML:edXMLEnvelope/edXML:edXMLHeader/edXML:MessageHeader"/>

  <xsl:template match="/">
    <xsl:if test="not($h/edXML:DocumentId) or $organ_id = ''">
      <xsl:message terminate="yes">status 01: the document has no DocumentId, or the route gives no organ_id param</xsl:message>
    </xsl:if>
    <xsl:variable name="now" select="date:add('1970-01-01T07:00:00', concat('PT', date:seconds(date:date-time()), 'S'))"/>
    <edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016">
      <edXML:edXMLEnvelope>
        <edXML:edXMLHeader>
          <edXML:MessageHeader>
            <edXML:From>
              <edXML:OrganId><xsl:value-of select="$organ_id"/></edXML:OrganId>
              <edXML:OrganName><xsl:value-of select="$organ_name"/></edXML:OrganName>
            </edXML:From>
            <edXML:ResponseFor>
              <edXML:OrganId><xsl:value-of select="normalize-space($h/edXML:From/edXML:OrganId)"/></edXML:OrganId>
              <edXML:Code><xsl:value-of select="concat(normalize-space($h/edXML:Code/edXML:CodeNumber), '/', normalize-space($h/edXML:Code/edXML:CodeNotation))"/></edXML:Code>
              <edXML:PromulgationDate><xsl:value-of select="normalize-space($h/edXML:PromulgationInfo/edXML:PromulgationDate)"/></edXML:PromulgationDate>
              <edXML:DocumentId><xsl:value-of select="normalize-space($h/edXML:DocumentId)"/></edXML:DocumentId>
            </edXML:ResponseFor>
            <edXML:StaffInfo>
              <edXML:Staff><xsl:value-of select="$staff"/></edXML:Staff>
            </edXML:StaffInfo>
            <edXML:StatusCode>01</edXML:StatusCode>
            <edXML:Description>Đã đến - hệ thống của <xsl:value-of select="$organ_name"/> đã nhận văn bản</edXML:Description>
            <edXML:Timestamp>
              <xsl:choose>
                <xsl:when test="$timestamp != ''"><xsl:value-of select="$timestamp"/></xsl:when>
                <xsl:otherwise><xsl:value-of select="concat(translate(substring($now, 1, 10), '-', '/'), ' ', substring($now, 12, 8))"/></xsl:otherwise>
              </xsl:choose>
            </edXML:Timestamp>
          </edXML:MessageHeader>
        </edXML:edXMLHeader>
      </edXML:edXMLEnvelope>
    </edXML>
  </xsl:template>
</xsl:stylesheet>
