"""Field lineage: which input node each output value of a mapping was taken from.

Nothing is asked of the mapping's author. The mapping runs on copies of the
input in which values carry invisible markers (characters of Unicode's private
use area, or whitespace), and each output value is read for the markers it
holds: one marker, one source (``copy``, or ``derived`` when the text around
it changed); several, several sources (concatenation); none, ``computed``.

A marker is *appended* to the value (before any trailing whitespace), not put
in its place, so string functions still see the real text: ``concat``,
``translate`` and ``normalize-space`` keep the marker, and ``contains``,
``starts-with`` and string sorting give the same answers. Where a marked value
would change what the mapping does (compared with a literal, used as a number,
a grouping key, a sort key), the marked run comes out different. So every
marked run is checked: with its markers taken out, its output must equal the
plain run's output exactly, or the markers it tried are dropped. The values
that break a run are found by bisection and tried again with other kinds of
marker, in this order:

1. ``value<TAB><marker>``: sorts like the value (a tab sorts below any other
   character), survives ``normalize-space`` (as a space);
2. ``value<marker>``: no whitespace, for mappings that split text into words;
3. ``value<CR><bits in TAB/LF><CR>`` for numbers: XPath's ``number()`` ignores
   the whitespace, so ``sum``, numeric comparisons and numeric sorting still work;
4. one shared marker for all equal values (after ``normalize-space``), tab then
   glued, so grouping, ``key()`` lookups and comparisons between input values
   still match: a value traced this way came from one of those equal nodes
   (``alike``).

A value that breaks every kind (a status compared with a literal, say) stays
unmarked; an output equal to it is ``matched`` to it. An output with no marker
is ``computed`` (a count, a constant, arithmetic, a substring, a formatted
number), and names the inputs it is computed from: those whose change alone,
to a value of the same shape, changes it. Params are traced like input values
and named ``$name``. A value that differs between two plain runs
(``generate-id()``, a clock) is ``computed``.
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Callable, Iterable
from collections.abc import Mapping as MappingType
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from . import xml
from .errors import LienthongError, RejectedError
from .mapping import Mapping
from .xmldiff import FN_NAMESPACE, FN_STRUCTURE_ATTRIBUTES, attribute_path, text_path, walk

_OPEN, _GLUED, _CLOSE = "\ue000", "\ue002", "\ue001"
_DIGIT0 = 0xE010
_PRIVATE = re.compile("[\ue000-\ue01f]")
_MARKER = re.compile("(?:[\t ]?\ue000|\ue002)([\ue010-\ue01f]+)\ue001")
_NUMBER = re.compile(r"^[ \t\r\n]*-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[ \t\r\n]*$")
_MAX_RUNS = 5000

log = logging.getLogger(__name__)


class LineageError(RejectedError):
    """Lineage cannot be traced for this mapping and input; the message says why."""


@dataclass(frozen=True)
class Origin:
    """Where one output value came from.

    ``how`` is 'copy' (the value of its one source, unchanged), 'derived' (built
    from its sources: joined, translated, trimmed...), 'matched' (no marker got
    through, but the value equals that of an input value the mapping tests, so
    it is most likely a copy of it) or 'computed' (no input value in it).
    ``alike`` means the sources are equal values: the value is any one of them.
    """

    path: str
    value: str
    how: str
    sources: tuple[str, ...] = ()
    alike: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "value": self.value,
            "how": self.how,
            "sources": list(self.sources),
            "alike": self.alike,
        }


@dataclass
class _Slot:
    """One value of the input that can carry a marker: a text node, an attribute or a param."""

    path: str
    value: str
    node: int = -1  # index in the input's iter() order
    attribute: str | None = None  # the attribute's name; None for text
    tail: bool = False  # the text after node (mixed content) rather than its first text
    param: str | None = None


@dataclass
class _Entry:
    """One node of an output, flattened: what the cleanliness check compares.

    ``key`` names the place (an element's path and which of its texts), the same
    in every run; ``path`` is the XPath shown, which counts only the texts present.
    """

    kind: str  # 'element', 'attribute', 'text', 'other'
    key: str
    value: str
    path: str = ""


@dataclass
class _Run:
    marks: dict[int, str] = field(default_factory=dict)
    entries: list[_Entry] = field(default_factory=list)


def lineage(
    mapping: Mapping,
    source: bytes | etree._ElementTree,
    params: MappingType[str, str] | None = None,
) -> list[Origin]:
    """For each text and attribute value of ``mapping``'s output, the input node(s) it came from."""
    tree = source if isinstance(source, etree._ElementTree) else xml.parse(source, what="input")
    return _Tracer(mapping, tree, dict(params or {})).trace()


def format_lineage(origins: Iterable[Origin]) -> str:
    """One line per output value: path, value, and where it came from."""
    lines = []
    for origin in origins:
        value = origin.value if len(origin.value) <= 40 else origin.value[:39] + "…"
        shown = list(origin.sources[:4])
        if len(origin.sources) > 4:
            shown.append(f"{len(origin.sources) - 4} more")
        joined = ", ".join(shown)
        if origin.how == "computed":
            where = f"computed from {joined}" if joined else "computed"
        else:
            where = f"{'one of ' if origin.alike else ''}{joined} ({origin.how})"
        lines.append(f"{origin.path} = {value!r} <- {where}")
    return "\n".join(lines)


class _Tracer:
    def __init__(self, mapping: Mapping, tree: etree._ElementTree, params: dict[str, str]) -> None:
        self.mapping = mapping
        self.tree = tree
        self.params = params
        self.slots = _slots(tree, params)
        for slot in self.slots:
            if _PRIVATE.search(slot.value):
                raise LineageError(
                    f"{slot.path} holds characters U+E000-U+E01F (private use), which lineage "
                    "uses as markers. Hint: trace an input without them"
                )
        self.width = max(1, len(f"{len(self.slots) * 2:x}"))
        self.bits = max(1, (len(self.slots) * 2).bit_length())
        self.number_marker = re.compile(f"\r([\t\n]{{{self.bits}}})\r")
        self.groups: dict[int, list[int]] = {}  # shared marker id -> the slots holding it
        self.group_of: dict[int, int] = {}
        self.plain: list[_Entry] = []
        self.volatile: set[int] = set()
        self.influenced: dict[int, list[int]] | None = None
        self.runs = 0

    # --- markers ---

    def _code(self, number: int) -> str:
        return "".join(chr(_DIGIT0 + int(d, 16)) for d in f"{number:0{self.width}x}")

    def _number_code(self, number: int) -> str:
        return "\r" + f"{number:0{self.bits}b}".replace("0", "\t").replace("1", "\n") + "\r"

    def _put(self, slot: int, marker: str) -> str:
        # Before trailing whitespace, so that normalize-space leaves the marker on the last word.
        value = self.slots[slot].value
        core = value.rstrip(" \t\r\n")
        return core + marker + value[len(core) :]

    def tab(self, slot: int) -> str:
        return self._put(slot, f"\t{_OPEN}{self._code(slot)}{_CLOSE}")

    def glued(self, slot: int) -> str:
        return self._put(slot, f"{_GLUED}{self._code(slot)}{_CLOSE}")

    def numeric(self, slot: int) -> str:
        return self.slots[slot].value + self._number_code(slot)

    def shared_tab(self, slot: int) -> str:
        return self._put(slot, f"\t{_OPEN}{self._code(self.group_of[slot])}{_CLOSE}")

    def shared_glued(self, slot: int) -> str:
        return self._put(slot, f"{_GLUED}{self._code(self.group_of[slot])}{_CLOSE}")

    def _demark(self, text: str) -> tuple[str, list[int]]:
        """The text without markers, and the marker ids found in it, in order."""
        found: list[int] = []

        def take(match: re.Match[str]) -> str:
            found.append(int("".join(f"{ord(c) - _DIGIT0:x}" for c in match.group(1)), 16))
            return ""

        text = _MARKER.sub(take, text)
        if "\r" in text:

            def take_number(match: re.Match[str]) -> str:
                found.append(int(match.group(1).replace("\t", "0").replace("\n", "1"), 2))
                return ""

            text = self.number_marker.sub(take_number, text)
        return text, found

    # --- runs ---

    def _apply(self, marks: dict[int, str], *, quiet: bool = True) -> list[_Entry] | None:
        tree = copy.deepcopy(self.tree)
        nodes = list(tree.iter())
        params = dict(self.params)
        for slot_id, text in marks.items():
            slot = self.slots[slot_id]
            if slot.param is not None:
                params[slot.param] = text
            elif slot.attribute is not None:
                nodes[slot.node].set(slot.attribute, text)
            elif slot.tail:
                nodes[slot.node].tail = text
            else:
                nodes[slot.node].text = text
        self.runs += 1
        try:
            result = self.mapping.apply(tree, params, quiet=quiet)
        except LienthongError:
            if not marks:
                raise
            return None
        return _flatten(result)

    def _clean(self, entries: list[_Entry] | None) -> bool:
        """Whether a marked run's output, markers taken out, is the plain output exactly."""
        if entries is None or len(entries) != len(self.plain):
            return False
        for i, (marked, plain) in enumerate(zip(entries, self.plain, strict=True)):
            if marked.kind != plain.kind or marked.key != plain.key:
                return False
            if i not in self.volatile and self._demark(marked.value)[0] != plain.value:
                return False
        return True

    def _grow(self, best: _Run, units: list[list[int]], style: Callable[[int], str]) -> _Run:
        """``best`` plus as many of ``units`` as keep the output clean, found by bisection."""
        if not units or self.runs >= _MAX_RUNS:
            return best
        marks = dict(best.marks)
        for unit in units:
            for slot in unit:
                marks[slot] = style(slot)
        entries = self._apply(marks)
        if self._clean(entries):
            assert entries is not None
            return _Run(marks, entries)
        if len(units) == 1:
            return best
        half = len(units) // 2
        return self._grow(self._grow(best, units[:half], style), units[half:], style)

    def trace(self) -> list[Origin]:
        self.plain = self._apply({}, quiet=False) or []
        again = self._apply({}) or []
        if [(e.kind, e.key) for e in again] != [(e.kind, e.key) for e in self.plain]:
            raise LineageError(
                f"mapping '{self.mapping.name}' gives outputs of different shapes on the same "
                "input; lineage needs a mapping whose output depends only on its input"
            )
        self.volatile = {
            i for i, (a, b) in enumerate(zip(again, self.plain, strict=True)) if a.value != b.value
        }
        best = _Run({}, self.plain)
        best = self._grow(best, [[i] for i in range(len(self.slots))], self.tab)
        best = self._grow(best, self._left(best), self.glued)
        numbers = [u for u in self._left(best) if _NUMBER.match(self.slots[u[0]].value)]
        best = self._grow(best, numbers, self.numeric)
        best = self._grow(best, self._alike(best), self.shared_tab)
        best = self._grow(best, self._alike(best), self.shared_glued)
        if self.runs >= _MAX_RUNS:
            log.warning(
                "lineage of '%s': stopped after %d runs; values not traced yet show as computed",
                self.mapping.name,
                self.runs,
            )
        return self._read(best)

    def _left(self, best: _Run) -> list[list[int]]:
        return [[i] for i in range(len(self.slots)) if i not in best.marks]

    def _alike(self, best: _Run) -> list[list[int]]:
        """The unmarked values grouped by their normalized text, groups of two or more."""
        by_value: dict[str, list[int]] = {}
        for i in range(len(self.slots)):
            if i not in best.marks:
                by_value.setdefault(" ".join(self.slots[i].value.split()), []).append(i)
        groups = [g for g in by_value.values() if len(g) > 1]
        for group in groups:
            number = self.group_of.get(group[0], len(self.slots) + len(self.groups))
            self.groups[number] = group
            for slot in group:
                self.group_of[slot] = number
        return groups

    # --- reading ---

    def _influences(self) -> dict[int, list[int]]:
        """For each output value, the input values that change it when they change alone.

        Each input value in turn is replaced by one of the same shape (digits by
        digits, letters by letters, the rest kept); a run whose output keeps its
        shape tells which values a substring, a sum or a format depends on.
        """
        if self.influenced is None:
            self.influenced = {}
            for slot in range(len(self.slots)):
                changed = _perturbed(self.slots[slot].value)
                if changed == self.slots[slot].value or self.runs >= _MAX_RUNS:
                    continue
                entries = self._apply({slot: changed})
                if entries is None or [e.key for e in entries] != [e.key for e in self.plain]:
                    continue
                for i, (after, before) in enumerate(zip(entries, self.plain, strict=True)):
                    if after.value != before.value and i not in self.volatile:
                        self.influenced.setdefault(i, []).append(slot)
        return self.influenced

    def _matched(self, plain: _Entry, best: _Run) -> Origin | None:
        """An untraced value equal to a value no marker could follow (one the mapping tests)."""
        wanted = " ".join(plain.value.split())
        sources = tuple(
            slot.path
            for i, slot in enumerate(self.slots)
            if i not in best.marks and " ".join(slot.value.split()) == wanted
        )
        if not sources:
            return None
        return Origin(plain.path, plain.value, "matched", sources, len(sources) > 1)

    def _read(self, best: _Run) -> list[Origin]:
        origins = []
        for i, (entry, plain) in enumerate(zip(best.entries, self.plain, strict=True)):
            if entry.kind not in ("attribute", "text"):
                continue
            if entry.kind == "text" and not plain.value.strip():
                continue
            if i in self.volatile:
                origins.append(Origin(plain.path, plain.value, "computed"))
                continue
            found = self._demark(entry.value)[1]
            if not found:
                matched = self._matched(plain, best)
                if matched is None:
                    inputs = tuple(self.slots[s].path for s in self._influences().get(i, []))
                    matched = Origin(plain.path, plain.value, "computed", inputs)
                origins.append(matched)
                continue
            sources: list[str] = []
            values: list[str] = []
            alike = False
            for marker in found:
                members = self.groups.get(marker, [marker])
                alike = alike or len(members) > 1
                for slot in members:
                    if self.slots[slot].path not in sources:
                        sources.append(self.slots[slot].path)
                        values.append(self.slots[slot].value)
            single = len(found) == 1 and plain.value in values
            how = "copy" if single else "derived"
            origins.append(Origin(plain.path, plain.value, how, tuple(sources), alike))
        return origins


def _perturbed(value: str) -> str:
    """``value`` with each digit and letter changed, every other character kept."""
    out = []
    for c in value:
        if c.isdigit() and c.isascii():
            out.append(str((int(c) + 1) % 10))
        elif c.isalpha():
            swap = "X" if c.isupper() else "x"
            out.append(swap if c not in "Xx" else chr(ord(swap) + 1))
        else:
            out.append(c)
    return "".join(out)


def _slots(tree: etree._ElementTree, params: dict[str, str]) -> list[_Slot]:
    """Every non-blank text and every attribute value of the input, and each param."""
    slots: list[_Slot] = []
    index = {node: i for i, node in enumerate(tree.iter())}
    for el, path in walk(tree.getroot()):
        json_scalar = etree.QName(el).namespace == FN_NAMESPACE and path.startswith("$")
        for name, value in el.attrib.items():
            if json_scalar and name in FN_STRUCTURE_ATTRIBUTES:
                continue
            slots.append(_Slot(attribute_path(el, path, name), value, index[el], attribute=name))
        texts = [(el.text, False, el)] + [(child.tail, True, child) for child in el]
        mixed = sum(1 for text, _, _ in texts if text and text.strip()) > 1
        position = 0
        for text, tail, owner in texts:
            if text is None:
                continue
            position += 1
            if text.strip():
                at = text_path(el, path, position if mixed else None)
                slots.append(_Slot(at, text, index[owner], tail=tail))
    for name, value in params.items():
        slots.append(_Slot(f"${name}", value, param=name))
    return slots


def _flatten(result: etree._ElementTree) -> list[_Entry]:
    """The output as a list of its elements, attributes, texts, comments and PIs."""
    entries: list[_Entry] = []
    for el, path in walk(result.getroot()):
        entries.append(_Entry("element", path, ""))
        json_node = etree.QName(el).namespace == FN_NAMESPACE and path.startswith("$")
        for name, value in el.attrib.items():
            kind = "other" if json_node and name in FN_STRUCTURE_ATTRIBUTES else "attribute"
            at = attribute_path(el, path, name)
            entries.append(_Entry(kind, at, value, at))
        texts = [el.text or ""] + [child.tail or "" for child in el]
        mixed = sum(1 for text in texts if text.strip()) > 1
        position = 0
        for number, text in enumerate(texts):
            position += 1 if text else 0
            shown = text_path(el, path, position if mixed else None)
            entries.append(_Entry("text", f"{path}#{number}", text, shown))
        for number, child in enumerate(el):
            if not isinstance(child.tag, str):
                entries.append(_Entry("other", f"{path}#node{number}", child.text or ""))
    return entries
