"""Node-level differences between two XML documents, as paths with positions.

Used to show what a changed mapping would change in real traffic, and what a
replay would send against what was attempted: not a text diff, but one line per
changed node::

    /Receipt[1]/Items[1]/Item[3]/@amount: '10' -> '12'
    /Receipt[1]/Total[1]/text(): '30' -> '32'
    /Receipt[1]/Items[1]/Item[4]: added <Item amount="5"/>

Documents in the W3C ``fn:json-to-xml`` vocabulary (how lienthong carries JSON)
are compared as JSON: map entries by key, whatever their order, and paths in
JSONPath form (``$.data[0].MaHoSo: "H41-1" -> "H41-2"``).

What counts is what the test cases count (see :func:`lienthong.mapping.first_difference`):
element and attribute names by namespace URI and local name (not prefix), attribute
values, text, and the order of elements; comments, processing instructions and
whitespace-only text between elements do not. Paths name nodes in the old
document, and added nodes in the new one.

Each subtree gets a content hash first, so identical subtrees are skipped at
once and a removed or inserted element does not shift its siblings into
spurious changes.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeAlias

from lxml import etree

from . import xml

FN_NAMESPACE = "http://www.w3.org/2005/xpath-functions"
_FN_TYPES = frozenset({"map", "array", "string", "number", "boolean", "null"})
FN_STRUCTURE_ATTRIBUTES = frozenset({"key", "escaped", "escaped-key"})
_JSON_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SHOWN = 72

Document: TypeAlias = "etree._ElementTree | etree._Element | bytes"


@dataclass(frozen=True)
class Difference:
    """One node that differs: ``change`` is 'changed', 'added' or 'removed'."""

    path: str
    change: str
    old: str | None = None
    new: str | None = None

    def __str__(self) -> str:
        if self.change == "changed":
            return f"{self.path}: {self.old} -> {self.new}"
        shown = self.new if self.change == "added" else self.old
        return f"{self.path}: {self.change} {shown}"

    def to_dict(self) -> dict[str, str | None]:
        return {"path": self.path, "change": self.change, "old": self.old, "new": self.new}


def diff(old: Document, new: Document, *, limit: int | None = None) -> list[Difference]:
    """Every node where ``new`` differs from ``old`` (the first ``limit``), in document order."""
    if isinstance(old, bytes) and isinstance(new, bytes) and old == new:
        return []
    old_root, new_root = _root(old, "old document"), _root(new, "new document")
    found = _Differ(limit)
    if is_json(old_root) and is_json(new_root):
        found.run(("json", old_root, new_root, "$"))
    elif old_root.tag == new_root.tag:
        found.run(("element", old_root, new_root, f"/{qualified_name(old_root, old_root.tag)}[1]"))
    else:
        found.add(
            Difference(
                f"/{qualified_name(old_root, old_root.tag)}[1]", "removed", old=_preview(old_root)
            )
        )
        found.add(
            Difference(
                f"/{qualified_name(new_root, new_root.tag)}[1]", "added", new=_preview(new_root)
            )
        )
    return found.differences


def format_differences(differences: list[Difference]) -> str:
    """One difference per line."""
    return "\n".join(str(d) for d in differences)


def _root(document: Document, what: str) -> etree._Element:
    if isinstance(document, bytes):
        return xml.parse(document, what=what).getroot()
    if isinstance(document, etree._ElementTree):
        return document.getroot()
    return document


# --- paths -------------------------------------------------------------------------


def is_json(root: etree._Element) -> bool:
    """Whether ``root`` is a document in the ``fn:json-to-xml`` vocabulary."""
    qname = etree.QName(root)
    return qname.namespace == FN_NAMESPACE and qname.localname in _FN_TYPES


def qualified_name(el: etree._Element, name: str) -> str:
    """``prefix:local`` as the document writes it; the bare local name in a default namespace."""
    qname = etree.QName(name)
    if qname.namespace is None:
        return qname.localname
    prefixes = [p for p, uri in el.nsmap.items() if uri == qname.namespace]
    if any(p for p in prefixes):
        return f"{next(p for p in prefixes if p)}:{qname.localname}"
    if None in prefixes:
        return qname.localname
    return f"{{{qname.namespace}}}{qname.localname}"


def _json_step(child: etree._Element, parent: etree._Element, index: int) -> str:
    if etree.QName(parent).localname == "array":
        return f"[{index}]"
    key = child.get("key", "")
    return f".{key}" if _JSON_NAME.match(key) else f"[{json.dumps(key, ensure_ascii=False)}]"


def walk(root: etree._Element) -> Iterator[tuple[etree._Element, str]]:
    """Every element under ``root`` (itself first) with its path, in document order.

    XPath with a position at each step (``/a[1]/b[2]``), or JSONPath for the
    ``fn:json-to-xml`` vocabulary; computed in one pass, so it costs O(n).
    """
    json_mode = is_json(root)
    first = "$" if json_mode else f"/{qualified_name(root, root.tag)}[1]"
    stack: list[tuple[etree._Element, str]] = [(root, first)]
    while stack:
        el, path = stack.pop()
        yield el, path
        children: list[tuple[etree._Element, str]] = []
        counts: dict[Any, int] = {}
        index = 0
        for child in el:
            if not isinstance(child.tag, str):
                continue
            if json_mode:
                step = _json_step(child, el, index)
            else:
                counts[child.tag] = counts.get(child.tag, 0) + 1
                step = f"/{qualified_name(child, child.tag)}[{counts[child.tag]}]"
            index += 1
            children.append((child, path + step))
        stack.extend(reversed(children))


def text_path(el: etree._Element, path: str, position: int | None) -> str:
    """The path of a text node of ``el``: ``path/text()``, ``path/text()[k]`` in mixed content.

    A JSON scalar's text is its value, so its path is the element's.
    """
    if etree.QName(el).namespace == FN_NAMESPACE and path.startswith("$"):
        return path
    return f"{path}/text()" if position is None else f"{path}/text()[{position}]"


def attribute_path(el: etree._Element, path: str, name: str) -> str:
    return f"{path}/@{qualified_name(el, name)}"


# --- comparison --------------------------------------------------------------------


def _texts(el: etree._Element) -> list[str]:
    """The text before each element child and after the last; blank between elements counts as ''.

    Comments and processing instructions are skipped, their tails joined to the text around them.
    """
    texts = [el.text or ""]
    for child in el:
        if isinstance(child.tag, str):
            texts.append(child.tail or "")
        else:
            texts[-1] += child.tail or ""
    if len(texts) > 1:
        texts = [t if t.strip() else "" for t in texts]
    return texts


def _elements(el: etree._Element) -> list[etree._Element]:
    return [c for c in el if isinstance(c.tag, str)]


Task = tuple[Any, ...]


class _Differ:
    """Walks both trees with an explicit stack: an output may nest deeper than Python recurses."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.differences: list[Difference] = []
        self._hashes: dict[etree._Element, int] = {}

    def full(self) -> bool:
        return self.limit is not None and len(self.differences) >= self.limit

    def add(self, difference: Difference) -> None:
        if not self.full():
            self.differences.append(difference)

    def digest(self, root: etree._Element) -> int:
        """A hash of the subtree, as compared: equal hashes mean nothing to report below."""
        stack = [(root, False)]
        while stack:
            el, children_done = stack.pop()
            if el in self._hashes:
                continue
            children = _elements(el)
            if not children_done:
                stack.append((el, True))
                stack.extend((c, False) for c in children if c not in self._hashes)
                continue
            if etree.QName(el).localname == "map" and etree.QName(el).namespace == FN_NAMESPACE:
                entries = frozenset((c.get("key"), self._hashes[c]) for c in children)
                self._hashes[el] = hash((el.tag, entries, el.get("key")))
            else:
                attributes = tuple(sorted(el.attrib.items()))
                below = tuple(self._hashes[c] for c in children)
                self._hashes[el] = hash((el.tag, attributes, tuple(_texts(el)), below))
        return self._hashes[root]

    def run(self, first: Task) -> None:
        """Do ``first`` and the tasks it makes, in document order, until done or full."""
        stack = [first]
        while stack and not self.full():
            task = stack.pop()
            if task[0] == "report":
                self.add(task[1])
            elif task[0] == "text":
                self._text(*task[1:])
            else:
                kind, old, new, path = task
                if self.digest(old) != self.digest(new):
                    step = self.element if kind == "element" else self.json
                    stack.extend(reversed(step(old, new, path)))

    # --- XML ---

    def element(self, old: etree._Element, new: etree._Element, path: str) -> list[Task]:
        """Reports this element's own differences; returns the tasks for its children."""
        for name in sorted(set(old.attrib) | set(new.attrib)):
            before, after = old.get(name), new.get(name)
            at = attribute_path(old if before is not None else new, path, name)
            if before is None:
                self.add(Difference(at, "added", new=_shown(after)))
            elif after is None:
                self.add(Difference(at, "removed", old=_shown(before)))
            elif before != after:
                self.add(Difference(at, "changed", *_clipped(before, after)))
        old_texts, new_texts = _texts(old), _texts(new)
        if old_texts[0] != new_texts[0]:
            position = 1 if len(old_texts) > 1 and any(old_texts[1:]) else None
            self._text(text_path(old, path, position), old_texts[0], new_texts[0])
        old_children, new_children = _elements(old), _elements(new)
        old_steps, new_steps = _steps(old_children), _steps(new_children)
        tasks: list[Task] = []
        for i, j in _align(old_children, new_children, self.digest):
            if j is None and i is not None:
                removed = Difference(path + old_steps[i], "removed", old=_preview(old_children[i]))
                tasks.append(("report", removed))
            elif i is None and j is not None:
                added = Difference(path + new_steps[j], "added", new=_preview(new_children[j]))
                tasks.append(("report", added))
            elif i is not None and j is not None:
                tasks.append(("element", old_children[i], new_children[j], path + old_steps[i]))
                if old_texts[i + 1] != new_texts[j + 1]:
                    at = text_path(old, path, _text_position(old_texts, i + 1))
                    tasks.append(("text", at, old_texts[i + 1], new_texts[j + 1]))
        return tasks

    def _text(self, at: str, before: str, after: str) -> None:
        if not before:
            self.add(Difference(at, "added", new=_shown(after)))
        elif not after:
            self.add(Difference(at, "removed", old=_shown(before)))
        else:
            self.add(Difference(at, "changed", *_clipped(before, after)))

    # --- JSON (fn:json-to-xml) ---

    def json(self, old: etree._Element, new: etree._Element, path: str) -> list[Task]:
        kind, new_kind = etree.QName(old).localname, etree.QName(new).localname
        if kind != new_kind or kind not in ("map", "array"):
            self.add(Difference(path, "changed", _json_text(old), _json_text(new)))
            return []
        if kind == "map":
            return self._json_map(old, new, path)
        return self._json_array(old, new, path)

    def _json_map(self, old: etree._Element, new: etree._Element, path: str) -> list[Task]:
        old_entries = {c.get("key", ""): c for c in reversed(_elements(old))}
        new_entries = {c.get("key", ""): c for c in reversed(_elements(new))}
        tasks: list[Task] = []
        for child in _elements(old):
            key = child.get("key", "")
            if old_entries.get(key) is not child:
                continue  # a duplicate key: fn:json-to-xml keeps the first
            at = path + _json_step(child, old, 0)
            if key in new_entries:
                tasks.append(("json", child, new_entries[key], at))
            else:
                tasks.append(("report", Difference(at, "removed", old=_json_text(child))))
        for child in _elements(new):
            key = child.get("key", "")
            if key not in old_entries and new_entries.get(key) is child:
                at = path + _json_step(child, new, 0)
                tasks.append(("report", Difference(at, "added", new=_json_text(child))))
        return tasks

    def _json_array(self, old: etree._Element, new: etree._Element, path: str) -> list[Task]:
        old_items, new_items = _elements(old), _elements(new)
        matcher = difflib.SequenceMatcher(
            a=[self.digest(c) for c in old_items],
            b=[self.digest(c) for c in new_items],
            autojunk=False,
        )
        tasks: list[Task] = []
        for op, i1, i2, j1, j2 in matcher.get_opcodes():
            if op == "equal":
                continue
            paired = min(i2 - i1, j2 - j1)
            for k in range(paired):
                tasks.append(("json", old_items[i1 + k], new_items[j1 + k], f"{path}[{i1 + k}]"))
            for i in range(i1 + paired, i2):
                removed = Difference(f"{path}[{i}]", "removed", old=_json_text(old_items[i]))
                tasks.append(("report", removed))
            for j in range(j1 + paired, j2):
                added = Difference(f"{path}[{j}]", "added", new=_json_text(new_items[j]))
                tasks.append(("report", added))
        return tasks


