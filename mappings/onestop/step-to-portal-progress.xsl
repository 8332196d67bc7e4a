<?xml version="1.0" encoding="UTF-8"?>
<!-- A processing step of a one-stop-shop dossier → the national portal's
     CapNhatTienDoHoSoMC call (one step per call, so each is delivered, retried and
     dead-lettered on its own). Params: status_map and zone (see _portal.xsl). -->
<xsl:stylesheet version="1.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns="http://www.w3.org/2005/xpath-functions"
    xmlns:j="http://www.w3.org/2005/xpath-functions"
    exclude-result-prefixes="j">
  <xsl:include href="_portal.xsl"/>
  <xsl:output method="xml" encoding="UTF-8"/>

  <xsl:template match="/j:map">
    <map>
      <string key="service">CapNhatTienDoHoSoMC</string>
      <array key="data">
        <map>
          <string key="MaHoSo"><xsl:value-of select="j:string[@key='dossierNo']"/></string>
          <string key="NguoiXuLy"><xsl:value-of select="normalize-space(j:string[@key='actionUser'])"/></string>
          <string key="ChucDanh"><xsl:value-of select="j:string[@key='actionTitle']"/></string>
          <string key="ThoiDiemXuLy">
            <xsl:call-template name="portal-time">
              <xsl:with-param name="value" select="j:string[@key='createDate']"/>
            </xsl:call-template>
          </string>
          <string key="PhongBanXuLy"><xsl:value-of select="j:string[@key='department']"/></string>
          <string key="NoiDungXuLy"><xsl:value-of select="normalize-space(j:string[@key='actionNote'])"/></string>
          <string key="TrangThai">
            <xsl:call-template name="portal-status">
              <xsl:with-param name="local" select="j:string[@key='stepStatus']"/>
            </xsl:call-template>
          </string>
          <string key="NgayBatDau">
            <xsl:call-template name="portal-time">
              <xsl:with-param name="value" select="j:string[@key='startDate']"/>
            </xsl:call-template>
          </string>
          <string key="NgayKetThucTheoQuyDinh">
            <xsl:call-template name="portal-time">
              <xsl:with-param name="value" select="j:string[@key='dueDate']"/>
            </xsl:call-template>
          </string>
        </map>
      </array>
    </map>
  </xsl:template>
</xsl:stylesheet>
