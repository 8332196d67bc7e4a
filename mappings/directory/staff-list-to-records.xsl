<?xml version="1.0" encoding="UTF-8"?>
<!-- Staff list exported by an agency's personnel system (phần mềm quản lý cán bộ,
     công chức: DuLieuCanBo/DonVi/CanBo) → sync records for the directory's
     'account' entity (key = the login name, TaiKhoan).

     - Staff without a TaiKhoan have no mail account and are left out.
     - family_name is the first word of HoVaTen (the Vietnamese surname);
       given_name is Ten, or the last word of HoVaTen when Ten is empty.
     - agency is the code of the enclosing DonVi.
     - TrangThai: DangCongTac, NghiPhep, NghiOm, NghiThaiSan are active;
       NghiHuu, ThoiViec, ChuyenCongTac, TuTran are gone (disabled = true).
       Any other status stops the whole file: a guess could lock a person out. -->
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:output method="xml" encoding="UTF-8" indent="yes"/>

  <xsl:variable name="upper" select="'ABCDEFGHIJKLMNOPQRSTUVWXYZ'"/>
  <xsl:variable name="lower" select="'abcdefghijklmnopqrstuvwxyz'"/>
  <xsl:variable name="active" select="' DangCongTac NghiPhep NghiOm NghiThaiSan '"/>
  <xsl:variable name="gone" select="' NghiHuu ThoiViec ChuyenCongTac TuTran '"/>

  <xsl:template match="/DuLieuCanBo">
    <records>
      <xsl:apply-templates select="DonVi/CanBo[normalize-space(TaiKhoan) != '']"/>
    </records>
  </xsl:template>

  <xsl:template match="/*" priority="-1">
    <xsl:message terminate="yes">
      <xsl:text>expected a DuLieuCanBo export, got &lt;</xsl:text>
      <xsl:value-of select="name()"/>
      <xsl:text>&gt;</xsl:text>
    </xsl:message>
  </xsl:template>

  <xsl:template match="CanBo">
    <xsl:variable name="login" select="translate(normalize-space(TaiKhoan), $upper, $lower)"/>
    <xsl:variable name="name" select="normalize-space(HoVaTen)"/>
    <xsl:variable name="status" select="normalize-space(TrangThai)"/>
    <xsl:if test="$status = '' or (not(contains($active, concat(' ', $status, ' ')))
                  and not(contains($gone, concat(' ', $status, ' '))))">
      <xsl:message terminate="yes">
        <xsl:text>TaiKhoan '</xsl:text>
        <xsl:value-of select="$login"/>
        <xsl:text>' has an unknown TrangThai '</xsl:text>
        <xsl:value-of select="$status"/>
        <xsl:text>'; add it to $active or $gone in this mapping</xsl:text>
      </xsl:message>
    </xsl:if>
    <record key="{$login}">
      <field name="full_name"><xsl:value-of select="$name"/></field>
      <field name="given_name">
        <xsl:choose>
          <xsl:when test="normalize-space(Ten) != ''">
            <xsl:value-of select="normalize-space(Ten)"/>
          </xsl:when>
          <xsl:otherwise>
            <xsl:call-template name="last-word">
              <xsl:with-param name="text" select="$name"/>
            </xsl:call-template>
          </xsl:otherwise>
        </xsl:choose>
      </field>
      <field name="family_name"><xsl:value-of select="substring-before(concat($name, ' '), ' ')"/></field>
      <field name="mail"><xsl:value-of select="translate(normalize-space(ThuDienTu), $upper, $lower)"/></field>
      <field name="title"><xsl:value-of select="normalize-space(ChucVu)"/></field>
      <field name="agency"><xsl:value-of select="normalize-space(../@Ma)"/></field>
      <xsl:if test="contains($gone, concat(' ', $status, ' '))">
        <field name="disabled">true</field>
      </xsl:if>
    </record>
  </xsl:template>

  <xsl:template name="last-word">
    <xsl:param name="text"/>
    <xsl:choose>
      <xsl:when test="contains($text, ' ')">
        <xsl:call-template name="last-word">
          <xsl:with-param name="text" select="substring-after($text, ' ')"/>
        </xsl:call-template>
      </xsl:when>
      <xsl:otherwise><xsl:value-of select="$text"/></xsl:otherwise>
    </xsl:choose>
  </xsl:template>
</xsl:stylesheet>
