"""The JSON/REST adapter passes the contract suite, both ways, against the one-stop sandbox.

Sending: an opinion posted as a step of a dossier, read back from the sandbox
under its Idempotency-Key. Receiving: a dossier the sandbox offers in its
changes feed comes out as exactly the ``fn:json-to-xml`` form of its JSON.

The suite's ``make`` builds an adapter without the store's cursors, which a
polling adapter needs; ``make`` is overridden to hand it a real one (the same
gap issue 14 records for the contract suite).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lienthong import jsonxml, xml
from lienthong.adapter import Adapter, Services, resolve_options
from lienthong.errors import ConfigError
from lienthong.plugins.rest_json.adapter import RestJsonAdapter
from lienthong.plugins.rest_json.onestop_sandbox import OneStopSandbox
from lienthong.store import Cursors, Store, make_engine
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

    def make(self, tmp_path: Path, **overrides: Any) -> Adapter:
        raw = {**self.settings(tmp_path), **overrides}
        settings, problems = resolve_options(self.adapter_class, raw, "endpoint")
        if problems:
            raise ConfigError(problems)
        store = Store(make_engine(f"sqlite:///{tmp_path / 'contract.db'}"))
        store.upgrade()
        services = Services(
            base_dir=tmp_path, var_dir=tmp_path / "var", cursors=Cursors(store.engine)
        )
        return self.adapter_class("contract", settings, services)


class TestRestJsonSendContract(_WithSandbox):
    sample_body = jsonxml.json_to_xml(json.dumps(OPINION, ensure_ascii=False))

    def settings(self, tmp_path: Path) -> dict[str, Any]:
        raw = configs.onestop_opinions(self.server)
        raw.pop("adapter")
        raw["send_operation"] = "add-step"  # the suite's message has kind 'test'
        return raw

    def fetch(self, adapter: Adapter, key: str) -> bytes:
        steps = self.server.steps
        assert len(steps) == 1, "posted exactly once"
        posted = {name: steps[0][name] for name in OPINION}
        return jsonxml.json_to_xml(json.dumps(posted, ensure_ascii=False))


class TestRestJsonReceiveContract(_WithSandbox):
    sample_body = jsonxml.json_to_xml(json.dumps(OFFERED, ensure_ascii=False))

    def settings(self, tmp_path: Path) -> dict[str, Any]:
        raw = configs.onestop_dossiers(self.server, cursor_start="2026-03-01T00:00:00Z")
        raw.pop("adapter")
        return raw

    def put(self, adapter: Adapter, body: bytes) -> None:
        offered = json.loads(jsonxml.xml_to_json(xml.parse(body)))
        with self.server.lock:
            self.server.dossiers.clear()
            self.server.dossiers[offered["dossierNo"]] = offered
