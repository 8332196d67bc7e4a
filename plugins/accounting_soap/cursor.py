"""Where a poll resumes: the cursor sent to ``receive_operation``, and the next one read back.

What an empty cursor is sent as, and how the items' cursors compare, are
decided once from the WSDL: an optional argument is left out, a nillable one
sent as nil, a required string sent empty; a time compares as a time and a
number as a number, so the cursor never goes back.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import zeep
from lxml import etree

from lienthong.errors import ConfigError

# The adapter's logger, as before this module was split from it: log filters keep matching.
log = logging.getLogger(f"{__package__}.adapter")


@dataclass(frozen=True)
class CursorPlan:
    """One endpoint's cursor: what an empty one is sent as, and how the next one is found."""

    endpoint: str
    #: Sent when there is no cursor yet; None leaves an optional argument out and
    #: sends a nillable one as xsi:nil.
    empty: str | None
    next_cursor_element: str
    next_cursor_field: str
    #: The WSDL type of ``next_cursor_field``; None when ``next_cursor_element`` is used.
    field_type: Any

    @classmethod
    def of(cls, endpoint: str, settings: Mapping[str, Any], operation: Any) -> CursorPlan:
        """Decide what an empty cursor is sent as, and how item cursors compare, from the WSDL."""
        s = settings
        arguments = dict(getattr(operation.input.body.type, "elements", []))
        name = s["cursor_argument"]
        if name not in arguments:
            raise ConfigError(
                [
                    f"endpoint '{endpoint}': cursor_argument '{name}' is not an argument "
                    f"of {operation.name}. Hint: one of {sorted(arguments)}"
                ]
            )
        argument = arguments[name]
        empty: str | None = None
        if argument.min_occurs and not argument.nillable:
            if isinstance(argument.type, zeep.xsd.String):
                empty = ""
            elif not s["cursor_start"]:
                raise ConfigError(
                    [
                        f"endpoint '{endpoint}': {operation.name} requires '{name}' "
                        f"({_type_name(argument.type)}), which can be neither empty nor nil, "
                        "so the first poll needs a cursor. Hint: set cursor_start to where "
                        f"the first poll starts, e.g. {_example(argument.type)!r}"
                    ]
                )
        field_type: Any = None
        if s["next_cursor_field"]:
            field_type = _item_field_type(endpoint, settings, operation)
        return cls(endpoint, empty, s["next_cursor_element"], s["next_cursor_field"], field_type)

    def next_cursor(self, answer: etree._Element, items: list[Any], cursor: str) -> str:
        """The answer's next cursor element, or the greatest item field (never going back)."""
        if self.field_type is None:
            found = answer.xpath(".//*[local-name() = $n]", n=self.next_cursor_element)
            return (found[0].text or "").strip() if found else ""
        best, best_text = self.value(cursor), cursor
        for item in items:
            found = item.xpath("*[local-name() = $n]", n=self.next_cursor_field)
            text = (found[0].text or "").strip() if found else ""
            value = self.value(text)
            if value is None:
                if text:
                    log.warning(
                        "endpoint %s: item field %s %r is not a valid %s; it does not move "
                        "the cursor",
                        self.endpoint,
                        self.next_cursor_field,
                        text,
                        _type_name(self.field_type),
                        extra={"endpoint": self.endpoint},
                    )
                continue
            if best is None or value > best:
                best, best_text = value, text
        return best_text

    def value(self, text: str) -> Any:
        """``text`` as its WSDL type says (a naive time taken as UTC); None if it is not one."""
        if not text:
            return None
        try:
            value = self.field_type.pythonvalue(text)
        except (ValueError, ArithmeticError, TypeError):
            return None
        if isinstance(value, datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


def _item_field_type(endpoint: str, settings: Mapping[str, Any], operation: Any) -> Any:
    s = settings
    item = _find_element(operation.output.body, s["item_element"])
    if item is None:
        raise ConfigError(
            [
                f"endpoint '{endpoint}': next_cursor_field needs the type of the "
                f"items, but the answer of {operation.name} has no element "
                f"'{s['item_element']}' (item_element) in the WSDL. Hint: check "
                "item_element, or use next_cursor_element"
            ]
        )
    fields = dict(getattr(item.type, "elements", []))
    field = fields.get(s["next_cursor_field"])
    if field is None or not hasattr(field.type, "pythonvalue"):
        raise ConfigError(
            [
                f"endpoint '{endpoint}': next_cursor_field '{s['next_cursor_field']}' "
                f"is not a simple child of '{s['item_element']}' in the WSDL. "
                f"Hint: one of {sorted(fields)}"
            ]
        )
    return field.type


def _find_element(element: Any, name: str) -> Any:
    """The first element named ``name`` at or below ``element`` in the WSDL's types."""
    queue, seen = [element], set()
    while queue:
        current = queue.pop(0)
        if id(current.type) in seen:
            continue
        seen.add(id(current.type))
        for child_name, child in getattr(current.type, "elements", []):
            if child_name == name:
                return child
            queue.append(child)
    return None


def _type_name(xsd_type: Any) -> str:
    qname = getattr(xsd_type, "qname", None)
    return f"xs:{qname.localname}" if qname is not None else type(xsd_type).__name__


def _example(xsd_type: Any) -> str:
    """A valid value of a simple type, for a hint."""
    examples = {
        zeep.xsd.DateTime: "2026-01-01T00:00:00+07:00",
        zeep.xsd.Date: "2026-01-01",
        zeep.xsd.Decimal: "0",
        zeep.xsd.Integer: "0",
        zeep.xsd.Float: "0",
        zeep.xsd.Double: "0",
    }
    for kind, example in examples.items():
        if isinstance(xsd_type, kind):
            return example
    return "..."
