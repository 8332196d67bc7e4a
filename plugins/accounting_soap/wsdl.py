"""The WSDL document: the parts of it both the sandbox server and the adapter read.

A WSDL is read with the bus's hardened parser; its embedded ``xs:schema`` is
turned into an lxml schema so request bodies are validated against exactly the
types the service publishes.
"""

from __future__ import annotations

import copy
from pathlib import Path
from urllib.parse import urlsplit

from lxml import etree

from lienthong import xml
from lienthong.errors import ConfigError

WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
XSD_NS = "http://www.w3.org/2001/XMLSchema"
SOAP11_BINDING_NS = "http://schemas.xmlsoap.org/wsdl/soap/"
SOAP12_BINDING_NS = "http://schemas.xmlsoap.org/wsdl/soap12/"


def load(path: Path) -> etree._ElementTree:
    """Read a WSDL file with the hardened parser; a missing or broken file is a config error."""
    try:
        return xml.parse_file(Path(path))
    except (OSError, xml.XmlRejected) as exc:
        raise ConfigError(
            [
                f"WSDL '{path}' cannot be read: {exc}. "
                "Hint: check the path and that it is a WSDL 1.1 file"
            ]
        ) from exc


def target_namespace(wsdl: etree._ElementTree) -> str:
    """The WSDL's targetNamespace (the namespace of its operations' elements)."""
    return wsdl.getroot().get("targetNamespace", "")


def embedded_schema(wsdl: etree._ElementTree) -> etree.XMLSchema:
    """The lxml schema of the single ``xs:schema`` inside ``wsdl:types``.

    The schema element is copied into a document of its own with every namespace
    in scope in the WSDL declared on it, because QName-valued attributes such as
    ``type="acc:Voucher"`` may use prefixes declared on ``wsdl:definitions``.
    """
    schemas = wsdl.getroot().findall(f"{{{WSDL_NS}}}types/{{{XSD_NS}}}schema")
    if len(schemas) != 1:
        raise ConfigError(
            [
                f"WSDL has {len(schemas)} embedded schemas; the sandbox server needs exactly one. "
                "Hint: merge the types into one xs:schema"
            ]
        )
    original = schemas[0]
    # libxml2 would load an import or include itself, from anywhere it names.
    refers = [
        f"xs:{etree.QName(e).localname}"
        for e in original.iter(
            f"{{{XSD_NS}}}import", f"{{{XSD_NS}}}include", f"{{{XSD_NS}}}redefine"
        )
        if e.get("schemaLocation")
    ]
    if refers:
        raise ConfigError(
            [
                f"the schema embedded in the WSDL has {', '.join(sorted(set(refers)))} with a "
                "schemaLocation; it is checked by zeep alone. Hint: inline the types for an "
                "exact check"
            ]
        )
    # nsmap holds every namespace in scope, including those declared on the root.
    standalone = etree.Element(original.tag, attrib=dict(original.attrib), nsmap=original.nsmap)
    for child in original:
        standalone.append(copy.deepcopy(child))
    try:
        return etree.XMLSchema(standalone)
    except etree.XMLSchemaParseError as exc:
        raise ConfigError([f"the schema embedded in the WSDL is invalid: {exc}"]) from exc


def with_address(wsdl: etree._ElementTree, url: str) -> bytes:
    """The WSDL with every ``soap:address`` location set to ``url``, serialized."""
    tree = copy.deepcopy(wsdl)
    for ns in (SOAP11_BINDING_NS, SOAP12_BINDING_NS):
        for address in tree.iter(f"{{{ns}}}address"):
            address.set("location", url)
    return xml.serialize(tree)


def address_path(wsdl: etree._ElementTree) -> str:
    """The path part of the first ``soap:address`` (where the service listens)."""
    address = wsdl.getroot().find(f".//{{{SOAP11_BINDING_NS}}}address")
    location = address.get("location", "") if address is not None else ""
    return urlsplit(location).path or "/"
