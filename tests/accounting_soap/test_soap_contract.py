"""The SOAP adapter passes the contract suite, against the sandbox accounting service.

One endpoint both posts vouchers (PostVoucher, the key as external reference)
and polls them (ListVoucherChanges, with the bus's cursor store). The service
speaks vouchers, not the bus's bodies, so put() enters the voucher a body
describes, fetch() reads back the vouchers the adapter posted, and
canonical() compares the voucher's fields, which a PostVoucher request and a
polled voucher share.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from lienthong import xml
from lienthong.adapter import Adapter
from lienthong.plugins.accounting_soap.adapter import AccountingSoapAdapter
from lienthong.plugins.accounting_soap.sandbox import AccountingSandbox
from lienthong.testing import AdapterContract

FIELDS = ("kind", "date", "agencyCode", "debitAccount", "creditAccount", "amount", "description")
USER, PASSWORD = "contract", "contract-pw-1357"


def post_voucher(voucher: dict[str, str]) -> bytes:
    inner = "".join(f"<acc:{k}>{voucher[k]}</acc:{k}>" for k in FIELDS)
    return (
        "<?xml version='1.0' encoding='UTF-8'?>"
        '<acc:PostVoucher xmlns:acc="urn:lienthong:sandbox:accounting:v1">'
        f"<acc:voucher>{inner}</acc:voucher></acc:PostVoucher>"
    ).encode()


def fields(body: bytes) -> dict[str, str]:
    """The voucher fields of a PostVoucher request or of a polled voucher."""
    root = xml.parse(body).getroot()
    return {
        name: str(root.xpath("string(.//*[local-name() = $n])", n=name)).strip() for name in FIELDS
    }


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
        with AccountingSandbox(username=USER, password=PASSWORD) as server:
            self.server = server
            yield server

    def settings(self, tmp_path: Path) -> dict[str, Any]:
        return {
            "wsdl": self.server.wsdl_url,
            "send_operation": "PostVoucher",
            "reference_field": "voucher.externalReference",
            "receive_operation": "ListVoucherChanges",
            "username": USER,
            "password": PASSWORD,
        }

    def put(self, adapter: Adapter, body: bytes) -> None:
        self.server.add_voucher(**fields(body))

    def fetch(self, adapter: Adapter) -> list[bytes]:
        posted = [v for v in self.server.vouchers() if v.get("externalReference")]
        return [post_voucher(v) for v in posted]

    def canonical(self, body: bytes) -> Any:
        return fields(body)

    def batch_settings(self, size: int) -> dict[str, Any]:
        return {"receive_arguments": {"maxResults": size}}

    def bad_bodies(self) -> Sequence[bytes]:
        same_account = fields(self.sample_body) | {"creditAccount": "6612"}
        return [
            b'<acc:PostVoucher xmlns:acc="urn:lienthong:sandbox:accounting:v1"><acc:nothing/>'
            b"</acc:PostVoucher>",
            post_voucher(same_account),
        ]

    def settings_for_address(self, tmp_path: Path, host: str, port: int) -> dict[str, Any]:
        return {**self.settings(tmp_path), "address": f"http://{host}:{port}/", "timeout": 0.5}

    def wrong_credentials(self, tmp_path: Path) -> dict[str, Any]:
        return {**self.settings(tmp_path), "password": "not-the-password-2468"}
