"""Check edXML against the project's XSD and the format's semantic rules, listing every problem.

Features:
- one pass returns every problem, each with the element path
  (``/edXML/edXMLEnvelope/.../To[2]/OrganId``), its line and a message that
  shows the bad value;
- XSD structure from ``mappings/schemas/edxml.xsd`` (the project's own: no
  official schema is public);
- the rules public integrators apply: ``To`` and ``Subject`` present, dates
  ``yyyy/MM/dd`` and not in the future, ``Type`` 1 or 2, ``Priority`` 0-4,
  counts >= 0, OrganId shape, manifest and attachments paired, known
  ``StatusCode``, ``ResponseFor/DocumentId`` on a status;
- every attachment opened as a receiver would (names, raw size, ZIP entries,
  zip bombs, links): the adapter's intake and ``lienthong edxml validate`` run
  this one function, so they cannot disagree;
- values read as all their text nodes (:func:`.edxml.text_of`): a comment
  cannot hide part of a name or of an attachment from these checks;
- what real senders get wrong but receivers accept (a ``TraceHeader`` without
  ``OrganId``, as the vendor parser allows) is a warning, not an error;
- input that is not well-formed gives a single problem with line and column;
  an undeclared namespace prefix is named, with the fix.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from lxml import etree

import lienthong.mappings
from lienthong.errors import RejectedError
from lienthong.xml import DEFAULT_MAX_BYTES, XmlRejected, load_schema, parse

from .edxml import (
    DATE_FORMAT,
    NS,
    STATUS_MEANINGS,
    TIMESTAMP_FORMAT,
    Attachment,
    axis_today,
    text_of,
)

#: The adapter's default ``max_attachment_bytes``: the largest attachment, zipped or opened.
DEFAULT_ATTACHMENT_BYTES = 10 * 1024 * 1024
ERROR = "error"
WARNING = "warning"

SCHEMA_PATH = Path(lienthong.mappings.__file__).parent / "schemas" / "edxml.xsd"

_Q = f"{{{NS}}}"
# Agency codes: up to four dot-separated groups of letters and digits, e.g.
# 000.00.00.H15 (current) or 01.02.G22 (older, still seen in trace headers).
_ORGAN_ID = re.compile(r"[0-9A-Za-z]{1,10}(\.[0-9A-Za-z]{1,10}){1,3}")
_DATE = re.compile(r"\d{4}/\d{2}/\d{2}")
_TIMESTAMP = re.compile(r"\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}")
_UNBOUND_PREFIX = re.compile(r"Namespace prefix (\S+) (?:for (\S+) )?on (\S+) is not defined")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a message, and where."""

    path: str
    line: int | None
    message: str
    column: int | None = None
    severity: str = ERROR

    @property
    def is_error(self) -> bool:
        return self.severity == ERROR

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        level = "warning: " if not self.is_error else ""
        return f"{where}{level}{self.path}: {self.message}"


def errors(problems: list[Problem]) -> list[Problem]:
    """The problems that make a message invalid (warnings left out)."""
    return [p for p in problems if p.is_error]


def path_of(element: etree._Element) -> str:
    """A readable path with local names and 1-based indexes where a name repeats."""
    steps = []
    node: etree._Element | None = element
    while node is not None:
        name = etree.QName(node).localname
        parent = node.getparent()
        if parent is not None:
            same = [c for c in parent if c.tag == node.tag]
            if len(same) > 1:
                name += f"[{same.index(node) + 1}]"
        steps.append(name)
        node = parent
    return "/" + "/".join(reversed(steps))


def check(
    data: bytes,
    *,
    now: date | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_attachment_bytes: int = DEFAULT_ATTACHMENT_BYTES,
) -> list[Problem]:
    """Every problem in ``data``, errors and warnings; no error means the message is valid.

    ``now`` is the day dates must not be after (today in Vietnam by default);
    ``max_attachment_bytes`` bounds each attachment, zipped and opened.
    """
    try:
        tree = parse(data, max_bytes=max_bytes, what="edXML message")
    except XmlRejected as exc:
        return [parse_problem(exc)]
    return check_tree(tree, now=now, max_attachment_bytes=max_attachment_bytes)


def parse_problem(exc: XmlRejected) -> Problem:
    """The one problem of bytes the hardened parser refused, with its line and column."""
    cause = exc.__cause__
    if isinstance(cause, etree.XMLSyntaxError):
        return _syntax_problem(cause)
    return Problem("/", None, str(exc))