Pair = tuple[int | None, int | None]


def _align(
    old: list[etree._Element], new: list[etree._Element], digest: Callable[[etree._Element], int]
) -> list[Pair]:
    """Children paired for comparison, in document order; ``None`` on one side: removed or added.

    Identical subtrees pair first, then elements with the same name, attributes
    and text, then elements with the same name, in order.
    """
    if len(old) == len(new) and all(a.tag == b.tag for a, b in zip(old, new, strict=True)):
        return [(i, i) for i in range(len(old))]
    keys: list[Callable[[etree._Element], Any]] = [digest, _shallow, lambda el: el.tag]
    return _pair(old, new, 0, len(old), 0, len(new), keys)


def _pair(
    old: list[etree._Element],
    new: list[etree._Element],
    i1: int,
    i2: int,
    j1: int,
    j2: int,
    keys: list[Callable[[etree._Element], Any]],
) -> list[Pair]:
    if not keys:
        removed: list[Pair] = [(i, None) for i in range(i1, i2)]
        return removed + [(None, j) for j in range(j1, j2)]
    matcher = difflib.SequenceMatcher(
        a=[keys[0](c) for c in old[i1:i2]], b=[keys[0](c) for c in new[j1:j2]], autojunk=False
    )
    pairs: list[Pair] = []
    for op, a1, a2, b1, b2 in matcher.get_opcodes():
        if op == "equal":
            pairs.extend(zip(range(i1 + a1, i1 + a2), range(j1 + b1, j1 + b2), strict=True))
        else:
            pairs.extend(_pair(old, new, i1 + a1, i1 + a2, j1 + b1, j1 + b2, keys[1:]))
    return pairs


