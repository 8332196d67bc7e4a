"""The mapping engine and the bus's accept path on generated XML: refusals only, never a crash.

Trees use odd names, namespaces (the mappings' own among them), attributes and
text (Vietnamese, markup-looking, numeric edge cases); real case inputs are
also mutated node by node so the real templates run deep. Every outcome must
be a result, a :class:`MappingError` or another :class:`RejectedError`.
Budgets: see ``strategies.budget``.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from lienthong import xml
from lienthong.errors import RejectedError
from lienthong.mapping import MappingError, MappingLibrary
from lienthong.message import Message
from lienthong.plugins import memory
from tests.property.strategies import MAPPINGS, budget, texts, xml_documents

CASE_INPUTS = sorted(MAPPINGS.rglob("input.xml"))
MAPPING_NAMES = sorted(str(p.relative_to(MAPPINGS)) for p in MAPPINGS.rglob("*.xsl"))


def _params(name: str) -> dict[str, str]:
    """Params from the mapping's first case that has them (the mapping's usual call)."""
    for path in sorted((MAPPINGS / name).parent.glob(f"{Path(name).stem}.cases/*/params.json")):
        return json.loads(path.read_text(encoding="utf-8"))
    return {}


@pytest.fixture(scope="module")
def library() -> MappingLibrary:
    return MappingLibrary(MAPPINGS)


def _apply(library: MappingLibrary, name: str, data: bytes) -> None:
    try:
        out = library.get(name).apply_bytes(data, _params(name))
    except (MappingError, RejectedError) as exc:
        assert str(exc), "a refusal says why"
    else:
        xml.parse(out, what=f"output of {name}")  # the output is XML the bus accepts


@st.composite
def mutated_inputs(draw: st.DrawFn) -> bytes:
    """A real case input with texts and attributes replaced, elements dropped or repeated."""
    root = copy.deepcopy(xml.parse_file(draw(st.sampled_from(CASE_INPUTS))).getroot())
    for element in list(root.iter()):
        if not isinstance(element.tag, str):
            continue
        action = draw(st.sampled_from(["keep", "keep", "text", "attributes", "drop", "repeat"]))
        parent = element.getparent()
        if action == "text":
            element.text = draw(texts)
        elif action == "attributes":
            for key in element.attrib:
                element.set(key, draw(texts))
        elif action == "drop" and parent is not None:
            parent.remove(element)
        elif action == "repeat" and parent is not None:
            element.addnext(copy.deepcopy(element))
    return xml.serialize(root)


@pytest.mark.parametrize("name", MAPPING_NAMES)
@settings(max_examples=budget(80))
@given(data=st.one_of(xml_documents, mutated_inputs()))
def test_a_real_mapping_on_generated_xml_gives_a_result_or_a_refusal(
    library: MappingLibrary, name: str, data: bytes
) -> None:
    _apply(library, name, data)


@settings(max_examples=budget(120))
@given(data=xml_documents)
def test_generated_trees_are_valid_xml_for_the_hardened_parser(data: bytes) -> None:
    root = xml.parse(data).getroot()
    assert etree.QName(root).localname


_ROUTES = [
    {
        "name": "receipts",
        "kind": "onestop",
        "to": [
            {
                "endpoint": "out",
                "mapping": "onestop/application-to-receipt.xsl",
                "params": _params("onestop/application-to-receipt.xsl"),
            }
        ],
    },
    {
        "name": "summaries",
        "kind": "vouchers",
        "to": [
            {
                "endpoint": "out",
                "mapping": "accounting/voucher-list-to-summary.xsl",
                "params": {"period": "2026-01"},
            }
        ],
    },
    {
        "name": "estimates",
        "kind": "decision",
        "when": "count(//*) < 500",
        "to": [{"endpoint": "out", "mapping": "accounting/budget-decision-to-post-estimate.xsl"}],
    },
]


def test_the_bus_accept_path_never_crashes_and_keeps_serving(lienthong_bus) -> None:
    memory.reset()
    bus = lienthong_bus(
        mappings=MAPPINGS,
        endpoints={"in": {"adapter": "memory"}, "out": {"adapter": "memory"}},
        routes=_ROUTES,
    )
    seen = {"parked": 0, "routed": 0}

    @settings(max_examples=budget(200), suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        data=st.one_of(xml_documents, mutated_inputs(), st.binary(max_size=200)),
        kind=st.sampled_from(["onestop", "vouchers", "decision", "unknown"]),
    )
    def accept(data: bytes, kind: str) -> None:
        [acceptance] = bus.accept([Message(body=data, kind=kind, source="in")])
        seen["parked" if acceptance.parked else "routed"] += 1
        bus.deliver_due()

    accept()
    assert seen["parked"] > 0, "some generated input must have been refused"
    before = len(memory.delivered("out"))
    good = (MAPPINGS / "onestop/application-to-receipt.cases/basic/input.xml").read_bytes()
    memory.feed("in", [Message(body=good, kind="onestop")])
    bus.run(once=True)
    assert len(memory.delivered("out")) == before + 1, "a good message is still delivered"
    assert b"Nguy" in memory.delivered("out")[-1].body