def check_tree(
    tree: etree._ElementTree,
    *,
    now: date | None = None,
    max_attachment_bytes: int = DEFAULT_ATTACHMENT_BYTES,
    decoded: Sequence[bytes] | None = None,
) -> list[Problem]:
    """Every problem in an already parsed message: :func:`check` without the parse.

    ``decoded`` is each ``AttachmentEncoded/Attachment``'s decoded bytes in
    document order, when the caller has them (``edxml.read_root`` decodes them
    for the model): they are checked as they are, not decoded a second time.
    """
    root = tree.getroot()
    if root.tag != _Q + "edXML":
        return [
            Problem(
                path_of(root),
                root.sourceline,
                f"root element is {root.tag!r}; edXML needs 'edXML' in namespace {NS!r}. "
                "Hint: the sender must use the QCVN 102:2016 namespace on every element.",
            )
        ]
    problems = _schema_problems(tree)
    problems += _Rules(root, now or axis_today(), max_attachment_bytes, decoded).run()
    return sorted(problems, key=lambda p: (p.line or 0, p.path))


def _syntax_problem(cause: etree.XMLSyntaxError) -> Problem:
    line, column = cause.position
    unbound = _UNBOUND_PREFIX.search(cause.msg)
    if unbound:
        prefix, attribute, element = unbound.groups()
        on = f"attribute {attribute} of {element}" if attribute else f"element {element}"
        return Problem(
            "/",
            line,
            f"undeclared namespace prefix {prefix!r} on {on} (line {line}, column {column}). "
            f'Hint: the sender must declare it (xmlns:{prefix}="..."); XML with an unbound '
            "prefix is not namespace-well-formed and cannot be canonicalised for a signature",
            column,
        )
    where = "" if "column" in cause.msg else f" (line {line}, column {column})"
    return Problem("/", line, f"not well-formed XML: {cause.msg}{where}", column)


@functools.cache
def _schema() -> etree.XMLSchema:
    # Held here: load_schema resolves its path on every call, a tenth of a
    # millisecond of system calls per message for a file that does not move.
    return load_schema(SCHEMA_PATH)


def _schema_problems(tree: etree._ElementTree) -> list[Problem]:
    schema = _schema()
    if schema.validate(tree):
        return []
    problems = []
    for entry in schema.error_log:  # type: ignore[attr-defined]
        path = entry.path
        try:
            found = tree.xpath(path, namespaces={"edXML": NS})
            if isinstance(found, list) and found and isinstance(found[0], etree._Element):
                path = path_of(found[0])
        except etree.XPathError:
            pass
        message = entry.message.replace(_Q, "")
        problems.append(Problem(path, entry.line, f"schema: {message}"))
    return problems


