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
  each status 01…06 with who sent it, deliveries, retries, dead letters.

Registered on the main ``lienthong`` command by the document_axis plugin.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import date
from pathlib import Path
from typing import Any

import click

from lienthong.adapter import Secret
from lienthong.errors import ConfigError, RejectedError, TransientError

from . import edxml, signature, validation
from .history import history
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
    help="Day that dates must not be after (default: today).",
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
    now = today.date() if today is not None else date.today()  # type: ignore[attr-defined]
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
    for key, value in info.items():
        if key in ("attachments", "trace_headers"):
            continue
        if value is not None:
            click.echo(
                f"{key.replace('_', ' ')}: {', '.join(value) if isinstance(value, list) else value}"
            )
    for a in info.get("attachments", []):
        click.echo(f"attachment: {a['name']} ({a['content_type']}, {a['size']:,} bytes zipped)")
    for t in info.get("trace_headers", []):
        click.echo(f"trace: {t['organ_id']} at {t['timestamp']}")


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
    if state is None or not hasattr(state, "bus"):
        raise click.ClickException(
            "history reads the bus's store. Hint: run it as 'lienthong [--config FILE] edxml "
            "history ...'"
        )
    axis = {name for name, ep in state.config.endpoints.items() if ep.adapter == "axis"}
    found = history(state.bus.store, document_id, axis_endpoints=axis)
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
    for event in found.events:
        click.echo(event.line())
