"""edXML build and read agree on every generated document and status, and never crash on damage.

Properties: ``read(build(x)) == x`` field by field (Vietnamese text, several
recipients, attachments included); ``build(read(build(x)))`` is byte-identical;
the validator lists problems without raising; a damaged document is refused
with ``RejectedError`` and nothing else. Budgets: see ``strategies.budget``.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from lienthong.errors import RejectedError
from lienthong.plugins.document_axis import edxml, validation
from tests.property.strategies import budget, documents, statuses


@settings(max_examples=budget(300))
@given(documents)
def test_document_build_read_round_trip(doc: edxml.Document) -> None:
    data = edxml.build(doc)
    again = edxml.read(data)
    assert again == doc
    assert edxml.build(again) == data
    assert isinstance(validation.check(data), list)


@settings(max_examples=budget(150))
@given(statuses)
def test_status_build_read_round_trip(status: edxml.Status) -> None:
    data = edxml.build(status)
    again = edxml.read(data)
    assert again == status
    assert edxml.build(again) == data
    assert isinstance(validation.check(data), list)


@settings(max_examples=budget(60))
@given(documents, st.data())
def test_trace_appended_reads_back_as_the_last_hop(doc: edxml.Document, data: st.DataObject):
    from datetime import datetime

    when = data.draw(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 1, 1)))
    appended = edxml.read(edxml.append_trace(edxml.build(doc), "000.00.00.H41", when))
    assert appended.trace_headers[-1] == edxml.TraceHeader(
        "000.00.00.H41", when.strftime(edxml.TIMESTAMP_FORMAT)
    )
    assert appended.trace_headers[:-1] == doc.trace_headers


_SNIPPETS = [
    b"<",
    b"&",
    b"\xff",
    b"\x00",
    b"<!DOCTYPE a>",
    b"</edXML:To>",
    b"<edXML:Attachment>",
    b"]]>",
    b"<![CDATA[x",
    b'"',
]


@settings(max_examples=budget(400))
@given(st.one_of(documents, statuses), st.data())
def test_a_damaged_message_is_refused_only_with_rejected_error(obj, data: st.DataObject) -> None:
    body = bytearray(edxml.build(obj))
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(body)))
        match data.draw(st.sampled_from(["cut", "insert", "flip"])):
            case "cut":
                del body[at : at + data.draw(st.integers(1, 40))]
            case "insert":
                body[at:at] = data.draw(st.sampled_from(_SNIPPETS))
            case "flip":
                if at < len(body):
                    body[at] ^= data.draw(st.integers(1, 255))
    damaged = bytes(body)
    try:
        edxml.read(damaged)
    except RejectedError as exc:
        assert str(exc), "a refusal says why"
    problems = validation.check(damaged)
    assert all(str(p) for p in problems)
