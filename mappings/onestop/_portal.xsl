<?xml version="1.0" encoding="UTF-8"?>
<!-- Shared by the one-stop → national portal mappings: the local status → portal code
     table (configuration: the route's status_map param), and the portal's date form.

     status_map: space-separated local=portal pairs. The portal's codes, as both public
     clients use them: 1 new, 2 received, 3 not received, 4 in progress, 5 supplement
     asked, 6 fees asked, 7 withdrawn, 8 stopped, 9 processed, 10 result returned. The
     official table is not public: a route sets its own map with params: {status_map: …}. -->
<xsl:stylesheet version="1.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:lt="urn:lienthong:functions"
    exclude-result-prefixes="lt">
  <xsl:param name="status_map"
             select="'received=2 processing=4 waiting=5 paying=6 withdrawn=7 stopped=8 releasing=9 done=10 denied=3'"/>
  <xsl:param name="zone" select="'Asia/Ho_Chi_Minh'"/>

  <!-- The portal code of a local status; stops the message (dead letter) if the map lacks it. -->
  <xsl:template name="portal-status">
    <xsl:param name="local"/>
    <xsl:variable name="found"
        select="substring-before(substring-after(concat(' ', normalize-space($status_map), ' '),
                                                 concat(' ', $local, '=')), ' ')"/>
    <xsl:if test="$found = ''">
      <xsl:message terminate="yes">no portal status for the local status '<xsl:value-of
          select="$local"/>': add '<xsl:value-of select="$local"/>=CODE' to the route's status_map param</xsl:message>
    </xsl:if>
    <xsl:value-of select="$found"/>
  </xsl:template>

  <!-- An ISO 8601 time as the portal writes it: yyyyMMddHHmmss in Vietnam's zone. A time
       already written in Vietnam's zone only has its digits rearranged (a call into Python
       per date costs more than the rest of the mapping); any other goes to lt:format_datetime. -->
  <xsl:template name="portal-time">
    <xsl:param name="value"/>
    <xsl:variable name="v" select="string($value)"/>
    <xsl:variable name="digits"
        select="concat(substring($v, 1, 4), substring($v, 6, 2), substring($v, 9, 2),
                       substring($v, 12, 2), substring($v, 15, 2), substring($v, 18, 2))"/>
    <xsl:choose>
      <xsl:when test="$v = ''"/>
      <xsl:when test="$zone = 'Asia/Ho_Chi_Minh' and string-length($v) = 25
                      and substring($v, 20) = '+07:00'
                      and translate(concat(substring($v, 5, 1), substring($v, 8, 1), substring($v, 11, 1),
                                           substring($v, 14, 1), substring($v, 17, 1)), '-T:', '') = ''
                      and string-length($digits) = 14
                      and translate($digits, '0123456789', '') = ''">
        <xsl:value-of select="$digits"/>
      </xsl:when>
      <xsl:otherwise>
        <xsl:value-of select="lt:format_datetime($v, 'yyyyMMddHHmmss', $zone)"/>
      </xsl:otherwise>
    </xsl:choose>
  </xsl:template>
</xsl:stylesheet>