class _Rules:
    def __init__(
        self,
        root: etree._Element,
        today: date,
        max_attachment_bytes: int,
        decoded: Sequence[bytes] | None = None,
    ) -> None:
        self.root = root
        self.today = today
        self.max_attachment_bytes = max_attachment_bytes
        self.decoded = decoded
        self.problems: list[Problem] = []

    def add(self, element: etree._Element, message: str, severity: str = ERROR) -> None:
        self.problems.append(
            Problem(path_of(element), element.sourceline, message, severity=severity)
        )

    def run(self) -> list[Problem]:
        header = self.root.find(f"{_Q}edXMLEnvelope/{_Q}edXMLHeader/{_Q}MessageHeader")
        if header is None:
            return self.problems  # the schema has already said so
        for organ_id in self.root.iter(_Q + "OrganId"):
            self.organ_id(organ_id)
        if header.find(_Q + "StatusCode") is not None:
            self.status(header)
        else:
            self.document(header)
        return self.problems

    # -- shared

    def organ_id(self, element: etree._Element) -> None:
        value = text_of(element).strip()
        parent = element.getparent()
        if not value and parent is not None and parent.tag == _Q + "ResponseFor":
            return  # documents may carry an empty ResponseFor
        if parent is not None and parent.tag == _Q + "TraceHeader" and value in ("", "null"):
            return  # trace() warns about it
        if not _ORGAN_ID.fullmatch(value):
            self.add(
                element,
                f"OrganId {value!r} is not an agency code: expected up to 4 dot-separated "
                "groups of letters and digits, e.g. '000.00.00.H15'.",
            )

    def date(self, element: etree._Element | None, *, past: bool, required: bool = False) -> None:
        if element is None:
            return
        value = text_of(element).strip()
        name = etree.QName(element).localname
        if not value:
            if required:
                self.add(element, f"{name} is empty; expected a date yyyy/MM/dd.")
            return
        if not _DATE.fullmatch(value):
            self.add(element, f"{name} {value!r} is not a date in the form yyyy/MM/dd.")
            return
        try:
            day = datetime.strptime(value, DATE_FORMAT).date()
        except ValueError:
            self.add(element, f"{name} {value!r} is not a real calendar date.")
            return
        if past and day > self.today:
            self.add(element, f"{name} {value} is in the future (today is {self.today:%Y/%m/%d}).")

    def timestamp(self, element: etree._Element | None) -> None:
        if element is None:
            return
        value = text_of(element).strip()
        name = etree.QName(element).localname
        try:
            if not _TIMESTAMP.fullmatch(value):
                raise ValueError(value)
            datetime.strptime(value, TIMESTAMP_FORMAT)
        except ValueError:
            self.add(element, f"{name} {value!r} is not a time in the form yyyy/MM/dd HH:mm:ss.")

    def integer(self, element: etree._Element | None, low: int, high: int | None = None) -> None:
        if element is None:
            return
        value = text_of(element).strip()
        name = etree.QName(element).localname
        expected = f"{low} to {high}" if high is not None else f"a whole number >= {low}"
        try:
            number = int(value)
        except ValueError:
            self.add(element, f"{name} {value!r} is not a whole number; expected {expected}.")
            return
        if number < low or (high is not None and number > high):
            self.add(element, f"{name} is {number}; expected {expected}.")

    def required_text(self, parent: etree._Element, name: str, why: str) -> None:
        element = parent.find(_Q + name)
        if element is None:
            self.problems.append(
                Problem(
                    path_of(parent) + "/" + name, parent.sourceline, f"{name} is missing: {why}"
                )
            )
        elif not text_of(element).strip():
            self.add(element, f"{name} is empty: {why}")

    # -- status

    def status(self, header: etree._Element) -> None:
        code = header.find(_Q + "StatusCode")
        assert code is not None
        value = text_of(code).strip()
        if value not in STATUS_MEANINGS:
            known = ", ".join(STATUS_MEANINGS)
            self.add(code, f"StatusCode {value!r} is not a known status; known: {known}.")
        if header.find(_Q + "From") is None:
            self.add(header, "From is missing: a status names the agency that sends it.")
        response = header.find(_Q + "ResponseFor")
        if response is None:
            self.problems.append(
                Problem(
                    path_of(header) + "/ResponseFor",
                    header.sourceline,
                    "ResponseFor is missing: a status must say which document it is about.",
                )
            )
        else:
            self.required_text(
                response, "DocumentId", "a status must name the document it is about."
            )
            self.date(response.find(_Q + "PromulgationDate"), past=True)
        self.timestamp(header.find(_Q + "Timestamp"))

    # -- document

    def document(self, header: etree._Element) -> None:
        if header.find(_Q + "From") is None:
            self.add(header, "From is missing: a document names the agency that sends it.")
        if header.find(_Q + "To") is None:
            self.add(header, "To is missing: a document needs at least one recipient agency.")
        self.required_text(header, "Subject", "every document needs a subject (trích yếu).")
        promulgation = header.find(_Q + "PromulgationInfo")
        if promulgation is not None:
            self.date(promulgation.find(_Q + "PromulgationDate"), past=True, required=True)
        self.date(header.find(_Q + "DueDate"), past=False)
        response = header.find(_Q + "ResponseFor")
        if response is not None:
            self.date(response.find(_Q + "PromulgationDate"), past=True)
        doc_type = header.find(f"{_Q}DocumentType/{_Q}Type")
        if doc_type is not None and text_of(doc_type).strip() not in ("1", "2"):
            self.add(doc_type, f"Type {text_of(doc_type).strip()!r} must be 1 or 2.")
        other = header.find(_Q + "OtherInfo")
        if other is not None:
            self.integer(other.find(_Q + "Priority"), 0, 4)
            self.integer(other.find(_Q + "PromulgationAmount"), 0)
            self.integer(other.find(_Q + "PageAmount"), 0)
        traces = header.getparent().find(_Q + "TraceHeaderList")  # type: ignore[union-attr]
        if traces is not None:
            for trace in traces.iterfind(_Q + "TraceHeader"):
                self.trace(trace)
            businesses = traces.findall(_Q + "Bussiness")
            for extra in businesses[1:]:
                self.add(extra, "a second Bussiness: a document has one (what it does).")
            business_type = traces.find(f"{_Q}Bussiness/{_Q}BussinessDocType")
            if business_type is not None:
                self.integer(business_type, 0, 3)
        self.attachments()

    def trace(self, trace: etree._Element) -> None:
        self.timestamp(trace.find(_Q + "Timestamp"))
        organ = trace.find(_Q + "OrganId")
        value = text_of(organ).strip() if organ is not None else ""
        if value in ("", "null"):
            self.add(
                trace if organ is None else organ,
                f"TraceHeader names no agency (OrganId {value or 'missing'!r}); accepted, as "
                "the vendor parser accepts it, but the hop cannot be traced.",
                WARNING,
            )

    def attachments(self) -> None:
        references = self.root.findall(
            f"{_Q}edXMLEnvelope/{_Q}edXMLBody/{_Q}edXMLManifest/{_Q}Reference"
        )
        attachments = self.root.findall(f"{_Q}AttachmentEncoded/{_Q}Attachment")
        listed = {_field(r, "ContentId").strip(): r for r in references}
        carried: set[str] = set()
        for index, attachment in enumerate(attachments):
            content_id = _field(attachment, "ContentId").strip()
            if content_id in carried:
                # A receiver keyed by ContentId would take one and not the other: each is
                # checked below, but the sender must not make them ambiguous.
                self.add(
                    attachment,
                    f"a second Attachment with ContentId {content_id!r}. Hint: give every "
                    "attachment its own ContentId.",
                )
            carried.add(content_id)
            reference = listed.get(content_id)
            if reference is None:
                self.add(
                    attachment,
                    f"Attachment {content_id!r} is not listed in edXMLManifest. "
                    "Hint: add a manifest Reference with the same ContentId.",
                )
            self.attachment(content_id, attachment, reference, index)
        for content_id, reference in listed.items():
            if content_id not in carried:
                self.add(
                    reference,
                    f"manifest Reference {content_id!r} has no Attachment with that ContentId. "
                    "Hint: include the attachment in AttachmentEncoded or drop the Reference.",
                )

    def attachment(
        self,
        content_id: str,
        element: etree._Element,
        reference: etree._Element | None,
        index: int,
    ) -> None:
        """Open the attachment the way a receiver will, and report what would hurt it."""
        encoded = element.find(_Q + "ContentTransferEncoded")
        if encoded is None:
            return  # the schema has already said so
        name = _optional(element, "AttachmentName")
        limit = self.max_attachment_bytes
        if self.decoded is not None and index < len(self.decoded):
            data = self.decoded[index]
            if len(data) > limit:
                self.add(encoded, _over_limit(content_id, name, len(data), limit))
                return
        else:
            text = text_of(encoded)
            if len(text) * 3 // 4 > limit:
                size = len("".join(text.split())) * 3 // 4
                if size > limit:
                    self.add(encoded, _over_limit(content_id, name, size, limit))
                    return
            try:
                data = Attachment.decode(text, what=f"Attachment {content_id!r}")
            except RejectedError as exc:
                self.add(encoded, str(exc))
                return
        attachment = Attachment(
            content_id,
            name,
            content_type=_optional(element, "ContentType"),
            data=data,
            manifest_name=None if reference is None else _optional(reference, "AttachmentName"),
        )
        try:
            attachment.check(limit)
        except RejectedError as exc:
            self.add(element, str(exc))


def _over_limit(content_id: str, name: str | None, size: int, limit: int) -> str:
    return (
        f"attachment {content_id!r} ({name!r}) is about {size:,} bytes, over "
        f"max_attachment_bytes {limit:,}. Hint: raise it if such files are expected."
    )


def _field(parent: etree._Element, name: str) -> str:
    child = parent.find(_Q + name)
    return "" if child is None else text_of(child)


def _optional(parent: etree._Element, name: str) -> str | None:
    child = parent.find(_Q + name)
    return None if child is None else text_of(child)
