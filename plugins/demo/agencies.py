"""The other agencies' document systems, answering ours through the axis.

The Department of Finance answers the reports our agencies send it; UBND tỉnh
answers the letters asking its opinion and asks to recall a document it sent.
Each signs its statuses with its key, as our axis endpoints require.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .province import (
    FINANCE_SYSTEM,
    NAMES,
    OPINION_ANSWERS,
    OPINION_STAFF,
    STC,
    UBND,
    UBND_SYSTEM,
    VN,
)
from .sandboxes import Sandboxes
from .seed import Pki, make_status


class OtherAgencies:
    """The Department of Finance's and UBND tỉnh's document systems, as axis clients."""

    def __init__(self, sandboxes: Sandboxes, pki: Pki) -> None:
        self.sandboxes = sandboxes
        self.pki = pki
        # Reports the Department of Finance accepted, to finish next cycle.
        self.reports: list[Any] = []

    def opinions_answer(self) -> int:
        """UBND tỉnh answers each letter asking its opinion: 01 arrived, 06 done (its opinion).

        Signed with its key, as our axis endpoints require. Returns the letters answered.
        """
        from lienthong.adapter import Secret

        from ..document_axis import edxml
        from ..document_axis.client import AxisClient

        client = AxisClient(self.sandboxes.axis.url, UBND_SYSTEM[0], Secret(UBND_SYSTEM[1]))
        answered = 0
        try:
            for item in client.received(message_type="edoc"):
                letter = edxml.read(client.fetch(item.doc_id))
                assert isinstance(letter, edxml.Document)
                client.update_status(item.doc_id, "done")
                for code, text in OPINION_ANSWERS:
                    self._send_status(
                        client, UBND, letter, OPINION_STAFF, code, text, f"{item.doc_id}-{code}"
                    )
                answered += 1
        finally:
            client.session.close()
        return answered

    def _send_status(
        self,
        client: Any,
        organ: str,
        document: Any,
        staff: tuple[str, str],
        code: str,
        text: str,
        key: str,
    ) -> None:
        """``organ``'s document system answers ``document`` with status ``code``, signed."""
        from ..document_axis import edxml, signature

        status = edxml.Status(
            sender=edxml.Organization(organ_id=organ, organ_name=NAMES[organ]),
            response_for=edxml.ResponseFor(
                organ_id=document.sender.organ_id,
                code=f"{document.code_number}/{document.code_notation}",
                promulgation_date=document.promulgation_date,
                document_id=document.document_id,
            ),
            staff=edxml.StaffInfo(department=staff[0], staff=staff[1]),
            status_code=code,
            description=text,
            timestamp=datetime.now(VN).strftime("%Y/%m/%d %H:%M:%S"),
        )
        client.send(
            signature.sign(edxml.build(status), self.pki.signers[organ]),
            organ_id=organ,
            message_type="status",
            key=key,
        )

    def ask_recall(self, recalled: str) -> None:
        """UBND tỉnh's document system asks the recipients to recall a document (status 13)."""
        from lienthong.adapter import Secret

        from ..document_axis import edxml, signature
        from ..document_axis.client import AxisClient

        status = make_status(UBND, UBND, recalled, "13", "Đề nghị thu hồi văn bản do ban hành nhầm")
        client = AxisClient(self.sandboxes.axis.url, UBND_SYSTEM[0], Secret(UBND_SYSTEM[1]))
        try:
            client.send(
                signature.sign(edxml.build(status), self.pki.signers[UBND]),
                organ_id=UBND,
                message_type="status",
                key=f"recall-{recalled}",
            )
        finally:
            client.session.close()

    def finance_answers(self) -> int:
        """The Department of Finance's system answers each report: 01 arrived, 03 accepted,
        and a cycle later 04 assigned, 05 processing, 06 completed.

        It signs its statuses, as our axis endpoints require (signature_policy: require).
        """
        from lienthong.adapter import Secret

        from ..document_axis import edxml
        from ..document_axis.client import AxisClient

        client = AxisClient(self.sandboxes.axis.url, FINANCE_SYSTEM[0], Secret(FINANCE_SYSTEM[1]))
        answered = 0
        earlier, self.reports = self.reports, []
        try:
            received: list[tuple[Any, Any, tuple[tuple[str, str], ...]]] = []
            for item in client.received(message_type="edoc"):
                report = edxml.read(client.fetch(item.doc_id))
                assert isinstance(report, edxml.Document)
                client.update_status(item.doc_id, "done")
                received.append(
                    (
                        item,
                        report,
                        (
                            ("01", "Đã đến - phần mềm quản lý văn bản đã nhận"),
                            ("03", "Đã tiếp nhận và vào sổ văn bản đến"),
                        ),
                    )
                )
                self.reports.append((item, report))
            for item, report in earlier:
                received.append(
                    (
                        item,
                        report,
                        (
                            ("04", "Lãnh đạo đã phân công xử lý"),
                            ("05", "Đang xử lý"),
                            ("06", "Đã xử lý xong"),
                        ),
                    )
                )
            for item, report, steps in received:
                for code, text in steps:
                    self._send_status(
                        client,
                        STC,
                        report,
                        ("Văn phòng Sở", "Văn thư"),
                        code,
                        text,
                        f"{item.doc_id}-{code}",
                    )
                answered += 1
        finally:
            client.session.close()
        return answered
