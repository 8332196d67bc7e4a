"""Hypothesis strategies for the property tests: edXML documents and statuses, XML trees.

Example budgets: every test asks :func:`budget` for its ``max_examples``, so the
folder stays under ~30 s by default. A soak run multiplies every budget by 50
(and the ``long`` profile registered in ``conftest.py`` drops deadlines)::

    HYPOTHESIS_PROFILE=long .venv/bin/pytest tests/property
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from hypothesis import strategies as st
from lxml import etree

from lienthong import xml
from lienthong.plugins.document_axis import edxml

SOAK = os.environ.get("HYPOTHESIS_PROFILE") == "long"
REPO = Path(__file__).resolve().parents[2]
MAPPINGS = REPO / "mappings"


def budget(examples: int) -> int:
    """``examples`` for a normal run, fifty times more for a soak (HYPOTHESIS_PROFILE=long)."""
    return examples * 50 if SOAK else examples


# --- text -------------------------------------------------------------------

VIETNAMESE = [
    "Nguyễn Thị Hoà",
    "Ủy ban nhân dân tỉnh Nghệ An",
    "Sở Tài chính",
    "V/v triển khai liên thông văn bản điện tử",
    "Quyết định số 215/QĐ-UBND",
    "Đồng ý; đề nghị Văn phòng xử lý",
    "Phạm Thị Hồng Đào",
    "000.00.00.H41",
    "2026/01/16",
]
_VIET_LETTERS = (
    "aăâbcdđeêghiklmnoôơpqrstuưvxyàáảãạằắẳẵặầấẩẫậèéẻẽẹềếểễệìíỉĩịòóỏõọồốổỗộờớởỡợùúủũụừứửữựỳýỷỹỵĐƯƠ "
)


def _xml_char(c: str) -> bool:
    cp = ord(c)
    return (
        c in "\t\n\r" or 0x20 <= cp <= 0xD7FF or 0xE000 <= cp <= 0xFFFD or 0x10000 <= cp <= 0x10FFFF
    )


xml_chars = st.characters(min_codepoint=0x09, exclude_categories=("Cs",)).filter(_xml_char)

#: Text any XML document may hold: Vietnamese, markup-looking text, numbers, anything legal.
texts = st.one_of(
    st.sampled_from(VIETNAMESE),
    st.text(alphabet=_VIET_LETTERS, max_size=30),
    st.text(alphabet=xml_chars, max_size=30),
    st.sampled_from(
        [
            "",
            " ",
            "<!DOCTYPE x>",
            "&amp;lol;",
            "]]>",
            "-0",
            "1e400",
            "NaN",
            "1.250.000.000",
            "９９",
            "9" * 40,
            "\r\n",
        ]
    ),
)
optional = st.none() | texts


# --- edXML ------------------------------------------------------------------

organizations = st.builds(
    edxml.Organization, **{f.name: optional for f in dataclasses.fields(edxml.Organization)}
)
staff = st.builds(
    edxml.StaffInfo, department=optional, staff=optional, email=optional, mobile=optional
)
response_for = st.builds(
    edxml.ResponseFor,
    organ_id=optional,
    code=optional,
    promulgation_date=optional,
    document_id=optional,
)
# A TraceHeader or Receiver with no value at all is not written (there is nothing
# to say), so generated ones always carry their OrganId.
traces = st.builds(edxml.TraceHeader, organ_id=texts, timestamp=optional)
receivers = st.builds(edxml.Receiver, organ_id=texts, receiver_type=optional)
business = st.builds(
    edxml.Business,
    doc_type=optional,
    reason=optional,
    paper=optional,
    document_id=optional,
    document_info=optional,
    document_receiver=optional,
    receivers=st.none() | st.lists(receivers, max_size=3),
    replacements=st.none()
    | st.lists(
        st.builds(
            edxml.Replacement,
            document_id=optional,
            organ_ids=st.none() | st.lists(texts, max_size=3),
        ),
        max_size=2,
    ),
    staff=st.none() | staff,
)


@st.composite
def attachments(draw: st.DrawFn) -> list[edxml.Attachment]:
    """Inline attachments with distinct ContentIds (the manifest pairs them by it)."""
    ids = draw(st.lists(st.uuids(), max_size=3, unique=True))
    return [
        edxml.Attachment(
            content_id=f"cid:{ident}",
            name=draw(optional),
            description=draw(optional),
            content_type=draw(optional),
            data=draw(st.binary(max_size=300)),
            manifest_content_type=draw(optional),
            manifest_description=draw(optional),
        )
        for ident in ids
    ]


documents = st.builds(
    edxml.Document,
    sender=organizations,
    recipients=st.lists(organizations, min_size=1, max_size=4),
    document_id=optional,
    code_number=optional,
    code_notation=optional,
    place=optional,
    promulgation_date=optional,
    document_type=optional,
    type_detail=optional,
    type_name=optional,
    subject=optional,
    content=optional,
    signer=st.none()
    | st.builds(edxml.Signer, competence=optional, position=optional, full_name=optional),
    due_date=optional,
    to_places=st.none() | st.lists(texts, max_size=3),
    other_info=st.none()
    | st.builds(
        edxml.OtherInfo,
        priority=optional,
        sphere=optional,
        typer_notation=optional,
        promulgation_amount=optional,
        page_amount=optional,
        direction=optional,
        appendixes=st.none() | st.lists(texts, max_size=3),
    ),
    response_for=st.none() | response_for,
    steering_type=optional,
    trace_headers=st.lists(traces, max_size=3),
    business=st.none() | business,
    attachments=attachments(),
)

# A status is told from a document by its StatusCode, so a status always has one.
statuses = st.builds(
    edxml.Status,
    sender=organizations,
    response_for=response_for,
    staff=st.none() | staff,
    status_code=texts | st.sampled_from(sorted(edxml.STATUS_MEANINGS)),
    description=optional,
    timestamp=optional,
)


# --- XML trees ----------------------------------------------------------------


def _vocabulary() -> tuple[list[tuple[str | None, str]], list[str]]:
    """Element and attribute names of every mapping case input, so trees reach real templates."""
    names: set[tuple[str | None, str]] = set()
    attributes: set[str] = set()
    for path in MAPPINGS.rglob("input.xml"):
        for element in xml.parse_file(path).iter():
            if isinstance(element.tag, str):
                q = etree.QName(element)
                names.add((q.namespace, q.localname))
                attributes.update(etree.QName(a).localname for a in element.attrib)
    return sorted(names, key=str), sorted(attributes)


KNOWN_NAMES, KNOWN_ATTRIBUTES = _vocabulary()
NAMESPACES = sorted({ns for ns, _ in KNOWN_NAMES if ns}) + [
    "urn:x:ng%C3%B4n-ng%E1%BB%AF",
    "http://www.w3.org/1999/XSL/Transform",
    "http://exslt.org/common",
    "",
]


def _valid_name(name: str) -> bool:
    try:
        etree.Element(name)
    except ValueError:
        return False
    return ":" not in name and not name.lower().startswith("xml")


odd_names = st.from_regex(
    r"[A-Za-z_\u00C0-\u1EF9][A-Za-z0-9_.\-\u00B7\u00C0-\u1EF9]{0,12}", fullmatch=True
).filter(_valid_name)
qnames = st.one_of(
    st.sampled_from(KNOWN_NAMES),
    st.tuples(st.sampled_from([None, *NAMESPACES]), st.sampled_from([n for _, n in KNOWN_NAMES])),
    st.tuples(st.sampled_from([None, *NAMESPACES]), odd_names),
)
attribute_maps = st.dictionaries(
    st.one_of(st.sampled_from(KNOWN_ATTRIBUTES), odd_names), texts, max_size=3
)
_leaf = st.tuples(qnames, attribute_maps, optional, st.just(()), optional)
nodes = st.recursive(
    _leaf,
    lambda children: st.tuples(
        qnames, attribute_maps, optional, st.lists(children, max_size=4).map(tuple), optional
    ),
    max_leaves=30,
)


def to_element(node: tuple) -> etree._Element:
    """A generated node ``((ns, name), attributes, text, children, tail)`` as an lxml element."""
    (namespace, name), attributes, text, children, tail = node
    element = etree.Element(etree.QName(namespace or None, name))
    for key, value in attributes.items():
        element.set(key, value)
    element.text = text
    for child in children:
        element.append(to_element(child))
    element.tail = tail
    return element


def _document(node: tuple) -> bytes:
    root = to_element(node)
    root.tail = None  # text after the root element would be a second top-level node
    return xml.serialize(root)


xml_documents = nodes.map(_document)
