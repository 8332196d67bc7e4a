"""The SOAP adapter passes the contract suite, sending to the sandbox accounting service.

The contract's round trip sends a PostVoucher body (the adapter only sends its
operation's request) and reads back what the service stored under the key.
Receiving needs the store's cursors, which the contract does not hand in; the
adapter's own tests cover it against the sandbox.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lienthong.adapter import Adapter
from lienthong.plugins.accounting_soap.adapter import AccountingSoapAdapter
from lienthong.plugins.accounting_soap.sandbox import AccountingSandbox
from lienthong.testing import AdapterContract

FIELDS = ("kind", "date", "agencyCode", "debitAccount", "creditAccount", "amount", "description")


def post_voucher(voucher: dict[str, str]) -> bytes:
    inner = "".join(f"<acc:{k}>{voucher[k]}</acc:{k}>" for k in FIELDS)
    return (
        "<?xml version='1.0' encoding='UTF-8'?>"
        '<acc:PostVoucher xmlns:acc="urn:lienthong:sandbox:accounting:v1">'
        f"<acc:voucher>{inner}</acc:voucher></acc:PostVoucher>"
    ).encode()


class TestAccountingSoapContract(AdapterContract):
    adapter_class = AccountingSoapAdapter
    sample_body = post_voucher(
        {
            "kind": "payment",
            "date": "2026-04-01",
            "agencyCode": "000.00.15.H41",
            "debitAccount": "6612",
            "creditAccount": "1121",
            "amount": "4200000",
            "description": "Chi mua mực in (Liên thông)",
        }
    )

    @pytest.fixture(autouse=True)
    def sandbox(self) -> Iterator[AccountingSandbox]:
        with AccountingSandbox(username="contract", password="contract-pw") as server:
            self.server = server
            yield server

    def settings(self, tmp_path: Path) -> dict[str, Any]:
        return {
            "wsdl": self.server.wsdl_url,
            "send_operation": "PostVoucher",
            "reference_field": "voucher.externalReference",
            "username": "contract",
            "password": "contract-pw",
        }

    def fetch(self, adapter: Adapter, key: str) -> bytes:
        stored = [v for v in self.server.vouchers() if v.get("externalReference") == key]
        assert len(self.server.vouchers()) == len(stored) == 1, "posted exactly once"
        return post_voucher(stored[0])
