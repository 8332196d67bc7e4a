<?xml version="1.0" encoding="UTF-8"?>
<!-- A one-stop-shop dossier that needs another agency's opinion (JSON from the
     provincial system, as fn:json-to-xml gives it) → an edXML official letter
     (Công văn) asking that agency for it, sent through the axis.

     The letter is numbered after the dossier, so its answer finds the dossier again
     (onestop/opinion-to-step.xsl): the dossier 000.00.16.H15-261202-0002 of the agency
     organ_id becomes the letter 2612020002/<code_notation> of that agency. A dossier
     numbered for another agency is refused: route it through that agency's endpoint.
     The date is the dossier's change time in Vietnam's zone, so the same version of
     the dossier always makes the same letter.
     Params: organ_id, organ_name (the asking agency: the axis endpoint's organ_id),
     to_id, to_name (the agency asked), code_notation, place, signer. -->
<xsl:stylesheet version="1.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:j="http://www.w3.org/2005/xpath-functions"
    xmlns:lt="urn:lienthong:functions"
    xmlns:edXML="http://www.mic.gov.vn/TBT/QCVN_102_2016"
    exclude-result-prefixes="j lt">
  <xsl:output method="xml" encoding="UTF-8" indent="yes"/>
  <xsl:param name="organ_id" select="''"/>
  <xsl:param name="organ_name" select="''"/>
  <xsl:param name="to_id" select="''"/>
  <xsl:param name="to_name" select="''"/>
  <xsl:param name="code_notation" select="'LYK'"/>
  <xsl:param name="place" select="''"/>
  <xsl:param name="signer" select="''"/>

  <xsl:variable name="d" select="/j:map"/>
  <xsl:variable name="number" select="normalize-space($d/j:string[@key='dossierNo'])"/>
  <xsl:variable name="code_number" select="translate(substring-after($number, '-'), '-', '')"/>
  <xsl:variable name="date"
      select="lt:format_datetime(string($d/j:string[@key='updatedAt']), 'yyyy/MM/dd', 'Asia/Ho_Chi_Minh')"/>

  <xsl:template match="/">
    <xsl:if test="$organ_id = '' or $to_id = ''">
      <xsl:message terminate="yes">opinion request: the route gives no organ_id/to_id param</xsl:message>
    </xsl:if>
    <xsl:if test="substring-before($number, '-') != $organ_id or string-length($code_number) != 10
                  or translate($code_number, '0123456789', '') != ''">
      <xsl:message terminate="yes">opinion request: dossier '<xsl:value-of select="$number"/>' is not numbered <xsl:value-of select="$organ_id"/>-YYMMDD-XXXX. Hint: route the dossiers of each agency through that agency's axis endpoint (when: on govAgencyCode)</xsl:message>
    </xsl:if>
    <edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016">
      <edXML:edXMLEnvelope>
        <edXML:edXMLHeader>
          <edXML:MessageHeader>
            <edXML:From>
              <edXML:OrganId><xsl:value-of select="$organ_id"/></edXML:OrganId>
              <edXML:OrganName><xsl:value-of select="$organ_name"/></edXML:OrganName>
            </edXML:From>
            <edXML:To>
              <edXML:OrganId><xsl:value-of select="$to_id"/></edXML:OrganId>
              <edXML:OrganName><xsl:value-of select="$to_name"/></edXML:OrganName>
            </edXML:To>
            <edXML:DocumentId><xsl:value-of select="concat($organ_id, ',', $date, ',', $code_number, '/', $code_notation)"/></edXML:DocumentId>
            <edXML:Code>
              <edXML:CodeNumber><xsl:value-of select="$code_number"/></edXML:CodeNumber>
              <edXML:CodeNotation><xsl:value-of select="$code_notation"/></edXML:CodeNotation>
            </edXML:Code>
            <edXML:PromulgationInfo>
              <edXML:Place><xsl:value-of select="$place"/></edXML:Place>
              <edXML:PromulgationDate><xsl:value-of select="$date"/></edXML:PromulgationDate>
            </edXML:PromulgationInfo>
            <edXML:DocumentType>
              <edXML:Type>1</edXML:Type>
              <edXML:TypeDetail>0</edXML:TypeDetail>
              <edXML:TypeName>Công văn</edXML:TypeName>
            </edXML:DocumentType>
            <edXML:Subject>V/v lấy ý kiến về hồ sơ <xsl:value-of select="$number"/>: <xsl:value-of select="normalize-space($d/j:string[@key='serviceName'])"/></edXML:Subject>
            <edXML:Content>
              <xsl:text>Đề nghị </xsl:text><xsl:value-of select="$to_name"/>
              <xsl:text> cho ý kiến đối với hồ sơ </xsl:text><xsl:value-of select="$number"/>
              <xsl:text> (</xsl:text><xsl:value-of select="normalize-space($d/j:string[@key='serviceName'])"/>
              <xsl:text>) của </xsl:text><xsl:value-of select="normalize-space($d/j:string[@key='applicantName'])"/>
              <xsl:text>, tiếp nhận ngày </xsl:text>
              <xsl:value-of select="lt:format_datetime(string($d/j:string[@key='receiveDate']), 'dd/MM/yyyy', 'Asia/Ho_Chi_Minh')"/>
              <xsl:text>, hạn trả kết quả ngày </xsl:text>
              <xsl:value-of select="lt:format_datetime(string($d/j:string[@key='dueDate']), 'dd/MM/yyyy', 'Asia/Ho_Chi_Minh')"/>
              <xsl:text>. Nội dung hồ sơ: </xsl:text><xsl:value-of select="normalize-space($d/j:string[@key='dossierNote'])"/>
              <xsl:text>.</xsl:text>
            </edXML:Content>
            <edXML:SignerInfo>
              <edXML:FullName><xsl:value-of select="$signer"/></edXML:FullName>
            </edXML:SignerInfo>
          </edXML:MessageHeader>
        </edXML:edXMLHeader>
      </edXML:edXMLEnvelope>
    </edXML>
  </xsl:template>
</xsl:stylesheet>
