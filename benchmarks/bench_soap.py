"""Benchmark: PostVoucher calls per second through the SOAP adapter, against raw zeep.

Starts the SANDBOX accounting service on loopback (with WS-Security on), then
in the same run and against the same server posts N distinct vouchers:

- raw zeep: ``client.service.PostVoucher(voucher={...})`` with the same hardened
  settings and UsernameToken (the baseline);
- the adapter: ``adapter.send(Message(body=<PostVoucher XML>), key=...)``, which
  also parses the body with the hardened parser, validates it against the WSDL
  schema, converts it with zeep and parses the answer with the hardened parser.

The two runs alternate in rounds so a warm-up or a slow moment hits both alike.

Run: .venv/bin/python benchmarks/bench_soap.py [--calls 500] [--rounds 3]
"""

from __future__ import annotations

import argparse
import shlex
import tempfile
import time
from pathlib import Path

import zeep
from zeep.wsse.username import UsernameToken

from lienthong.adapter import Services, resolve_options
from lienthong.message import Message
from lienthong.plugins.accounting_soap.adapter import AccountingSoapAdapter
from lienthong.plugins.accounting_soap.sandbox import AccountingSandbox

USER, PASSWORD = "bench", "bench-password"
VOUCHER = {
    "kind": "receipt",
    "date": "2026-01-15",
    "agencyCode": "000.00.15.H41",
    "debitAccount": "1111",
    "creditAccount": "5111",
    "amount": "2500000",
    "description": "Thu phí cấp bản sao",
}
BODY = (
    '<acc:PostVoucher xmlns:acc="urn:lienthong:sandbox:accounting:v1"><acc:voucher>'
    + "".join(f"<acc:{k}>{v}</acc:{k}>" for k, v in VOUCHER.items())
    + "</acc:voucher></acc:PostVoucher>"
).encode()


def run_raw(client: zeep.Client, calls: int, prefix: str) -> float:
    start = time.perf_counter()
    for i in range(calls):
        client.service.PostVoucher(voucher={**VOUCHER, "externalReference": f"{prefix}-{i}"})
    return time.perf_counter() - start


def run_adapter(adapter: AccountingSoapAdapter, calls: int, prefix: str) -> float:
    start = time.perf_counter()
    for i in range(calls):
        adapter.send(Message(body=BODY), key=f"{prefix}-{i}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500, help="calls per round and side")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    with (
        AccountingSandbox(username=USER, password=PASSWORD) as sandbox,
        tempfile.TemporaryDirectory() as tmp,
    ):
        settings, problems = resolve_options(
            AccountingSoapAdapter,
            {
                "wsdl": sandbox.wsdl_url,
                "send_operation": "PostVoucher",
                "reference_field": "voucher.externalReference",
                "username": USER,
                "password": PASSWORD,
            },
            "endpoints.bench",
        )
        assert not problems, problems
        adapter = AccountingSoapAdapter(
            "bench", settings, Services(base_dir=Path(tmp), var_dir=Path(tmp) / "var")
        )
        adapter.start()
        raw = zeep.Client(
            sandbox.wsdl_url,
            settings=zeep.Settings(
                strict=True, forbid_dtd=True, forbid_entities=True, forbid_external=True
            ),
            wsse=UsernameToken(USER, PASSWORD),
        )
        run_raw(raw, 20, "warm-raw")
        run_adapter(adapter, 20, "warm-adapter")

        raw_s = adapter_s = 0.0
        for r in range(args.rounds):
            raw_s += run_raw(raw, args.calls, f"raw-{r}")
            adapter_s += run_adapter(adapter, args.calls, f"adapter-{r}")
        adapter.stop()

        total = args.calls * args.rounds
        expected = total * 2 + 40
        assert len(sandbox.vouchers()) == expected, "every call must have posted one voucher"

    raw_rate, adapter_rate = total / raw_s, total / adapter_s
    print(f"PostVoucher against the sandbox, {total} calls per side ({args.rounds} rounds):")
    for label, rate, seconds in (
        ("baseline raw zeep", raw_rate, raw_s),
        ("adapter.send", adapter_rate, adapter_s),
    ):
        print(f"  {label:<18}: {rate:8.1f} calls/s  ({seconds / total * 1000:.2f} ms/call)")
    print(f"  ratio adapter/raw : {adapter_rate / raw_rate:8.2f}")
    print(
        shlex.join(
            [
                "RESULT",
                "name=soap.post_voucher",
                "label=accounting SOAP adapter.send PostVoucher, WS-Security on",
                f"figure={adapter_rate:.1f}",
                "unit=calls/s",
                f"baseline={raw_rate:.1f}",
                "baseline_of=raw zeep client.service.PostVoucher, same server",
                f"ratio={adapter_rate / raw_rate:.3f}",
                "ratio_of=adapter / raw zeep, higher is better",
            ]
        )
    )


if __name__ == "__main__":
    main()
