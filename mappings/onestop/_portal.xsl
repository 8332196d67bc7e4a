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

  <!-- An ISO 8601 time as the portal writes it: yyyyMMddHHmmss in Vietnam's zone. -->
  <xsl:template name="portal-time">
    <xsl:param name="value"/>
    <xsl:value-of select="lt:format_datetime(string($value), 'yyyyMMddHHmmss', $zone)"/>
  </xsl:template>
</xsl:stylesheet>
