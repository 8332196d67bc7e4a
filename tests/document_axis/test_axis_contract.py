"""The axis adapter passes the contract suite, against the sandbox axis.

Documents travel from agency B to agency A: the receiving endpoint is A's, the
sending endpoint B's. put() has B's own document system send through the axis
(as another agency would); fetch() reads, as A's system, what reached A.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from lienthong.adapter import Adapter, Secret
from lienthong.plugins.document_axis.adapter import AxisAdapter
from lienthong.plugins.document_axis.client import AxisClient
from lienthong.plugins.document_axis.sandbox import SandboxAxis
from lienthong.testing import AdapterContract

_keys = itertools.count(1)


class TestAxisContract(AdapterContract):
    adapter_class = AxisAdapter
    sample_kind = "edxml.document"

    @pytest.fixture(autouse=True)
    def sandbox(self, axis: SandboxAxis, samples: Any) -> Iterator[None]:
        self.axis, self.samples = axis, samples
        self.clients: list[AxisClient] = []
        yield
        for client in self.clients:
            client.session.close()

    def client(self, organ: str) -> AxisClient:
        system = self.samples.system_of[organ]
        client = AxisClient(self.axis.url, system, Secret(self.samples.systems[system]))
        self.clients.append(client)
        return client

    def endpoint(self, organ: str) -> dict[str, Any]:
        system = self.samples.system_of[organ]
        return {
            "url": self.axis.url,
            "system_id": system,
            "secret": self.samples.systems[system],
            "organ_id": organ,
            "sandbox": True,
            "timeout": 5,
        }

    def settings(self, tmp_path: Path) -> dict[str, Any]:
        return self.endpoint(self.samples.A)

    def send_settings(self, tmp_path: Path) -> dict[str, Any]:
        return self.endpoint(self.samples.B)

    def sample(self, index: int) -> bytes:
        return self.samples.document(self.samples.B, [self.samples.A], number=str(7816 + index))

    def put(self, adapter: Adapter, body: bytes) -> None:
        self.client(self.samples.B).send(body, organ_id=self.samples.B, key=f"put-{next(_keys)}")

    def put_malformed(self, adapter: Adapter) -> None:
        # Relayed from another axis, so no sendEdoc check stood in its way.
        self.axis.deliver(self.samples.B, [self.samples.A], b"<edXML><not-a-header/></edXML>")

    def fetch(self, adapter: Adapter) -> list[bytes]:
        client = self.client(self.samples.A)
        return [client.fetch(item.doc_id) for item in client.received()]

    def bad_bodies(self) -> Sequence[bytes]:
        from_another_agency = self.samples.document(self.samples.C, [self.samples.A])
        return [from_another_agency, b"<edXML><not-a-header/></edXML>"]

    def settings_for_address(self, tmp_path: Path, host: str, port: int) -> dict[str, Any]:
        return {**self.settings(tmp_path), "url": f"http://{host}:{port}/vxp", "timeout": 0.5}

    def wrong_credentials(self, tmp_path: Path) -> dict[str, Any]:
        return {**self.settings(tmp_path), "secret": "not-the-secret-8642"}
