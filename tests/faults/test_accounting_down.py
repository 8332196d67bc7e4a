"""The accounting SOAP service down for a while: vouchers wait, the circuit opens, then all post once.

Short form: down for DOWN_SECONDS (6 s: three of the circuit's 2 s resets, each
probe failing again). Long form ("several minutes"):
``LIENTHONG_FAULT_DOWN_SECONDS=300 pytest tests/faults/test_accounting_down.py``.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from lienthong.plugins.accounting_soap.sandbox import AccountingSandbox
from tests.faults.harness import VOUCHER_MAPPING, FaultProject, account, folder_in, wait_settled

DOWN_SECONDS = float(os.environ.get("LIENTHONG_FAULT_DOWN_SECONDS", "6"))
USER, PASSWORD = "ketoan-fault", "fault-sandbox-password"
BEFORE, DURING = 60, 60


@pytest.mark.slow
def test_vouchers_wait_while_the_accounting_service_is_down(
    fault_project: FaultProject, tmp_path
) -> None:
    sandbox = AccountingSandbox(username=USER, password=PASSWORD).start()
    try:
        store = f"sqlite:///{tmp_path / 'var/bus.db'}"
        fault_project.env["FAULT_SOAP_PASSWORD"] = PASSWORD
        fault_project.write(
            store=store,
            endpoints={
                "in": folder_in(batch=20),
                "acct": {
                    "adapter": "accounting_soap",
                    "wsdl": sandbox.wsdl_url,
                    "username": USER,
                    "password": {"env": "FAULT_SOAP_PASSWORD"},
                    "send_operation": "PostVoucher",
                    "reference_field": "voucher.externalReference",
                    "timeout": 2,
                },
            },
            routes=[
                {
                    "name": "fees",
                    "from": "in",
                    "to": [{"endpoint": "acct", "mapping": VOUCHER_MAPPING}],
                }
            ],
            bus={
                "breaker_failures": 3,
                "breaker_reset_seconds": 2,
                # Enough attempts for a long outage: an open circuit defers without counting.
                "retry": {"initial_delay": 0.2, "max_delay": 1, "max_attempts": 1000},
            },
        )
        written = fault_project.drop(BEFORE)
        fault_project.start_worker()
        deadline = time.monotonic() + 60
        while len(sandbox.vouchers()) < 10 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sandbox.vouchers(), fault_project.logs()

        sandbox.stop()
        written.update(fault_project.drop(BEFORE + DURING))
        time.sleep(DOWN_SECONDS)
        status = fault_project.command("status", "--json")
        assert '"pending": 0' not in status.stdout, "postings wait while the service is down"
        assert "endpoint acct: circuit open" in fault_project.all_logs(), fault_project.logs()
        assert len(sandbox.vouchers()) < len(written)

        sandbox.start()  # the same port, as a restarted service
        wait_settled(fault_project, store, len(written), timeout=60)
        fault_project.kill_all(signal.SIGTERM)
        result = account(store, written, vouchers=("acct", sandbox.vouchers()))
        assert result.delivered == len(written), result.dead
        assert "endpoint acct: circuit closed" in fault_project.all_logs()
        # While open, the circuit deferred postings without spending their attempts.
        assert result.attempts < len(written) + DOWN_SECONDS * 2, result.attempts
    finally:
        sandbox.stop()
