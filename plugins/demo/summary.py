"""What moved in a demo run, read back from the store, the sync reports and the sandboxes."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from lienthong import config as config_module
from lienthong.store import Store, deliveries, messages
from lienthong.sync import recent_runs

from .sandboxes import Sandboxes

ED = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
ACC = "urn:lienthong:sandbox:accounting:v1"
FN = "http://www.w3.org/2005/xpath-functions"  # JSON as XML (fn:json-to-xml)


@dataclass
class DocumentLine:
    agency: str
    document_id: str
    sender: str
    subject: str
    deliveries: dict[str, str]  # endpoint → state


@dataclass
class ReportLine:
    agency: str
    vouchers: int
    document_id: str
    state: str
    statuses: list[str]


@dataclass
class DossierLine:
    """A one-stop dossier as the bus carried it to the portal."""

    number: str
    service: str = ""
    status: str = "?"  # of the newest version taken
    versions: int = 0  # versions taken (each one delivery to the portal)
    versions_delivered: int = 0
    steps: int = 0
    steps_delivered: int = 0


@dataclass
class Summary:
    """What moved, read back from the store, the sync reports and the mail sink."""

    documents: list[DocumentLine] = field(default_factory=list)
    statuses_sent: int = 0
    #: Statuses our agencies sent through the axis, by code (01 by the bus, 02 refusals,
    #: the others from their document systems), and those they received: (code, from, document).
    statuses_out: dict[str, int] = field(default_factory=dict)
    statuses_in: list[tuple[str, str, str]] = field(default_factory=list)
    refusals: list[tuple[str, str, str]] = field(default_factory=list)  # (document, sender, reason)
    business: list[tuple[str, str, str]] = field(
        default_factory=list
    )  # (business, document, concerns)
    estimates: list[tuple[str, str]] = field(default_factory=list)  # (endpoint, state)
    reports: list[ReportLine] = field(default_factory=list)
    syncs: dict[str, dict[str, int]] = field(default_factory=dict)  # job → summed counts
    mails: list[tuple[list[str], str, list[str]]] = field(default_factory=list)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    #: The fourth flow, when the config has it: dossiers by number, the letters asking
    #: an opinion (dossier, to, DocumentId, state), the answers posted back as steps
    #: (dossier, from, status code, state), the results mailed (dossier, to, state).
    onestop: bool = False
    dossiers: dict[str, DossierLine] = field(default_factory=dict)
    letters: list[tuple[str, str, str, str]] = field(default_factory=list)
    opinions: list[tuple[str, str, str, str]] = field(default_factory=list)
    results: list[tuple[str, str, str]] = field(default_factory=list)

    def lines(self) -> Iterator[str]:
        yield f"== documents received from the axis: {len(self.documents)}"
        for d in self.documents:
            moved = ", ".join(f"{e} {s}" for e, s in d.deliveries.items()) or "parked"
            yield f"  {d.agency} ← {d.sender}  {d.document_id}"
            yield f"      {d.subject}"
            yield f"      {moved}"
        yield f"== status 01 sent back to senders: {self.statuses_sent}"
        for business, document, concerns in self.business:
            yield f"  {business} {document}: of {concerns}"
        by_code = ", ".join(f"{code} ×{n}" for code, n in sorted(self.statuses_out.items()))
        total = sum(self.statuses_out.values())
        yield f"== statuses our agencies sent: {total} ({by_code or 'none'})"
        for document, sender, reason in self.refusals:
            reason = reason if len(reason) <= 160 else reason[:157] + "..."
            yield f"  02 to {sender} for {document}: {reason}"
        received = sorted({(c, f) for c, f, _ in self.statuses_in})
        yield f"== statuses received: {len(self.statuses_in)}"
        for code, sender in received:
            documents = sorted({d for c, f, d in self.statuses_in if (c, f) == (code, sender)})
            shown = ", ".join(documents) if len(documents) == 1 else f"{len(documents)} documents"
            yield f"  {code} from {sender}: {shown}"
        yield f"== budget estimates posted: {sum(s == 'delivered' for _, s in self.estimates)}"
        for endpoint, state in self.estimates:
            yield f"  {endpoint}: {state}"
        vouchers = sum(r.vouchers for r in self.reports)
        yield f"== vouchers read: {vouchers}, in {len(self.reports)} report(s) to finance"
        for r in self.reports:
            answered = ", ".join(sorted(r.statuses)) or "no status yet"
            yield f"  {r.agency}: {r.vouchers} voucher(s) → {r.document_id} {r.state}; {answered}"
        for job, counts in self.syncs.items():
            yield (
                f"== sync {job}: created {counts.get('create', 0)}, updated "
                f"{counts.get('update', 0)}, disabled {counts.get('disable', 0)}, "
                f"unchanged {counts.get('unchanged', 0)}, failed {counts.get('failed', 0)}"
            )
        if self.onestop:
            yield from self._onestop_lines()
        yield f"== mails sent: {len(self.mails)}"
        for to, subject, files in self.mails:
            yield f"  to {', '.join(to)}: {subject} [{', '.join(files) or 'no attachment'}]"
        yield f"== dead letters: {len(self.dead_letters)}"
        for dead in self.dead_letters:
            reason = " ".join(str(dead["reason"]).split())
            reason = reason if len(reason) <= 220 else reason[:217] + "..."
            where = dead["endpoint"] or dead["source"]
            yield f"  #{dead['id']} {dead['kind']} at {dead['stage']} ({where}): {reason}"

    def _onestop_lines(self) -> Iterator[str]:
        lines = self.dossiers.values()
        versions = sum(d.versions for d in lines)
        steps = sum(d.steps for d in lines)
        yield (
            f"== one-stop dossiers synced to the portal: {len(self.dossiers)} "
            f"({sum(d.versions_delivered for d in lines)} of {versions} version(s) delivered), "
            f"progress steps: {sum(d.steps_delivered for d in lines)} of {steps} delivered"
        )
        for d in lines:
            yield f"  {d.number} {d.status}: {d.versions} version(s), {d.steps} step(s)"
            yield f"      {d.service}"
        yield (
            f"== opinions asked through the axis: {len(self.letters)}; answers posted back to "
            f"the one-stop system: {sum(s == 'delivered' for *_, s in self.opinions)}"
        )
        for number, to, document, state in self.letters:
            yield f"  {number} → {to}: {document} {state}"
        for number, sender, code, state in self.opinions:
            yield f"  {number} ← {code} from {sender}: step {state}"
        yield f"== results mailed to citizens: {sum(s == 'delivered' for *_, s in self.results)}"
        for number, to, state in self.results:
            yield f"  {number} → {to}: {state}"


def _json_fields(body: bytes) -> dict[str, str]:
    """The top-level strings of a JSON message (as XML in the fn:json-to-xml vocabulary)."""
    from lienthong import xml

    tree = xml.parse(body)
    return {
        str(e.get("key")): (e.text or "").strip()
        for e in tree.getroot()
        if isinstance(e.tag, str) and e.tag == f"{{{FN}}}string"
    }


def _mail_to(body: bytes) -> str:
    from lienthong import xml

    found = xml.parse(body).xpath("//m:to/text()", namespaces={"m": "urn:lienthong:mail"})
    return ", ".join(str(t).strip() for t in found) or "?"


def _texts(body: bytes, path: str) -> list[str]:
    from lienthong import xml

    tree = xml.parse(body)
    return [str(t).strip() for t in tree.xpath(path, namespaces={"ed": ED, "acc": ACC})]


def read_summary(cfg: config_module.Config, sandboxes: Sandboxes, store: Store) -> Summary:
    """What moved, from ``store`` and the sandboxes (the mail sink, the one-stop system)."""
    result = Summary()
    for name, job in cfg.jobs.items():
        if job.sync is None:
            continue
        totals = result.syncs.setdefault(name, {})
        for report in recent_runs(store.engine, name, limit=1000):
            for key, value in report.counts.items():
                totals[key] = totals.get(key, 0) + int(value)
    axis_names = set(sandboxes.organs)
    acct_names = set(sandboxes.accounting)
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(
                messages.c.id,
                messages.c.kind,
                messages.c.source,
                messages.c.headers,
                messages.c.body,
            ).order_by(messages.c.accepted_at, messages.c.id)
        ).all()
        sent = conn.execute(
            select(
                deliveries.c.message_id,
                deliveries.c.endpoint,
                deliveries.c.state,
                deliveries.c.headers,
                deliveries.c.body,
            )
        ).all()
    by_message: dict[str, list[Any]] = {}
    for d in sent:
        by_message.setdefault(d.message_id, []).append(d)
    statuses_for: dict[str, list[str]] = {}
    ours = set(sandboxes.organs.values())
    for m in rows:
        headers = json.loads(m.headers)
        if m.source in axis_names and m.kind == "edxml.status":
            statuses_for.setdefault(headers.get("response_for", ""), []).append(
                f"{headers.get('status_code', '?')} from {headers.get('from', '?')}"
            )
            result.statuses_in.append(
                (
                    headers.get("status_code", "?"),
                    headers.get("from", "?"),
                    headers.get("response_for", "?"),
                )
            )
        elif headers.get("edxml_kind") == "status" and headers.get("edxml_from") in ours:
            sent_ok = any(
                d.endpoint in axis_names and d.state == "delivered"
                for d in by_message.get(m.id, [])
            )
            if sent_ok:
                code = headers.get("edxml_status", "?")
                result.statuses_out[code] = result.statuses_out.get(code, 0) + 1
        if (
            m.source in axis_names
            and m.kind == "edxml.document"
            and headers.get("edxml_business", "new") != "new"
        ):
            result.business.append(
                (
                    headers["edxml_business"],
                    headers.get("edxml_document_id", "?"),
                    headers.get("edxml_concerns", "?"),
                )
            )
    from ..document_axis import refusal

    with store.engine.connect() as conn:
        refused = conn.execute(select(refusal.refusals).order_by(refusal.refusals.c.sent_at)).all()
    for r in refused:
        result.refusals.append((r.document_id, r.sender, r.reason))
    if refused:
        result.statuses_out["02"] = len(refused)
    for m in rows:
        headers = json.loads(m.headers)
        outgoing = by_message.get(m.id, [])
        if m.source in axis_names and m.kind == "edxml.document":
            ones = sum(d.endpoint in axis_names and d.state == "delivered" for d in outgoing)
            if ones:
                result.statuses_out["01"] = result.statuses_out.get("01", 0) + ones
        if m.source in axis_names and m.kind == "edxml.document":
            states: dict[str, str] = {}
            for d in outgoing:
                label = d.endpoint
                if d.endpoint in axis_names:
                    label = "status 01"
                    result.statuses_sent += d.state == "delivered"
                elif d.endpoint in acct_names:
                    label = f"estimate to {d.endpoint}"
                    result.estimates.append((d.endpoint, d.state))
                elif d.endpoint.startswith("directory"):
                    label = "mail"
                states[label] = d.state
            subject = ""
            with contextlib.suppress(Exception):
                subject = (_texts(m.body, "//ed:MessageHeader/ed:Subject/text()") or [""])[0]
            result.documents.append(
                DocumentLine(
                    sandboxes.organs[m.source],
                    headers.get("document_id") or headers.get("edxml_document_id", "?"),
                    headers.get("from", "?"),
                    subject,
                    states,
                )
            )
        elif m.source in acct_names:
            count = len(_texts(m.body, "//acc:voucher/acc:number/text()"))
            for d in outgoing:
                doc_ids = _texts(d.body, "//ed:MessageHeader/ed:DocumentId/text()")
                doc_id = doc_ids[0] if doc_ids else "?"
                result.reports.append(
                    ReportLine(m.source, count, doc_id, d.state, statuses_for.get(doc_id, []))
                )
            if not outgoing:
                result.reports.append(ReportLine(m.source, count, "-", "parked", []))
    mail = sandboxes.mail
    if mail is not None:
        for (_, rcpts), message in zip(mail.envelopes, mail.mails, strict=True):
            files = [p.get_filename() or "?" for p in message.iter_attachments()]
            result.mails.append((rcpts, str(message["Subject"]), files))
    _onestop_summary(cfg, sandboxes, result, rows, by_message)
    result.dead_letters = list(reversed(store.dead_letters()))
    return result


def _onestop_summary(
    cfg: config_module.Config,
    sandboxes: Sandboxes,
    result: Summary,
    rows: list[Any],
    by_message: dict[str, list[Any]],
) -> None:
    """The fourth flow: what the one-stop system's dossiers and steps became, and the
    opinions asked and answered through the axis."""
    if sandboxes.onestop is None:
        return
    result.onestop = True
    axis_names = set(sandboxes.organs)
    mailers = {n for n, ep in cfg.endpoints.items() if ep.adapter == "email_directory"}
    for m in rows:
        outgoing = by_message.get(m.id, [])
        if m.source in sandboxes.onestop_endpoints:
            item = _json_fields(m.body)
            number = item.get("dossierNo", "?")
            line = result.dossiers.setdefault(number, DossierLine(number))
            to_portal = [d for d in outgoing if d.endpoint in sandboxes.portal_endpoints]
            delivered = sum(d.state == "delivered" for d in to_portal)
            if "stepStatus" in item:
                line.steps += len(to_portal)
                line.steps_delivered += delivered
                continue
            line.service = item.get("serviceName", "")
            line.status = item.get("dossierStatus", "?")
            line.versions += len(to_portal)
            line.versions_delivered += delivered
            for d in outgoing:
                if d.endpoint in axis_names:
                    to = _texts(d.body, "//ed:MessageHeader/ed:To/ed:OrganId/text()") or ["?"]
                    doc = _texts(d.body, "//ed:MessageHeader/ed:DocumentId/text()") or ["?"]
                    result.letters.append((number, to[0], doc[0], d.state))
                elif d.endpoint in mailers:
                    address = _mail_to(d.body)
                    result.results.append((number, address, d.state))
        elif m.source in axis_names:
            for d in outgoing:
                if d.endpoint in sandboxes.onestop_endpoints:
                    headers = json.loads(m.headers)
                    step = _json_fields(d.body)
                    result.opinions.append(
                        (
                            step.get("dossierNo", "?"),
                            headers.get("from", "?"),
                            headers.get("status_code", "?"),
                            d.state,
                        )
                    )
