"""``lienthong edxml``: validate, show, sign and verify edXML files from the shell.

Commands:
- ``validate FILE...``: every problem as ``file:line: path: message``, the same
  checks as the axis adapter's intake (attachments opened); exit 1 on any error,
  warnings (``file:line: warning: ...``) alone exit 0.
- ``show FILE [--json]``: what the message is, who sent it to whom, attachments, trace.
- ``sign FILE --key K [--cert C] [--password-env VAR] [-o OUT]``: enveloped XMLDSig.
- ``verify FILE [--trust CA]... [--intermediate CERT]... [--crl FILE]...``: exit 0
  when the signature is valid (and its chain reaches a --trust CA), 1 otherwise.
- ``history DOCUMENT_ID [--json]``: the document's life in the bus's store: sent,
  each status with who sent it, refusals, deliveries, retries, dead letters, the
  documents it revokes, updates or replaces (or that do so to it), each party's life.
- ``overdue --days N [--json]``: documents without a status 06 after N days.
- ``certs [--expiring DAYS] [--json]``: the signing certificates met, soonest expiry first.

Registered on the main ``lienthong`` command by the document_axis plugin.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from lienthong.adapter import Secret
from lienthong.errors import ConfigError, RejectedError, TransientError

from . import edxml, signature, validation
from .history import history
from .overdue import overdue
from .trust import Trust


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise click.ClickException(f"'{path}' cannot be read: {exc.strerror}") from exc


@click.group("edxml")
def edxml_group() -> None:
    """Work with edXML messages of the national document axis (QCVN 102:2016)."""


@edxml_group.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--today",
    type=click.DateTime(formats=["%Y-%m-%d", "%Y/%m/%d"]),
    help="Day that dates must not be after (default: today in Vietnam, Asia/Ho_Chi_Minh).",
)
@click.option(
    "--max-attachment-bytes",
    type=int,
    default=validation.DEFAULT_ATTACHMENT_BYTES,
    show_default=True,
    help="Largest attachment, zipped or opened (the axis endpoint's max_attachment_bytes).",
)
def validate_command(files: tuple[Path, ...], today: object, max_attachment_bytes: int) -> None:
    """Check FILES as the axis adapter's intake does; exit 1 if any has an error."""
    now = today.date() if today is not None else edxml.axis_today()  # type: ignore[attr-defined]
    bad = 0
    for path in files:
        problems = validation.check(_read(path), now=now, max_attachment_bytes=max_attachment_bytes)
        for p in problems:
            line = p.line if p.line is not None else 0
            level = "" if p.is_error else "warning: "
            click.echo(f"{path}:{line}: {level}{p.path}: {p.message}")
        if validation.errors(problems):
            bad += 1
        else:
            click.echo(f"{path}: valid", err=True)
    if bad:
        raise SystemExit(1)


@edxml_group.command("show")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def show_command(file: Path, as_json: bool) -> None:
    """Summarise one edXML message: kind, ids, sender, recipients, status, attachments."""
    try:
        message = edxml.read(_read(file))
    except RejectedError as exc:
        raise click.ClickException(f"{file}: {exc}") from exc
    info = edxml.summary(message)
    if as_json:
        click.echo(json.dumps(info, ensure_ascii=False, indent=2))
        return
    for line in _shown(info):
        click.echo(line)


def _joined(values: dict[str, Any] | None, *keys: str) -> str:
    """The non-empty values of ``keys``, comma-separated."""
    if not values:
        return ""
    return ", ".join(str(values[k]) for k in keys if values.get(k) not in (None, ""))


