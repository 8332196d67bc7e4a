"""The axis answering 500s, then answering too slowly: documents are retried, then sent once.

A slow answer past the timeout is the hard case: the axis did the work but the
bus never heard so. The retry carries the same key, and the axis keeps one
document per key, so each document is on the axis exactly once.
"""

from __future__ import annotations

import copy
import signal
import time
from pathlib import Path

import pytest

from lienthong import xml
from lienthong.plugins.document_axis.sandbox import SandboxAxis
from tests.faults.harness import FaultProject, account, wait_settled

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "tests/document_axis/data/edxml/edoc_new.edxml"
ED = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
HEADER = f"{{{ED}}}edXMLEnvelope/{{{ED}}}edXMLHeader/{{{ED}}}MessageHeader"
SENDER, RECIPIENT = "000.00.00.H41", "000.00.00.G22"
SYSTEM, SECRET = "dms-a", "axis-fault-secret-01"
COUNT = 30
TIMEOUT = 1.0
ERRORS, SLOW = 8, 4


def document(number: int) -> bytes:
    """The sample document from SENDER to RECIPIENT, numbered, its sample signature dropped."""
    root = xml.parse(SAMPLE.read_bytes()).getroot()
    root.find(f"{HEADER}/{{{ED}}}From/{{{ED}}}OrganId").text = SENDER
    root.find(f"{HEADER}/{{{ED}}}DocumentId").text = f"{SENDER},2026/11/29,{number}/UBND-VP"
    tos = root.findall(f"{HEADER}/{{{ED}}}To")
    for extra in tos[1:]:
        extra.getparent().remove(extra)
    tos[0].find(f"{{{ED}}}OrganId").text = RECIPIENT
    for signature in list(root.iter(f"{{{ED}}}Signature")):
        signature.getparent().remove(signature)
    return xml.serialize(copy.deepcopy(root))


@pytest.mark.slow
def test_axis_500s_then_slow_answers_are_retried_and_each_document_sent_once(
    fault_project: FaultProject, tmp_path: Path
) -> None:
    with SandboxAxis({SYSTEM: (SECRET, SENDER)}, [SENDER, RECIPIENT]) as axis:
        store = f"sqlite:///{tmp_path / 'var/bus.db'}"
        fault_project.env["AXIS_SECRET"] = SECRET
        fault_project.log_level = "INFO"  # retries are logged at INFO
        fault_project.write(
            store=store,
            endpoints={
                "in": {"adapter": "folder", "path": "in", "kind": "edxml.document"},
                "axis": {
                    "adapter": "axis",
                    "url": axis.url,
                    "system_id": SYSTEM,
                    "secret": {"env": "AXIS_SECRET"},
                    "organ_id": SENDER,
                    "sandbox": True,
                    "timeout": TIMEOUT,
                },
            },
            routes=[{"name": "outgoing", "from": "in", "to": [{"endpoint": "axis"}]}],
            bus={
                "breaker_failures": 3,
                "breaker_reset_seconds": 1,
                "retry": {"initial_delay": 0.2, "max_delay": 1, "max_attempts": 30},
            },
        )
        axis.inject(500, count=ERRORS, path="/sendEdoc")
        axis.inject(None, delay=TIMEOUT + 1.0, count=SLOW, path="/sendEdoc")
        fault_project.inbox.mkdir()
        written = {}
        for n in range(COUNT):
            body = document(n)
            (fault_project.inbox / f"doc-{n:03d}.xml").write_bytes(body)
            written[f"doc-{n:03d}.xml"] = body
        fault_project.start_worker()
        wait_settled(fault_project, store, COUNT, timeout=120)
        time.sleep(TIMEOUT + 1.5)  # the last slow calls finish on the axis side
        fault_project.kill_all(signal.SIGTERM)

        result = account(store, written)
        assert result.delivered == COUNT, result.dead
        assert result.attempts >= COUNT + ERRORS + SLOW, "the failures were retried"
        logs = fault_project.all_logs()
        assert "HTTP 500" in logs and "did not answer" in logs, logs[-3000:]
        sent = axis.snapshot()["inbox"][RECIPIENT]
        assert len(sent) == COUNT, f"{len(sent)} documents on the axis for {COUNT} sent"
        assert axis.request_count("/sendEdoc") >= COUNT + ERRORS + SLOW
