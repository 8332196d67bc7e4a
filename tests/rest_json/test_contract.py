"""The JSON/REST adapter passes the contract suite, both ways, against the one-stop sandbox.

Sending: an opinion posted as a step of a dossier, read back from the sandbox
under its Idempotency-Key. Receiving: a dossier the sandbox offers in its
changes feed comes out as exactly the ``fn:json-to-xml`` form of its JSON.

The suite hands the adapter a real cursor store. Each sample is a dossier of
its own, changed later than the one before, as the changes feed offers them;
a bounded batch is one page of ``page_size`` (``max_pages: 1``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lienthong import jsonxml, xml
from lienthong.adapter import Adapter
from lienthong.plugins.rest_json.adapter import RestJsonAdapter
from lienthong.plugins.rest_json.onestop_sandbox import OneStopSandbox
from lienthong.testing import AdapterContract
from tests.rest_json import configs

DOSSIER = "000.00.15.H41-260302-0001"
OPINION = {
    "dossierNo": DOSSIER,
    "actionUser": "Sở Tài chính",
    "actionNote": "Đồng ý chủ trương; đề nghị bổ sung dự toán",
    "stepStatus": "processing",
}
OFFERED = {
    "dossierNo": "000.00.16.H41-260302-0002",
    "serviceName": "Cấp bản sao từ sổ gốc",
    "applicantName": "Lê Văn Tám",
    "fee": 12000.50,
    "online": True,
    "finishDate": None,
    "version": 1,
    "updatedAt": "2026-03-02T01:15:00.000000Z",
}


class _WithSandbox(AdapterContract):
    adapter_class = RestJsonAdapter

    @pytest.fixture(autouse=True)
    def sandbox(self) -> Iterator[OneStopSandbox]:
        with OneStopSandbox() as server:
            server.add_dossier(dossierNo=DOSSIER)
            self.server = server
            yield server


class TestRestJsonSendContract(_WithSandbox):
    sample_body = jsonxml.json_to_xml(json.dumps(OPINION, ensure_ascii=False))

    def settings(self, tmp_path: Path) -> dict[str, Any]:
        raw = configs.onestop_opinions(self.server)
        raw.pop("adapter")
        raw["send_operation"] = "add-step"  # the suite's message has kind 'test'
        return raw

    def fetch(self, adapter: Adapter) -> list[bytes]:
        return [
            jsonxml.json_to_xml(
                json.dumps({name: step[name] for name in OPINION}, ensure_ascii=False)
            )
            for step in self.server.steps
        ]


class TestRestJsonReceiveContract(_WithSandbox):
    sample_body = jsonxml.json_to_xml(json.dumps(OFFERED, ensure_ascii=False))

    def settings(self, tmp_path: Path) -> dict[str, Any]:
        raw = configs.onestop_dossiers(self.server, cursor_start="2026-03-01T00:00:00Z")
        raw.pop("adapter")
        return raw

    def sample(self, index: int) -> bytes:
        """Dossiers with their own numbers, each changed later than the one before."""
        dossier = {
            **OFFERED,
            "dossierNo": f"000.00.16.H41-260302-{index + 2:04d}",
            "updatedAt": f"2026-03-02T01:{15 + index:02d}:00.000000Z",
        }
        return jsonxml.json_to_xml(json.dumps(dossier, ensure_ascii=False))

    def batch_settings(self, size: int) -> dict[str, Any]:
        return {"page_size": size, "max_pages": 1}

    def put(self, adapter: Adapter, body: bytes) -> None:
        offered = json.loads(jsonxml.xml_to_json(xml.parse(body)))
        with self.server.lock:
            self.server.dossiers.pop(DOSSIER, None)  # the send tests' dossier
            self.server.dossiers[offered["dossierNo"]] = offered