def _shown(info: dict[str, Any]) -> list[str]:
    """``edxml show``'s text: one line per field a clerk acts on, the empty ones left out."""
    lines: list[tuple[str, Any]] = []
    rf = info.get("response_for")
    if info["kind"] == "status":
        lines += [
            ("kind", "status"),
            ("status", f"{info['status_code']} ({info['status_meaning']})"),
            ("description", info["description"]),
            ("timestamp", info["timestamp"]),
            ("sender", _joined(info, "sender", "sender_name")),
            ("answers document", info["document_id"]),
            ("answers", _joined(rf, "organ_id", "code", "promulgation_date")),
            ("staff", _joined(info["staff"], "department", "staff", "mobile", "email")),
        ]
        return [f"{k}: {v}" for k, v in lines if v not in (None, "")]
    business = info["business"]
    lines += [("kind", "document"), ("document id", info["document_id"])]
    lines.append(("business", info["business_type"]))
    if business:
        # A new document's Bussiness/DocumentId names nothing it acts on.
        label = "  document id" if business["name"] == "new" else "  concerns"
        lines += [
            (label, business["document_id"]),
            ("  reason", business["reason"]),
            ("  paper", business["paper"]),
            ("  document info", business["document_info"]),
            ("  document receiver", business["document_receiver"]),
        ]
        for r in business["receivers"]:
            lines.append(("  receiver", f"{r['organ_id']} (type {r['receiver_type']})"))
        for r in business["replacements"]:
            told = ", ".join(r["organ_ids"] or []) or "no agency listed"
            lines.append(("  replaces", f"{r['document_id']}, to tell: {told}"))
        lines.append(
            ("  staff", _joined(business["staff"], "department", "staff", "email", "mobile"))
        )
    lines += [
        ("sender", _joined(info, "sender", "sender_name")),
        ("recipients", ", ".join(info["recipients"])),
        ("code", "/".join(v for v in (info["code_number"], info["code_notation"]) if v)),
        ("promulgated", _joined(info, "place", "promulgation_date")),
        ("type", _joined(info, "document_type", "type_name")),
        ("subject", info["subject"]),
        ("content", info["content"]),
        ("signer", _joined(info["signer"], "competence", "position", "full_name")),
        ("due date", info["due_date"]),
        ("steering type", info["steering_type"]),
        ("to places", "; ".join(info["to_places"] or [])),
        ("response for", _joined(rf, "document_id", "organ_id", "code", "promulgation_date")),
    ]
    other = info["other_info"]
    if other:
        priority = other["priority"]
        if priority and other["priority_meaning"]:
            priority = f"{priority} ({other['priority_meaning']})"
        lines += [
            ("priority", priority),
            ("sphere", other["sphere"]),
            ("typer notation", other["typer_notation"]),
            ("copies", other["promulgation_amount"]),
            ("pages", other["page_amount"]),
            ("direction", other["direction"]),
            ("appendixes", "; ".join(other["appendixes"] or [])),
        ]
    for a in info["attachments"]:
        lines.append(("attachment", f"{a['name']} ({a['content_type']}, {a['size']:,} bytes)"))
    for t in info["trace_headers"]:
        lines.append(("trace", f"{t['organ_id']} at {t['timestamp']}"))
    return [f"{k}: {v}" for k, v in lines if v not in (None, "")]


@edxml_group.command("sign")
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--key",
    "key_path",
    required=True,
    type=click.Path(path_type=Path),
    help="PEM private key (may hold the certificate too) or PKCS#12 file.",
)
@click.option(
    "--cert",
    "cert_path",
    type=click.Path(path_type=Path),
    help="PEM certificate, if not in the key file.",
)
@click.option(
    "--password-env", metavar="VAR", help="Environment variable holding the key's password."
)
@click.option(
    "--algorithm",
    default="rsa-sha256",
    show_default=True,
    type=click.Choice(sorted(signature.ALGORITHMS)),
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="Where to write the signed file (default: standard output).",
)
def sign_command(
    file: Path,
    key_path: Path,
    cert_path: Path | None,
    password_env: str | None,
    algorithm: str,
    output: Path | None,
) -> None:
    """Sign FILE with an enveloped XML signature in edXMLHeader."""
    password = None
    if password_env:
        if password_env not in os.environ:
            raise click.ClickException(
                f"environment variable {password_env} is not set. Hint: export {password_env}=..."
            )
        password = Secret(os.environ[password_env], origin=f"env {password_env}")
    try:
        key = signature.load_key(key_path, password, cert=cert_path)
        signed = signature.sign(_read(file), key, algorithm)
    except (ConfigError, RejectedError) as exc:
        raise click.ClickException(str(exc)) from exc
    if output is None:
        sys.stdout.buffer.write(signed)
        sys.stdout.buffer.flush()
    else:
        output.write_bytes(signed)
        click.echo(
            f"{file}: signed by {key.certificate.subject.rfc4514_string()} -> {output}", err=True
        )


