<?xml version="1.0" encoding="UTF-8"?>
<!-- A one-stop-shop dossier (JSON from the provincial system, as fn:json-to-xml gives it)
     → the national portal's DongBoHoSoMC call, as fn:xml-to-json will write it.
     The first version of a dossier is added (isUpdating False), later ones update it.
     Params: status_map and zone (see _portal.xsl). -->
<xsl:stylesheet version="1.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns="http://www.w3.org/2005/xpath-functions"
    xmlns:j="http://www.w3.org/2005/xpath-functions"
    exclude-result-prefixes="j">
  <xsl:include href="_portal.xsl"/>
  <xsl:output method="xml" encoding="UTF-8"/>

  <xsl:template match="/j:map">
    <map>
      <string key="service">DongBoHoSoMC</string>
      <string key="isUpdating">
        <xsl:choose>
          <xsl:when test="j:number[@key='version'] &gt; 1">True</xsl:when>
          <xsl:otherwise>False</xsl:otherwise>
        </xsl:choose>
      </string>
      <array key="data">
        <map>
          <string key="MaHoSo"><xsl:value-of select="j:string[@key='dossierNo']"/></string>
          <string key="MaTTHC"><xsl:value-of select="j:string[@key='serviceCode']"/></string>
          <string key="TenTTHC"><xsl:value-of select="j:string[@key='serviceName']"/></string>
          <string key="MaLinhVuc"><xsl:value-of select="j:string[@key='domainCode']"/></string>
          <string key="TenLinhVuc"><xsl:value-of select="j:string[@key='domainName']"/></string>
          <string key="KenhThucHien">
            <xsl:choose>
              <xsl:when test="j:boolean[@key='online'] = 'true'">2</xsl:when>
              <xsl:otherwise>1</xsl:otherwise>
            </xsl:choose>
          </string>
          <string key="ChuHoSo"><xsl:value-of select="normalize-space(j:string[@key='applicantName'])"/></string>
          <string key="LoaiDoiTuong">
            <xsl:choose>
              <xsl:when test="j:string[@key='applicantIdType'] = 'business'">2</xsl:when>
              <xsl:otherwise>1</xsl:otherwise>
            </xsl:choose>
          </string>
          <string key="SoGiayToChuHoSo"><xsl:value-of select="j:string[@key='applicantIdNo']"/></string>
          <string key="Email"><xsl:value-of select="j:string[@key='contactEmail']"/></string>
          <string key="SoDienThoai"><xsl:value-of select="j:string[@key='contactTelNo']"/></string>
          <string key="TrichYeuHoSo"><xsl:value-of select="normalize-space(j:string[@key='dossierNote'])"/></string>
          <string key="NgayTiepNhan">
            <xsl:call-template name="portal-time">
              <xsl:with-param name="value" select="j:string[@key='receiveDate']"/>
            </xsl:call-template>
          </string>
          <string key="NgayHenTra">
            <xsl:call-template name="portal-time">
              <xsl:with-param name="value" select="j:string[@key='dueDate']"/>
            </xsl:call-template>
          </string>
          <string key="TrangThaiHoSo">
            <xsl:call-template name="portal-status">
              <xsl:with-param name="local" select="j:string[@key='dossierStatus']"/>
            </xsl:call-template>
          </string>
          <string key="NgayTra">
            <xsl:call-template name="portal-time">
              <xsl:with-param name="value" select="j:string[@key='finishDate']"/>
            </xsl:call-template>
          </string>
          <string key="HinhThuc">
            <xsl:choose>
              <xsl:when test="j:number[@key='viaPostal'] &gt; 1">1</xsl:when>
              <xsl:otherwise>0</xsl:otherwise>
            </xsl:choose>
          </string>
          <string key="DonViXuLy"><xsl:value-of select="j:string[@key='govAgencyName']"/></string>
        </map>
      </array>
    </map>
  </xsl:template>
</xsl:stylesheet>
