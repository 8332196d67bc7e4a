"""Hardened XML parsing and XSD validation: the one way the bus reads XML.

Everything the bus reads goes through :func:`parse`. It never resolves entities,
never touches the network, never loads or accepts a DTD (which rules out XXE,
billion laughs and external DTDs in one stroke), refuses trees deeper than
libxml2's default limit, and refuses documents over a size limit before parsing.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

from lxml import etree

from .errors import ConfigError, RejectedError

DEFAULT_MAX_BYTES = 10 * 1024 * 1024

_local = threading.local()
#: One pass over the bytes finds any of the declarations refused (three ``in`` tests took three).
_DECLARATIONS = re.compile(rb"<!(?:DOCTYPE|doctype|ENTITY)")


class XmlRejected(RejectedError):
    """The bytes are not XML the bus accepts; the message says why and what to do."""


def _parser() -> etree.XMLParser:
    # lxml parsers are not thread-safe; one per thread, built once.
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            huge_tree=False,
            remove_comments=False,
        )
        _local.parser = parser
    return parser


def parse(
    data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, what: str = "document"
) -> etree._ElementTree:
    """Parse ``data`` with the hardened parser, or raise :class:`XmlRejected` saying why."""
    if len(data) > max_bytes:
        raise XmlRejected(
            f"{what} is {len(data):,} bytes, over the limit of {max_bytes:,} bytes. "
            "Hint: raise bus.max_message_bytes in the config if such documents are expected."
        )
    if _DECLARATIONS.search(data):
        # Checked on the bytes as well as the tree: an entity declaration is refused
        # before libxml2 builds anything from it.
        raise XmlRejected(
            f"{what} declares a DTD or entities, which the bus never accepts "
            "(they enable XXE and entity-expansion attacks). "
            "Hint: remove the <!DOCTYPE> declaration."
        )
    try:
        tree = etree.ElementTree(etree.fromstring(data, _parser()))
    except etree.XMLSyntaxError as exc:
        line, column = exc.position
        detail = exc.msg if ", line " in exc.msg else f"{exc.msg} (line {line}, column {column})"
        raise XmlRejected(f"{what} is not well-formed XML: {detail}") from exc
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise XmlRejected(f"{what} declares a DTD, which the bus never accepts.")
    return tree


def parse_file(path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> etree._ElementTree:
    """Parse a file with the hardened parser; the error names the file."""
    return parse(Path(path).read_bytes(), max_bytes=max_bytes, what=f"'{path}'")


def serialize(tree: etree._ElementTree | etree._Element) -> bytes:
    """Serialize as UTF-8 with an XML declaration, the bus's one output form."""
    return etree.tostring(tree, encoding="UTF-8", xml_declaration=True)


_schemas: dict[Path, etree.XMLSchema] = {}
_schemas_lock = threading.Lock()


def load_schema(path: Path) -> etree.XMLSchema:
    """Load and cache an XSD; a broken schema is a configuration error."""
    path = Path(path).resolve()
    with _schemas_lock:
        schema = _schemas.get(path)
        if schema is None:
            try:
                schema = etree.XMLSchema(parse_file(path))
            except (etree.XMLSchemaParseError, RejectedError, OSError) as exc:
                raise ConfigError([f"schema '{path}' cannot be loaded: {exc}"]) from exc
            _schemas[path] = schema
    return schema


def validate(
    tree: etree._ElementTree | etree._Element, schema_path: Path, *, what: str = "document"
) -> None:
    """Validate against an XSD, raising :class:`XmlRejected` listing every problem with its line."""
    schema = load_schema(schema_path)
    if schema.validate(tree):
        return
    problems = "; ".join(
        f"line {e.line}: {e.message}"
        for e in schema.error_log  # type: ignore[attr-defined]
    )
    raise XmlRejected(f"{what} does not match schema '{Path(schema_path).name}': {problems}")