def _shallow(el: etree._Element) -> Any:
    return (el.tag, tuple(sorted(el.attrib.items())), el.text)


def _steps(children: list[etree._Element]) -> list[str]:
    counts: dict[Any, int] = {}
    steps = []
    for child in children:
        counts[child.tag] = counts.get(child.tag, 0) + 1
        steps.append(f"/{qualified_name(child, child.tag)}[{counts[child.tag]}]")
    return steps


def _text_position(texts: list[str], index: int) -> int:
    """The XPath position of text ``index`` among the element's non-blank text nodes."""
    return sum(1 for t in texts[:index] if t) + 1


# --- showing values ----------------------------------------------------------------


def _clip(text: str, limit: int = _SHOWN) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _shown(value: str | None) -> str:
    return repr(_clip(value or ""))


def _clipped(before: str, after: str) -> tuple[str, str]:
    """Both values, cut around their first difference when they are long."""
    common = len(_common_prefix(before, after))
    if max(len(before), len(after)) > _SHOWN and common > 20:
        before, after = "…" + before[common - 10 :], "…" + after[common - 10 :]
    return repr(_clip(before)), repr(_clip(after))


def _common_prefix(a: str, b: str) -> str:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return a[:n]


def _preview(el: etree._Element) -> str:
    """The element as XML on one line, without its tail, cut short."""
    text = etree.tostring(el, encoding="unicode", with_tail=False)
    return _clip(" ".join(text.split()))


def _json_text(el: etree._Element) -> str:
    """The subtree as compact JSON, cut short; only as much of it is read as is shown."""
    parts: list[str] = []
    size = 0
    stack: list[Any] = [el]
    while stack and size <= _SHOWN:
        item = stack.pop()
        if isinstance(item, str):
            parts.append(item)
            size += len(item)
            continue
        kind = etree.QName(item).localname
        key = item.get("key")
        prefix = "" if key is None or item is el else json.dumps(key, ensure_ascii=False) + ":"
        if kind in ("map", "array"):
            children = _elements(item)
            opening, closing = ("{", "}") if kind == "map" else ("[", "]")
            pending: list[Any] = [prefix + opening]
            for n, child in enumerate(children):
                pending.extend([",", child] if n else [child])
            pending.append(closing)
            stack.extend(reversed(pending))
        elif kind == "null":
            stack.append(prefix + "null")
        elif kind == "string":
            stack.append(prefix + json.dumps(item.text or "", ensure_ascii=False))
        else:
            stack.append(prefix + (item.text or "").strip())
    return _clip("".join(parts))
