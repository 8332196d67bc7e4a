"""The request of ``send_operation``: a message body checked against the WSDL, with its key.

The body must be the operation's request element, valid against the WSDL's
exact schema where there is one and parsed by zeep; the delivery key goes into
``reference_field``, the service's external reference, so a redelivery is
recognised and posted once.
"""

from __future__ import annotations

from typing import Any

import zeep.exceptions
from lxml import etree

from lienthong.errors import ConfigError, RejectedError
from lienthong.message import Message


def check_reference_path(endpoint: str, element: Any, reference_field: str) -> None:
    """Refuse at start a ``reference_field`` that is not a path in the request element."""
    xsd_type = element.type
    for part in reference_field.split("."):
        children = dict(getattr(xsd_type, "elements", []))
        if part not in children:
            raise ConfigError(
                [
                    f"endpoint '{endpoint}': reference_field "
                    f"'{reference_field}' has no '{part}' in {element.qname}. "
                    f"Hint: a dotted path of element names; here one of {sorted(children)}"
                ]
            )
        child = children[part]
        xsd_type = child.type


def arguments(
    endpoint: str,
    operation: Any,
    root: etree._Element,
    message: Message,
    *,
    schema: etree.XMLSchema | None,
    types: Any,
    reference_field: str,
    key: str,
) -> dict[str, Any]:
    """The operation's arguments from the message body ``root``; RejectedError if it cannot be."""
    element = operation.input.body
    if root.tag != element.qname.text:
        raise RejectedError(
            f"endpoint '{endpoint}': message {message.id} body is <{root.tag}>, but "
            f"{operation.name} takes <{element.qname.text}>. Hint: check the route's mapping"
        )
    if schema is not None and not schema.validate(root):
        problems = "; ".join(
            f"line {e.line}: {e.message}"
            for e in schema.error_log  # type: ignore[attr-defined]
        )
        raise RejectedError(
            f"endpoint '{endpoint}': message {message.id} does not match the WSDL types "
            f"of {operation.name}: {problems}. Hint: fix the route's mapping"
        )
    try:
        value = element.type.parse_xmlelement(root, types)
    except (zeep.exceptions.Error, ValueError) as exc:
        raise RejectedError(
            f"endpoint '{endpoint}': message {message.id} does not fit {operation.name}: "
            f"{exc}. Hint: fix the route's mapping"
        ) from exc
    if reference_field:
        _set_reference(endpoint, value, key, message, reference_field)
    return {name: value[name] for name in value}


def _set_reference(
    endpoint: str, value: Any, key: str, message: Message, reference_field: str
) -> None:
    *parents, last = reference_field.split(".")
    target = value
    for part in parents:
        target = target[part]
        if target is None:
            raise RejectedError(
                f"endpoint '{endpoint}': message {message.id} has no '{part}' to hold "
                f"the reference '{reference_field}'. Hint: fix the mapping"
            )
    target[last] = key
