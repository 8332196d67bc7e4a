"""Mappings (XSLT) with their test cases, and the XSD schemas routes validate against."""
