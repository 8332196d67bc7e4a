"""Our agencies' one-stop desks: dossiers lodged, handled step by step in the one-stop system."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from .province import DOSSIERS, NAMES, VN, Step
from .sandboxes import Sandboxes


class OneStopDesks:
    """The desks' clerks at the one-stop-shop sandbox, one cycle at a time."""

    def __init__(self, sandboxes: Sandboxes) -> None:
        self.sandboxes = sandboxes
        # Dossiers lodged per agency and day (their numbers), and those waiting for
        # another agency's opinion with the steps that finish them once it is in.
        self.lodged: dict[tuple[str, str], int] = {}
        self.awaiting: dict[str, tuple[Step, ...]] = {}

    def lodge(self, n: int) -> None:
        """At the one-stop desks: this cycle's dossiers are lodged and handled as far as they
        go today; a dossier whose opinion came back (it moved on from interoperating) is
        finished."""
        from ..rest_json.onestop_sandbox import iso

        onestop = self.sandboxes.onestop
        if onestop is None:
            return
        for number, steps in list(self.awaiting.items()):
            if onestop.dossiers[number]["dossierStatus"] != "interoperating":
                del self.awaiting[number]
                self._handle(number, steps)
        today = datetime.now(VN).strftime("%y%m%d")
        for dossier in DOSSIERS.get(n, ()):
            day = (dossier.agency, today)  # numbered per agency and day (circular 01/2018)
            self.lodged[day] = self.lodged.get(day, 0) + 1
            code, name, domain, domain_name = dossier.service
            number = onestop.add_dossier(
                dossierNo=f"{dossier.agency}-{today}-{self.lodged[day]:04d}",
                serviceCode=code,
                serviceName=name,
                domainCode=domain,
                domainName=domain_name,
                applicantName=dossier.applicant,
                applicantIdType="business" if dossier.business else "citizen",
                contactEmail=dossier.email,
                dossierNote=dossier.note,
                dueDate=iso(datetime.now(UTC) + timedelta(days=20)),
                govAgencyCode=dossier.agency,
                govAgencyName=f"{NAMES[dossier.agency]} tỉnh Đắk Lắk",
            )["dossierNo"]
            self._handle(number, dossier.steps)
            if dossier.after_opinion:
                self.awaiting[number] = dossier.after_opinion

    def _handle(self, number: str, steps: tuple[Step, ...]) -> None:
        from ..rest_json.onestop_sandbox import iso

        onestop = self.sandboxes.onestop
        for step in steps:
            if step.status == "done":
                # Finished and dated in one change: one version of the dossier, one result mail.
                onestop.update_dossier(
                    number, dossierStatus="done", finishDate=iso(datetime.now(UTC))
                )
            onestop.add_step(
                number,
                actionUser=step.user,
                actionTitle=step.title,
                department=step.department,
                actionNote=step.note,
                stepStatus=step.status,
            )
