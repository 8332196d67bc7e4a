"""The contract suite catches what it promises: each broken adapter fails the rule it breaks.

``broken_adapters.py`` runs the suite on the ledger adapter (a real JSON server
over HTTP) and on variants of it that each break one rule. A check that a
broken adapter passes would prove nothing, so every rule of
``lienthong.testing.RULES`` that an adapter can break has a variant here.
"""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from lienthong.testing import RULES

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

#: Variant class -> (the check it must fail, the rule its message must name).
BROKEN = {
    "TestCursorBeforeAccept": ("test_acks_only_after_the_inbox_accepted", "ack-after-accept"),
    "TestSwallowsStoreErrors": ("test_acks_only_after_the_inbox_accepted", "ack-after-accept"),
    "TestNoSourceKey": ("test_receives_a_message_once", "source-key"),
    "TestRandomSourceKey": ("test_source_keys_are_stable_across_a_re_read", "stable-source-key"),
    "TestCursorInMemory": ("test_cursor_survives_a_new_adapter_instance", "cursor-in-store"),
    "TestIgnoresPageSize": ("test_reads_a_backlog_in_bounded_batches", "bounded-batch"),
    "TestReadsAgainForever": ("test_receives_a_message_once", "receives-once"),
    "TestMiscountsReceive": ("test_receives_a_message_once", "receives-once"),
    "TestIgnoresKind": ("test_receives_a_message_once", "kind"),
    "TestWrongSource": ("test_receives_a_message_once", "source"),
    "TestMalformedItemRaises": ("test_hands_over_a_malformed_item_to_be_parked", "malformed-item"),
    "TestMalformedItemDropped": ("test_hands_over_a_malformed_item_to_be_parked", "malformed-item"),
    "TestRepeatsSends": ("test_sends_a_message_once", "sends-once"),
    "TestCrashesOnBadBodies": ("test_rejects_a_body_the_system_cannot_take", "rejected-input"),
    "TestTimeoutAsPlainException": ("test_a_timeout_is_transient", "transient-errors"),
    "TestRefusedAsRejected": ("test_a_refused_connection_is_transient", "transient-errors"),
    "TestCredentialsAsTransient": ("test_refused_credentials_are_fatal", "fatal-credentials"),
    "TestSecretInError": ("test_keeps_secrets_out_of_errors", "secrets-stay-secret"),
    "TestSecretInLog": ("test_keeps_secrets_out_of_errors", "secrets-stay-secret"),
    "TestStopBeforeStartFails": ("test_stops_without_starting", "stop-without-start"),
    "TestDefaultOutsideItsRules": ("test_declares_itself", "declares-itself"),
}
#: Rules no adapter can break on its own: the core enforces them, or they are about the contract.
NOT_AN_ADAPTER_DEFECT = {"options", "starts-and-stops", "contract-hooks"}


def run_suite(tmp_path: Path, *node_ids: str) -> dict[tuple[str, str], tuple[str, str]]:
    """Run ``node_ids`` of broken_adapters.py; (class, test) -> (outcome, message)."""
    report = tmp_path / "report.xml"
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"]
        + [f"--junitxml={report}", *node_ids],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    outcomes = {}
    for case in ET.parse(report).iter("testcase"):
        found = next(iter(case), None)
        outcome = "passed" if found is None else found.tag
        message = "" if found is None else (found.get("message") or "") + (found.text or "")
        outcomes[(case.get("classname", "").rsplit(".", 1)[-1], case.get("name", ""))] = (
            outcome,
            message,
        )
    return outcomes


def test_every_rule_an_adapter_can_break_has_a_broken_adapter() -> None:
    covered = {rule for _, rule in BROKEN.values()}
    assert covered == set(RULES) - NOT_AN_ADAPTER_DEFECT


def test_the_good_adapter_passes_and_each_broken_one_fails_its_rule(tmp_path: Path) -> None:
    module = "tests/core/broken_adapters.py"
    outcomes = run_suite(
        tmp_path,
        f"{module}::TestLedger",
        *(f"{module}::{cls}::{test}" for cls, (test, _) in BROKEN.items()),
    )
    good = {test: result for (cls, test), result in outcomes.items() if cls == "TestLedger"}
    assert len(good) == 17 and all(o == "passed" for o, _ in good.values()), good
    wrong = {}
    for cls, (test, rule) in BROKEN.items():
        outcome, message = outcomes.get((cls, test), ("not run", ""))
        if outcome != "failure" or f"[{rule}]" not in message:
            wrong[cls] = (test, rule, outcome, message[:300])
    assert not wrong, wrong
