"""The send path: a message written as JSON and sent by its operation, once per key.

The message is the route's mapping output in the XPath 3.1 JSON vocabulary. It
is written as JSON, checked against the operation's ``request_schema``,
completed with ``body_fields``, the login token and the delivery key, and sent
by the operation whose ``kind`` matches it (else ``send_operation``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from lienthong import jsonxml
from lienthong.errors import RejectedError
from lienthong.message import Message

from .caller import Caller
from .client import Request
from .config import Config
from .operations import Operation
from .paths import JsonPath, Missing, scalar_text


class Sender:
    """Sends an endpoint's messages through its caller."""

    def __init__(self, config: Config, caller: Caller, *, max_message_bytes: int) -> None:
        self.where = config.where
        self.settings = config.settings
        self.operations = config.operations
        self.body_fields = config.body_fields
        self.auth = config.auth
        self.caller = caller
        self.max_message_bytes = max_message_bytes

    def send(self, message: Message, *, key: str) -> None:
        """Send the message (JSON in the XPath 3.1 vocabulary) by its operation, once per key."""
        op = self.operation(message)
        tree = message.tree(max_bytes=self.max_message_bytes)
        root = tree.getroot()
        if not isinstance(root.tag, str) or not root.tag.startswith(f"{{{jsonxml.NS}}}"):
            raise RejectedError(
                f"{self.where}: message {message.id} is <{root.tag}>, not JSON in the XPath 3.1 "
                f"vocabulary ({{{jsonxml.NS}}}map). Hint: the route's mapping must output "
                '<map xmlns="http://www.w3.org/2005/xpath-functions">…'
            )
        try:
            text = jsonxml.xml_to_json(tree, what=f"message {message.id}")
        except jsonxml.JsonRejected as exc:
            raise RejectedError(f"{self.where}: {exc}. Hint: fix the route's mapping") from exc
        fields = dict(self.body_fields)
        if op.idempotency_field:
            fields[op.idempotency_field] = key
        document: list[Any] = []

        def body_value() -> Any:
            if not document:
                document.append(jsonxml.parse(text, what=f"message {message.id}"))
            return document[0]

        values = {
            "key": key,
            "message_id": message.id,
            "correlation_id": message.correlation_id,
            "kind": message.kind,
        }

        def lookup(name: str) -> str:
            if name.startswith("body."):
                try:
                    return scalar_text(JsonPath.compile(name[5:]).find(body_value()))
                except Missing as exc:
                    raise RejectedError(
                        f"{self.where} {op.name}: message {message.id} has no value for "
                        f"{{{name}}} ({exc}). "
                        "Hint: fix the route's mapping"
                    ) from exc
            return values.get(name, "")

        if fields and op.body:
            clash = (
                [k for k in fields if any(c.get("key") == k for c in root)]
                if root.tag == jsonxml.MAP
                else []
            )
            if root.tag != jsonxml.MAP:
                raise RejectedError(
                    f"{self.where} {op.name}: fields {sorted(fields)} must be added to a JSON "
                    "object, "
                    f"but message {message.id} is a JSON {_local_name(root)}"
                )
            if clash:
                raise RejectedError(
                    f"{self.where} {op.name}: message {message.id} already has {clash}, which the "
                    "endpoint adds itself (body_fields, idempotency_field). "
                    "Hint: drop it from the mapping"
                )
        if op.request_schema is not None:
            problem = self.caller.invalid(op.request_schema, jsonxml.parse(_splice(text, fields)))
            if problem:
                raise RejectedError(
                    f"{self.where} {op.name}: message {message.id} does not match request_schema: "
                    f"{problem}. Hint: fix the route's mapping"
                )
        url = self.caller.url(op, lookup)
        headers = self.caller.headers(op, lookup, body=op.body)
        if op.idempotency_header:
            headers[op.idempotency_header] = key

        def build(changes: Mapping[str, Any]) -> tuple[Request, int]:
            request = Request(op.method, url, dict(headers))
            call_fields = dict(fields)
            generation = self.auth.prepare(request, call_fields)
            if op.body:
                sent = _changed(text, changes) if changes else text
                request.body = _splice(sent, call_fields).encode("utf-8")
            self.auth.sign(request)
            return request, generation

        self.caller.exchange(build, op, f"message {message.id}", need_json=False)

    def operation(self, message: Message) -> Operation:
        """The operation of the message's kind, else ``send_operation``; none: a rejection."""
        for op in self.operations.values():
            if message.kind in op.kinds:
                return op
        name = self.settings["send_operation"]
        if not name:
            kinds = {k: op.name for op in self.operations.values() for k in op.kinds}
            raise RejectedError(
                f"{self.where}: no operation sends messages of kind '{message.kind}' "
                f"(kinds: {kinds or 'none'}). Hint: add the kind to an operation's kind, or set "
                "send_operation, then replay the message"
            )
        return self.operations[name]


def _splice(text: str, fields: Mapping[str, Any]) -> str:
    """Add top-level ``fields`` to a JSON object's text (written by fn:xml-to-json)."""
    if not fields:
        return text
    added = ",".join(
        f"{json.dumps(str(k), ensure_ascii=False)}:{json.dumps(v, ensure_ascii=False)}"
        for k, v in fields.items()
    )
    return "{" + added + ("" if text == "{}" else "," + text[1:-1]) + "}"


def _changed(text: str, changes: Mapping[str, Any]) -> str:
    """A JSON object's text with some top-level members set to new values."""
    document = jsonxml.parse(text)
    if not isinstance(document, jsonxml.JsonObject):
        raise RejectedError("resend_with changes fields of a JSON object, but the body is not one")
    kept = [(k, v) for k, v in document if k not in changes]
    return jsonxml.to_json(jsonxml.JsonObject([*kept, *changes.items()]))


def _local_name(element: Any) -> str:
    return str(element.tag).rpartition("}")[2]
