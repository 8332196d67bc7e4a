"""The receive path: a poll from the stored position, page by page, each item a message.

The items at ``items_path`` each become a message (``fn:json-to-xml``), handed
to the bus, and only then does the position move: to the answer's
``cursor_path``, or to the greatest ``cursor_field`` among the items, the items
at that very value remembered (``position.py``). Pages follow a next link, a
page number or a cursor, at most ``max_pages`` per poll.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urljoin

from lienthong import jsonxml
from lienthong.adapter import INVALID_HEADER, Inbox
from lienthong.errors import FatalError, LienthongError
from lienthong.message import Message
from lienthong.store import Cursors

from .caller import Caller
from .client import Request, origin
from .config import Config
from .operations import Operation
from .paths import Missing, scalar_text
from .position import Position, compare, query_param, with_query_param


class Poller:
    """Polls an endpoint's ``receive_operation`` through its caller, from its stored cursor."""

    def __init__(self, endpoint: str, config: Config, caller: Caller, cursors: Cursors) -> None:
        self.endpoint = endpoint
        self.where = config.where
        self.settings = config.settings
        self.base_url = config.base_url
        self.operations = config.operations
        self.paths = config.paths
        self.item_keys = config.item_keys
        self.item_validator = config.item_validator
        self.limits = config.limits
        self.auth = config.auth
        self.caller = caller
        self.cursors = cursors

    def poll(self, inbox: Inbox) -> int:
        """Read pages from the stored position; hand each to the bus, then move the position."""
        s = self.settings
        op = self.operations[s["receive_operation"]]
        name = f"{self.endpoint}:{op.name}"
        position = Position.load(self.cursors.get(name), s["cursor_start"])
        start = position
        url: str | None = None
        handed = 0
        budget = s["max_pages"] * s["page_size"]
        # Pages holding only items already taken (a run of equal cursor values) do not
        # count against max_pages: without them a long run would be read forever. The
        # batch stays bounded: a poll hands over at most max_pages × page_size items.
        pages = s["max_pages"] + -(-len(start.seen) // s["page_size"])
        for number in range(pages):
            page = s["page_start"] + number
            values = {"cursor": start.value, "page": str(page), "page_size": str(s["page_size"])}
            if url is None:
                extra: dict[str, str] = {}
                if s["cursor_param"]:
                    extra[s["cursor_param"]] = start.value
                if s["pagination"] == "page":
                    extra[s["page_param"]] = str(page)
                if s["page_size_param"]:
                    extra[s["page_size_param"]] = str(s["page_size"])
                url = self.caller.url(op, _lookup(values), extra)
            headers = self.caller.headers(op, _lookup(values), body=False)
            target = url
            answer = self._fetch(op, target, headers, f"poll page {number + 1}")
            items = [(item, self._source_key(item)) for item in self._items(answer, op)]
            fresh = [(item, key) for item, key in items if not self._taken(start, item, key)]
            if len(fresh) > budget - handed:
                # Only part of this page fits: take what fits, read the rest next poll.
                fresh = fresh[: budget - handed]
                items = items[: items.index(fresh[-1]) + 1] if fresh else []
            if fresh:
                inbox.accept([self._message(item, key, op) for item, key in fresh])
                handed += len(fresh)
            # Only now, with the page safe in the store, does the position move.
            position = self._advance(position, answer, items)
            stored = position.dump()
            if stored != (self.cursors.get(name) or ""):
                self.cursors.set(name, stored)
            url = self._next(answer, [item for item, _ in items], target)
            if url is None or handed >= budget:
                break
        return handed

    def _fetch(self, op: Operation, url: str, headers: Mapping[str, str], what: str) -> Any:
        def build(changes: Mapping[str, Any]) -> tuple[Request, int]:
            request = Request(op.method, url, dict(headers))
            generation = self.auth.prepare(request, {})
            self.auth.sign(request)
            return request, generation

        return self.caller.exchange(build, op, what, need_json=True)

    def _taken(self, start: Position, item: Any, key: str) -> bool:
        """Whether an item at exactly the starting cursor value was handed over before."""
        cursor_field = self.paths.get("cursor_field")
        if not start.seen or cursor_field is None or key not in start.seen:
            return False
        found = cursor_field.get(item)
        return found is not None and scalar_text(found) == start.value

    def _items(self, answer: Any, op: Operation) -> list[Any]:
        path = self.paths.get("items_path")
        try:
            items = path.find(answer) if path is not None else answer
        except Missing as exc:
            raise FatalError(
                f"{self.where} {op.name}: the answer has no items at "
                f"{path.text if path else '$'!r} ({exc}). "
                "Hint: set items_path to where the answer lists them"
            ) from exc
        if items is None:
            return []
        if not isinstance(items, list) or isinstance(items, jsonxml.JsonObject):
            raise FatalError(
                f"{self.where} {op.name}: items_path does not lead to a JSON array in the answer"
            )
        return items

    def _source_key(self, item: Any) -> str:
        if self.item_keys:
            try:
                parts = [scalar_text(p.find(item)) for p in self.item_keys]
                if all(parts):
                    return "/".join(parts)
            except Missing:
                pass
        return (
            "sha256:"
            + hashlib.sha256(jsonxml.to_json(item).encode("utf-8", "surrogatepass")).hexdigest()[
                :40
            ]
        )

    def _message(self, item: Any, key: str, op: Operation) -> Message:
        s = self.settings
        headers = {"operation": op.name}
        mode = s["invalid_characters"]
        try:
            body = jsonxml.to_xml(
                item,
                escape=mode == "escape",
                duplicates=s["duplicate_keys"],
                fallback=_refuse if mode == "reject" else None,
                limits=self.limits,
                what=f"item {key}",
            )
            if self.item_validator is not None:
                problem = self.caller.invalid(self.item_validator, item)
                if problem:
                    headers[INVALID_HEADER] = f"item {key} does not match item_schema: {problem}"
        except (jsonxml.JsonRejected, _Unholdable) as exc:
            # Kept as it came, parked by the bus with the reason: never lost, never half-read.
            body = jsonxml.to_json(item).encode("utf-8", "surrogatepass")
            headers[INVALID_HEADER] = self.caller.scrub(str(exc))
        return Message(
            body=body, kind=s["message_kind"], source=self.endpoint, headers=headers, source_key=key
        )

    def _advance(self, position: Position, answer: Any, items: list[tuple[Any, str]]) -> Position:
        cursor_path, cursor_field = self.paths.get("cursor_path"), self.paths.get("cursor_field")
        if cursor_path is not None:
            found = cursor_path.get(answer)
            text = scalar_text(found) if found is not None and not isinstance(found, list) else ""
            return Position(text) if text else position
        if cursor_field is None:
            return position
        best, seen = position.value, list(position.seen)
        for item, key in items:
            found = cursor_field.get(item)
            if found is None or isinstance(found, list):
                continue
            value = scalar_text(found)
            order = compare(value, best) if best else 1
            if order > 0:
                best, seen = value, [key]
            elif order == 0:
                seen.append(key)
        return Position(best, tuple(dict.fromkeys(seen)))

    def _next(self, answer: Any, items: list[Any], url: str) -> str | None:
        s = self.settings
        more_path = self.paths.get("more_path")
        if more_path is not None and more_path.get(answer) is False:
            return None
        if s["pagination"] == "none" or not items:
            return None
        if s["pagination"] == "page":
            if s["page_size_param"] and len(items) < s["page_size"]:
                return None
            current = int(query_param(url, s["page_param"]) or s["page_start"])
            return with_query_param(url, s["page_param"], str(current + 1))
        next_path = self.paths["next_path"]
        assert next_path is not None
        found = next_path.get(answer)
        link = scalar_text(found) if found is not None and not isinstance(found, list) else ""
        if not link:
            return None
        if s["pagination"] == "cursor":
            if link == query_param(url, s["cursor_param"]):
                return None
            return with_query_param(url, s["cursor_param"], link)
        target = urljoin(url, link)
        if origin(target) != origin(self.base_url):
            raise FatalError(
                f"{self.where}: the next page link leads to another host ({target}): refused. "
                "Hint: if the system really pages across hosts, that is for its operator to fix"
            )
        return target


class _Unholdable(LienthongError):
    """A character XML cannot hold, with ``invalid_characters: reject``."""


def _refuse(escape: str) -> str:
    raise _Unholdable(
        f"the item holds a character XML cannot ({escape}), and invalid_characters is reject"
    )


def _lookup(values: Mapping[str, str]) -> Callable[[str], str]:
    return lambda name: values.get(name, "")
