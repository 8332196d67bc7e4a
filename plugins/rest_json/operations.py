"""Operations: the configured calls of a JSON/REST system, checked before anything starts.

Each operation is a method, a path template, query and header templates, the
message kinds it sends, and how the system says "already there" or "send it
again differently". Every problem in them is collected, with where it is, so
the bus can refuse to start with all of them at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import jsonschema.exceptions

from lienthong import jsonxml
from lienthong.errors import RejectedError

from .paths import PathError, Template

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
_OPERATION_KEYS = {
    "method": "HTTP method (GET, POST, PUT, PATCH, DELETE)",
    "path": "path template after base_url, e.g. /dossiers/{body.MaHoSo}",
    "query": "query parameters: name -> template",
    "headers": "extra headers: name -> template",
    "kind": "message kind(s) this operation sends",
    "body": "send the message as the JSON body (default: yes except for GET and DELETE)",
    "idempotency_header": "header that carries the delivery key, e.g. Idempotency-Key",
    "idempotency_field": "top-level body field that carries the delivery key",
    "request_schema": "JSON Schema file the body must satisfy",
    "response_schema": "JSON Schema file a 2xx answer must satisfy",
    "done_statuses": "HTTP statuses meaning 'already there' (e.g. [409])",
    "resend_with": "result code -> top-level body fields to change and call once more",
}
#: Placeholders of a call's templates; ``body.`` names reach into the JSON sent.
_CALL_VALUES = ("key", "message_id", "correlation_id", "kind", "cursor", "page", "page_size")


@dataclass
class Operation:
    """One configured call of the system."""

    name: str
    method: str
    path: Template
    query: dict[str, Template] = field(default_factory=dict)
    headers: dict[str, Template] = field(default_factory=dict)
    kinds: frozenset[str] = frozenset()
    body: bool = True
    idempotency_header: str = ""
    idempotency_field: str = ""
    request_schema: Any = None
    response_schema: Any = None
    done_statuses: frozenset[int] = frozenset()
    resend_with: dict[str, dict[str, Any]] = field(default_factory=dict)


def parse(
    raw: Any,
    *,
    receive_operation: str,
    load_schema: Callable[[Any, str, list[str]], Any],
    problems: list[str],
) -> dict[str, Operation]:
    """The operations of an endpoint's ``operations`` setting; problems go to ``problems``."""
    if not isinstance(raw, Mapping) or not raw:
        problems.append("operations must name at least one call: name -> {method, path, ...}")
        return {}
    operations = {}
    for name, spec in raw.items():
        where = f"operations.{name}"
        if not isinstance(spec, Mapping):
            problems.append(f"{where} must be a mapping of {', '.join(_OPERATION_KEYS)}")
            continue
        for key in spec:
            if key not in _OPERATION_KEYS:
                problems.append(
                    f"{where}.{key} is not an operation setting; "
                    f"known: {', '.join(_OPERATION_KEYS)}"
                )
        method = str(spec.get("method", "GET" if name == receive_operation else "POST")).upper()
        if method not in METHODS:
            problems.append(f"{where}.method {method!r} is not one of {', '.join(METHODS)}")
        try:
            path = Template.compile(str(spec.get("path", "")))
            query = {str(k): Template.compile(str(v)) for k, v in (spec.get("query") or {}).items()}
            headers = {
                str(k): Template.compile(str(v)) for k, v in (spec.get("headers") or {}).items()
            }
        except (PathError, AttributeError) as exc:
            problems.append(f"{where}: {exc}")
            continue
        for template in (path, *query.values(), *headers.values()):
            for placeholder in template.names:
                if placeholder not in _CALL_VALUES and not placeholder.startswith("body."):
                    problems.append(
                        f"{where}: unknown placeholder {{{placeholder}}} in {template.text!r}; "
                        f"known: {', '.join(_CALL_VALUES)}, body.FIELD"
                    )
        if path.text and not path.text.startswith("/"):
            problems.append(f"{where}.path {path.text!r} must start with '/'")
        kinds = spec.get("kind") or ()
        kinds = frozenset([kinds] if isinstance(kinds, str) else map(str, kinds))
        try:
            done = frozenset(int(x) for x in (spec.get("done_statuses") or ()))
        except (TypeError, ValueError):
            problems.append(f"{where}.done_statuses must be a list of HTTP statuses, e.g. [409]")
            done = frozenset()
        resend = spec.get("resend_with") or {}
        if not isinstance(resend, Mapping) or not all(
            isinstance(v, Mapping) for v in resend.values()
        ):
            problems.append(
                f"{where}.resend_with must map result codes to fields, e.g. "
                '{"-3": {"isUpdating": "True"}}'
            )
            resend = {}
        operations[str(name)] = Operation(
            name=str(name),
            method=method,
            path=path,
            query=query,
            headers=headers,
            kinds=kinds,
            body=bool(spec.get("body", method not in ("GET", "DELETE"))),
            idempotency_header=str(spec.get("idempotency_header") or ""),
            idempotency_field=str(spec.get("idempotency_field") or ""),
            request_schema=load_schema(
                spec.get("request_schema"), f"{where}.request_schema", problems
            ),
            response_schema=load_schema(
                spec.get("response_schema"), f"{where}.response_schema", problems
            ),
            done_statuses=done,
            resend_with={str(k): dict(v) for k, v in resend.items()},
        )
    return operations


def load_schema(value: Any, option: str, problems: list[str], base_dir: Path) -> Any:
    """A JSON Schema validator from a file (relative to ``base_dir``), or None if unset."""
    if not value:
        return None
    path = Path(str(value))
    path = path if path.is_absolute() else base_dir / path
    try:
        schema = jsonxml.loads(path.read_bytes(), what=f"JSON Schema '{path}'")
        validator_class = jsonschema.validators.validator_for(schema)
        validator_class.check_schema(schema)
    except OSError as exc:
        problems.append(f"{option}: '{path}' cannot be read: {exc.strerror}")
        return None
    except (RejectedError, jsonschema.exceptions.SchemaError) as exc:
        problems.append(
            f"{option}: '{path}' is not a usable JSON Schema: {getattr(exc, 'message', exc)}"
        )
        return None
    return validator_class(schema)
