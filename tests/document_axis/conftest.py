"""Fixtures for the axis tests: a sandbox axis on a free loopback port and edXML built from samples.

Test modules reach the helpers through fixtures (``samples``, ``inbox``), never by
importing this file, so they work under any pytest import mode.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from lxml import etree

from lienthong import xml
from lienthong.adapter import Acceptance, Secret
from lienthong.message import Message
from lienthong.plugins.document_axis.client import AxisClient
from lienthong.plugins.document_axis.sandbox import SandboxAxis

DATA = Path(__file__).parent / "data"
ED = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
NS = {"ed": ED}
HEADER = "ed:edXMLEnvelope/ed:edXMLHeader/ed:MessageHeader"

A = "000.00.00.H15"  # UBND tỉnh Đắk Lắk; the samples' statuses come from Nghệ An (H41)
B = "000.00.00.G22"
C = "000.00.15.H51"
SYSTEMS = {"dms-a": "secret-a-0123", "dms-b": "secret-b-4567", "dms-c": "secret-c-89ab"}
SYSTEM_OF = {A: "dms-a", B: "dms-b", C: "dms-c"}
#: The sandbox's systems, each bound to its agency: (secret, agency) by system id.
BOUND = {system: (SYSTEMS[system], organ) for organ, system in SYSTEM_OF.items()}


def _set(root: etree._Element, path: str, value: str) -> None:
    found = root.xpath(f"{HEADER}/{path}", namespaces=NS)
    assert found, f"sample has no {path}"
    found[0].text = value


def document(sender: str, recipients: Sequence[str], number: str = "7816") -> bytes:
    """The sample new document, re-addressed from ``sender`` to ``recipients``.

    Its sample signature is dropped: it could not survive the re-addressing.
    """
    root = xml.parse((DATA / "edxml/edoc_new.edxml").read_bytes()).getroot()
    _set(root, "ed:From/ed:OrganId", sender)
    _set(root, "ed:DocumentId", f"{sender},2019/01/16,{number}/VPCP-TTĐT")
    first_to = root.xpath(f"{HEADER}/ed:To", namespaces=NS)[0]
    for old in root.xpath(f"{HEADER}/ed:To", namespaces=NS)[1:]:
        old.getparent().remove(old)
    for _ in recipients[1:]:
        first_to.addnext(copy.deepcopy(first_to))
    for to, organ in zip(root.xpath(f"{HEADER}/ed:To", namespaces=NS), recipients, strict=True):
        to.find(f"{{{ED}}}OrganId").text = organ
    for signature in root.iter(f"{{{ED}}}Signature"):
        signature.getparent().remove(signature)
    return xml.serialize(root)


def status(code: str, sender: str, answered_organ: str, document_id: str) -> bytes:
    """A sample status with ``code``, from ``sender``, answering ``document_id``."""
    name = {"01": "inbox_01", "03": "acceptance_03", "06": "finish_06"}[code]
    root = xml.parse((DATA / "edxml" / f"status_{name}.edxml").read_bytes()).getroot()
    _set(root, "ed:From/ed:OrganId", sender)
    _set(root, "ed:ResponseFor/ed:OrganId", answered_organ)
    _set(root, "ed:ResponseFor/ed:DocumentId", document_id)
    return xml.serialize(root)


def document_id_of(body: bytes) -> str:
    return str(xml.parse(body).xpath(f"string(/ed:edXML/{HEADER}/ed:DocumentId)", namespaces=NS))


class RecordingInbox:
    """A real inbox that keeps messages in memory the way the store would.

    One message per (source, source key); a message carrying the adapter's
    ``invalid`` header or a body that is not XML is parked, as the bus parks it.
    """

    def __init__(self) -> None:
        self.accepted: list[Message] = []
        self.parked: dict[str, str] = {}
        self.calls = 0

    def accept(self, messages: Sequence[Message]) -> list[Acceptance]:
        self.calls += 1
        result = []
        for message in messages:
            known = {(m.source, m.source_key): m for m in self.accepted}
            earlier = known.get((message.source, message.source_key))
            if earlier is not None:
                result.append(
                    Acceptance(earlier.id, parked=self.parked.get(earlier.id), duplicate=True)
                )
                continue
            reason = message.headers.get("invalid")
            if reason is None:
                try:
                    message.tree()
                except xml.XmlRejected as exc:
                    reason = str(exc)
            self.accepted.append(message)
            if reason:
                self.parked[message.id] = reason
            result.append(Acceptance(message.id, parked=reason))
        return result


class Samples:
    """The agencies, systems and sample builders, handed to tests as one fixture."""

    A, B, C = A, B, C
    systems = SYSTEMS
    system_of = SYSTEM_OF
    bound = BOUND
    data = DATA
    document = staticmethod(document)
    status = staticmethod(status)
    document_id_of = staticmethod(document_id_of)


@pytest.fixture
def samples() -> type[Samples]:
    return Samples


@pytest.fixture
def inbox() -> RecordingInbox:
    return RecordingInbox()


@pytest.fixture
def axis() -> Iterator[SandboxAxis]:
    with SandboxAxis(BOUND, [A, B, C]) as sandbox:
        yield sandbox


@pytest.fixture
def client_for(axis: SandboxAxis):
    clients: list[AxisClient] = []

    def make(organ: str, **kwargs) -> AxisClient:
        system = SYSTEM_OF[organ]
        client = AxisClient(axis.url, system, Secret(SYSTEMS[system]), **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.session.close()