@edxml_group.command("verify")
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--trust",
    "anchors",
    multiple=True,
    type=click.Path(path_type=Path),
    help="CA root certificate (PEM or DER) the signer's chain must reach; repeat for several.",
)
@click.option(
    "--intermediate",
    "intermediates",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Intermediate CA certificate, for a signature that does not carry it.",
)
@click.option(
    "--crl",
    "crls",
    multiple=True,
    type=click.Path(path_type=Path),
    help="CRL file; with any, each certificate below the root must be covered by a current CRL.",
)
def verify_command(
    file: Path, anchors: tuple[Path, ...], intermediates: tuple[Path, ...], crls: tuple[Path, ...]
) -> None:
    """Verify the signature of FILE; exit 0 if valid (and trusted, with --trust), 1 otherwise."""
    if (intermediates or crls) and not anchors:
        raise click.UsageError("--intermediate and --crl check a chain: give its root with --trust")
    try:
        trust = Trust.from_files(anchors, intermediates, crls) if anchors else None
        info = signature.verify(_read(file), trust=trust)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    except (RejectedError, TransientError) as exc:
        click.echo(f"{file}: {exc}")
        raise SystemExit(1) from exc
    if info.trusted:
        chain = " <- ".join(c.subject.rfc4514_string() for c in info.chain[1:])
        trust_note = f"trusted through {chain}"
    else:
        trust_note = "intact, but not checked against trust anchors (give --trust CA)"
    click.echo(f"{file}: signature valid ({info.algorithm}) by {info.subject}; {trust_note}")


@edxml_group.command("history")
@click.argument("document_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.pass_obj
def history_command(state: Any, document_id: str, as_json: bool) -> None:
    """Show the life of one document in this bus's store, oldest first.

    DOCUMENT_ID is the edXML DocumentId (organ,yyyy/MM/dd,number/notation, as
    'lienthong edxml show' prints it) or its correlation id (edxml-...).
    """
    store = _store(state, "history")
    axis = {name for name, ep in state.config.endpoints.items() if ep.adapter == "axis"}
    found = history(store, document_id, axis_endpoints=axis)
    if not found.messages:
        raise click.ClickException(
            f"no message in this store belongs to document {document_id!r} (correlation "
            f"{found.correlation_id}). Hint: copy the DocumentId exactly, e.g. from 'lienthong "
            "edxml show FILE', and check --config points at this agency's bus"
        )
    if as_json:
        click.echo(json.dumps(found.as_dict(), ensure_ascii=False, indent=2))
        return
    click.echo(f"document {found.document_id}")
    click.echo(f"correlation {found.correlation_id}, {found.messages} message(s); times in UTC")
    for link in found.links:
        click.echo(link.line())
    for event in found.events:
        click.echo(event.line())
    if found.life:
        click.echo("life:")
        for line in found.life_lines():
            click.echo(f"  {line}")


def _store(state: Any, command: str) -> Any:
    if state is None or not hasattr(state, "bus"):
        raise click.ClickException(
            f"{command} reads the bus's store. Hint: run it as 'lienthong [--config FILE] edxml "
            f"{command} ...'"
        )
    return state.bus.store


@edxml_group.command("overdue")
@click.option(
    "--days",
    type=click.FloatRange(min=0),
    required=True,
    help="How many days a document may go without a status 06.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.pass_obj
def overdue_command(state: Any, days: float, as_json: bool) -> None:
    """List the documents without a status 06 (completed) after DAYS days.

    Both ways: documents this agency sent, with each recipient that has not
    finished them and its last status; documents it received and has not
    finished itself. Exit 0 whether or not any is overdue.
    """
    store = _store(state, "overdue")
    now = datetime.now(UTC)
    found = overdue(store.engine, days, now)
    if as_json:
        click.echo(json.dumps([o.as_dict() for o in found], ensure_ascii=False, indent=2))
        return
    click.echo(f"{len(found)} document(s) without a status 06 after {days:g} day(s)")
    for item in found:
        for line in item.lines(now):
            click.echo(line)


@edxml_group.command("certs")
@click.option(
    "--expiring",
    "expiring",
    type=click.FloatRange(min=0),
    metavar="DAYS",
    help="Only certificates that expire within DAYS days (expired ones included).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.pass_obj
def certs_command(state: Any, expiring: float | None, as_json: bool) -> None:
    """List the signing certificates the axis endpoints have verified, soonest expiry first."""
    from . import certificates

    store = _store(state, "certs")
    found = (
        certificates.listed(store.engine)
        if expiring is None
        else certificates.expiring_within(store.engine, expiring)
    )
    if as_json:
        click.echo(json.dumps([c.as_dict() for c in found], ensure_ascii=False, indent=2))
        return
    what = "seen" if expiring is None else f"expiring within {expiring:g} day(s)"
    click.echo(f"{len(found)} signing certificate(s) {what}; times in UTC")
    for c in found:
        trust = "trusted" if c.trusted else "untrusted"
        click.echo(f"{c.not_valid_after:%Y-%m-%d}  {c.subject}  ({trust})")
        click.echo(f"    agency {c.agency or '?'}; issuer {c.issuer}; serial {c.serial}")
        click.echo(f"    last document {c.last_document or '?'} on {c.last_seen:%Y-%m-%d %H:%M}")
