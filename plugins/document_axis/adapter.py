"""Axis adapter: receive and send edXML documents and statuses through the national document axis.

Features:
    - receive: polls the axis for documents and statuses addressed to one agency,
      fetches each, validates it (edXML rules, attachment size, signature policy),
      hands them to the bus and only then acknowledges the transport to the axis:
      ``done`` once stored, ``fail`` when the bus parked it as invalid;
    - send: sends ``edxml.document`` and ``edxml.status`` messages from that agency,
      passing the delivery key as the signed ``idempotency-key`` parameter;
    - sync: reads the axis agency list as ``agency`` records (code, name,
      mailbox, parent), a complete snapshot for a sync into the email directory;
    - correlation: a document and every status answering it share one
      correlation id, derived from the edXML ``DocumentId``;
    - errors by what happens next: network trouble, timeouts and 5xx are
      transient; a refused secret stops the route; a refused document is
      dead-lettered.

Connection settings:
    ``url`` is the axis endpoint (``https://axis.example.gov.vn/vxp``); the axis
    knows this system by ``system_id`` and a shared ``secret`` used for the
    HMAC-SHA256 request signature. ``organ_id`` is the agency code (mã định danh)
    this endpoint receives and sends for.

Options:
    url, system_id, secret, organ_id, timeout (10 s), signature_policy
    (``require`` | ``verify-if-present`` | ``off``), trusted_certs (certificate
    files a signer must be or be issued by; relative to the config file's
    folder), max_attachment_bytes (10 MiB),
    batch_size (50 per message type and poll), sandbox (false: refuse to start
    against a sandbox axis unless set).

Received messages: kind ``edxml.document`` or ``edxml.status``, source key = the
axis docId, headers ``axis_doc_id``, ``from``, ``to``, ``document_id``,
``status_code``, ``response_for`` (the answered DocumentId, for correlation),
``signed_by`` when a signature was verified, ``edxml_document_id``, ``edxml_kind``
(document | status) and ``edxml_status``, and ``invalid`` listing every
problem when the message breaks a rule (attachments are opened as a receiver
would: zip bombs and traversing names are problems too): the bus stores such a
message and parks it, and the adapter then acknowledges ``fail``. The
correlation id is ``edxml-`` + SHA-256 of the document's id (see :mod:`.correlation`).

Idempotency: the real axis is not known to deduplicate, so a crash between a
successful ``sendEdoc`` and the bus marking the delivery may send twice there;
receivers tell the copies apart by edXML ``DocumentId``. The sandbox axis
deduplicates on (system, idempotency-key) and answers the first DocId.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, ClassVar

import requests
from lxml import etree

from lienthong.adapter import INVALID_HEADER, Adapter, Capability, Inbox, Option, Record, SyncBatch
from lienthong.errors import (
    ConfigError,
    ConfigProblem,
    FatalError,
    LienthongError,
    RejectedError,
    TransientError,
)
from lienthong.message import Message
from lienthong.xml import XmlRejected

from .client import AxisAuthError, AxisClient, ReceivedItem
from .correlation import facts
from .edxml import Attachment

log = logging.getLogger(__name__)

NS = {"ed": "http://www.mic.gov.vn/TBT/QCVN_102_2016"}
_HEADER = "/ed:edXML/ed:edXMLEnvelope/ed:edXMLHeader/ed:MessageHeader/"
_ED = f"{{{NS['ed']}}}"
KIND_DOCUMENT = "edxml.document"
KIND_STATUS = "edxml.status"
KINDS = {KIND_DOCUMENT: "edoc", KIND_STATUS: "status"}
POLICIES = ("require", "verify-if-present", "verify_if_present", "off")


@dataclass(frozen=True)
class _Received:
    item: ReceivedItem
    message: Message


def _text(tree: etree._ElementTree, path: str) -> str:
    return str(tree.xpath(f"string({_HEADER}{path})", namespaces=NS)).strip()


def _texts(tree: etree._ElementTree, path: str) -> list[str]:
    return [str(t).strip() for t in tree.xpath(f"{_HEADER}{path}/text()", namespaces=NS)]


class AxisAdapter(Adapter):
    """One agency's connection to the national document axis."""

    name: ClassVar[str] = "axis"
    version: ClassVar[str] = "1"
    summary: ClassVar[str] = "National document axis (edXML over the VXP REST API, HMAC-signed)"
    options: ClassVar[tuple[Option, ...]] = (
        Option(
            "url",
            "the axis endpoint URL",
            example="https://axis.example.gov.vn/vxp",
            pattern=r"https?://\S+",
        ),
        Option("system_id", "the id the axis knows this system by", example="lienthong-h41"),
        Option(
            "secret",
            "the shared secret for the request HMAC",
            secret=True,
            example={"env": "AXIS_SECRET"},
        ),
        Option(
            "organ_id",
            "the agency code this endpoint receives and sends for",
            example="000.00.00.H41",
        ),
        Option(
            "timeout", "seconds to wait for each axis call", default=10.0, type=float, minimum=0.1
        ),
        Option(
            "signature_policy",
            "require, verify-if-present or off, for received documents",
            default="verify-if-present",
            choices=POLICIES,
        ),
        Option(
            "trusted_certs",
            "certificate files (PEM or DER) a signer must be or be issued "
            "by; empty trusts the certificate each message carries",
            default=[],
            type=list,
            example=["/etc/lienthong/ca-chinhphu.pem"],
        ),
        Option(
            "max_attachment_bytes",
            "largest decoded attachment accepted",
            default=10 * 1024 * 1024,
            type=int,
            minimum=1,
        ),
        Option(
            "signing_key",
            "key that signs what this endpoint sends: PEM (key, or key and certificate) or "
            "PKCS#12, relative to the config file; none sends unsigned",
            default=None,
            example="/etc/lienthong/keys/so-y-te.p12",
        ),
        Option(
            "signing_cert", "certificate PEM, when signing_key holds the key alone", default=None
        ),
        Option("signing_password", "password of signing_key", default=None, secret=True),
        Option(
            "signing_algorithm",
            "rsa-sha256 (default), rsa-sha512 or rsa-sha1",
            default="rsa-sha256",
        ),
        Option(
            "batch_size",
            "most items fetched per message type and poll",
            default=50,
            type=int,
            minimum=1,
        ),
        Option("sandbox", "allow a sandbox axis (tests and demos only)", default=False, type=bool),
    )
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.RECEIVE, Capability.SEND, Capability.SYNC}
    )
    transient_errors: ClassVar[tuple[type[BaseException], ...]] = (TransientError,)

    client: AxisClient | None = None
    _signing_key: Any = None

    # --- lifecycle ---

    def start(self) -> None:
        self._check_settings()
        self._signing_key = self._load_signing_key()
        s = self.settings
        session = requests.Session()
        self.client = AxisClient(
            s["url"],
            s["system_id"],
            s["secret"],
            session=session,
            timeout=float(s["timeout"]),
            clock=self.services.clock,
        )
        try:
            response_is_sandbox = self.client.check(organ_id=s["organ_id"])
        except AxisAuthError as exc:
            where = f"endpoints.{self.endpoint}.{exc.option}"
            raise ConfigError([ConfigProblem(where, str(exc))]) from exc
        if response_is_sandbox and not s["sandbox"]:
            raise ConfigError(
                [
                    ConfigProblem(
                        f"endpoints.{self.endpoint}.url",
                        f"{s['url']} is a SANDBOX axis, not the national axis. "
                        "Hint: point 'url' at the real axis, or set 'sandbox: true' for tests "
                        "and demos",
                    )
                ]
            )

    def _load_signing_key(self) -> Any:
        from . import signature

        s = self.settings
        if not s["signing_key"]:
            return None
        if s["signing_algorithm"] not in signature.ALGORITHMS:
            raise ConfigError(
                [
                    ConfigProblem(
                        f"endpoints.{self.endpoint}.signing_algorithm",
                        f"unknown algorithm {s['signing_algorithm']!r}; use one of "
                        f"{', '.join(sorted(signature.ALGORITHMS))}",
                    )
                ]
            )
        cert = self.services.base_dir / s["signing_cert"] if s["signing_cert"] else None
        try:
            return signature.load_key(
                self.services.base_dir / s["signing_key"], s["signing_password"], cert=cert
            )
        except LienthongError as exc:
            raise ConfigError(
                [ConfigProblem(f"endpoints.{self.endpoint}.signing_key", str(exc))]
            ) from exc

    def stop(self) -> None:
        if self.client is not None:
            self.client.session.close()
            self.client = None

    def _check_settings(self) -> None:
        s = self.settings
        where = f"endpoints.{self.endpoint}"
        problems = []
        if not str(s.get("url", "")).startswith(("http://", "https://")):
            problems.append(
                ConfigProblem(
                    f"{where}.url",
                    f"{s.get('url')!r} is not an http(s) URL. "
                    "Hint: e.g. https://axis.example.gov.vn/vxp",
                )
            )
        if s.get("signature_policy") not in POLICIES:
            problems.append(
                ConfigProblem(
                    f"{where}.signature_policy",
                    f"{s.get('signature_policy')!r} is not one of require, verify-if-present, off",
                )
            )
        organ = str(s.get("organ_id", ""))
        if not organ or len(organ.split(".")) > 4:
            problems.append(
                ConfigProblem(
                    f"{where}.organ_id",
                    f"{organ!r} is not an agency code. Hint: e.g. 000.00.00.H41 (at most 4 groups)",
                )
            )
        if problems:
            raise ConfigError(problems)

    def _client(self) -> AxisClient:
        if self.client is None:
            raise FatalError(f"endpoint '{self.endpoint}': the axis adapter is not started")
        return self.client

    # --- receive ---

    def receive(self, inbox: Inbox) -> int:
        client = self._client()
        organ = self.settings["organ_id"]
        batch = int(self.settings["batch_size"])
        received: list[_Received] = []
        for message_type in ("edoc", "status"):
            for item in client.received(organ_id=organ, message_type=message_type)[:batch]:
                try:
                    body = client.fetch(item.doc_id, organ_id=organ)
                except RejectedError as exc:
                    log.warning(
                        "endpoint '%s': skipping axis item %s: %s", self.endpoint, item.doc_id, exc
                    )
                    continue
                received.append(_Received(item, self.to_message(item, body)))
        if not received:
            return 0
        acceptances = inbox.accept([r.message for r in received])
        for r, acceptance in zip(received, acceptances, strict=True):
            status = "fail" if acceptance.parked else "done"
            client.update_status(r.item.doc_id, status, organ_id=organ)
        return len(received)

    def to_message(self, item: ReceivedItem, body: bytes) -> Message:
        """The bus message for one fetched axis item, with its routing headers and problems."""
        kind = KIND_STATUS if item.message_type == "status" else KIND_DOCUMENT
        headers = {"axis_doc_id": item.doc_id, "from": item.from_}
        message = Message(
            body=body, kind=kind, source=self.endpoint, source_key=item.doc_id, headers=headers
        )
        try:
            tree = message.tree(max_bytes=self.services.max_message_bytes)
        except XmlRejected as exc:
            headers[INVALID_HEADER] = str(exc)
            return message
        found = facts(tree.getroot())
        if found is not None:
            # Set here too, not only in the prepare hook: a message parked as
            # invalid skips that hook but still belongs to its document's history.
            message.correlation_id = found.correlation_id
            headers.update(found.headers())
        headers["from"] = _text(tree, "ed:From/ed:OrganId") or item.from_
        response_for = _text(tree, "ed:ResponseFor/ed:DocumentId")
        if response_for:
            headers["response_for"] = response_for
        if kind == KIND_STATUS:
            headers["to"] = _text(tree, "ed:ResponseFor/ed:OrganId")
            headers["status_code"] = _text(tree, "ed:StatusCode")
        else:
            headers["document_id"] = _text(tree, "ed:DocumentId")
            headers["to"] = ",".join(_texts(tree, "ed:To/ed:OrganId"))
        problems = self.problems(body, tree)
        try:
            signer = self.signer(body)
        except RejectedError as exc:
            problems.append(str(exc))
        else:
            if signer:
                headers["signed_by"] = signer
        if problems:
            headers[INVALID_HEADER] = "; ".join(problems)
        return message

    def problems(self, body: bytes, tree: etree._ElementTree) -> list[str]:
        """Every edXML rule and size limit ``body`` breaks, each with its line where known."""
        from .validation import check

        found = [str(p) for p in check(body, max_bytes=self.services.max_message_bytes)]
        limit = int(self.settings["max_attachment_bytes"])
        for encoded in tree.iterfind(f"{_ED}AttachmentEncoded/{_ED}Attachment"):
            text = "".join((encoded.findtext(f"{_ED}ContentTransferEncoded") or "").split())
            name = encoded.findtext(f"{_ED}AttachmentName")
            size = len(text) * 3 // 4
            if size > limit:
                found.append(
                    f"line {encoded.sourceline}: attachment '{name or '?'}' is about {size:,} "
                    f"bytes, over max_attachment_bytes {limit:,}"
                )
                continue
            try:
                data = Attachment.decode(text)
            except RejectedError:
                continue  # validation has reported it, with its line
            attachment = Attachment(encoded.findtext(f"{_ED}ContentId") or "?", name, data=data)
            try:
                # Opens the ZIP the way a receiver will: traversing names, several
                # entries and zip bombs (the stream is capped at the limit) are refused.
                attachment.extract(limit)
            except RejectedError as exc:
                found.append(f"line {encoded.sourceline}: {exc}")
        return found

    def signer(self, body: bytes) -> str | None:
        """Apply the signature policy to a received message: the verified signer, if any.

        Raises ``RejectedError`` saying why when the policy refuses the message.
        """
        policy = self.settings["signature_policy"].replace("-", "_")
        if policy == "off":
            return None
        from .signature import check_policy

        info = check_policy(
            body,
            policy,
            self.trusted_certs() or None,
            max_bytes=self.services.max_message_bytes,
        )
        return None if info is None else info.subject

    def trusted_certs(self) -> list[str]:
        """The ``trusted_certs`` files, relative ones taken from the config file's folder."""
        return [str(self.services.base_dir / str(p)) for p in self.settings["trusted_certs"]]

    # --- send ---

    def send(self, message: Message, *, key: str) -> None:
        message_type = KINDS.get(message.kind)
        if message_type is None:
            raise RejectedError(
                f"endpoint '{self.endpoint}': cannot send a message of kind '{message.kind}' "
                f"to the axis. Hint: route only {' or '.join(KINDS)} to this endpoint"
            )
        tree = message.tree(max_bytes=self.services.max_message_bytes)
        organ = self.settings["organ_id"]
        sender = _text(tree, "ed:From/ed:OrganId")
        problems = self.problems(message.body, tree)
        if sender != organ:
            problems.append(
                f"From/OrganId is '{sender}' but this endpoint sends for '{organ}'. Hint: route "
                "the message to the endpoint of its sending agency, or fix the mapping"
            )
        if problems:
            raise RejectedError(
                f"endpoint '{self.endpoint}': message {message.id} is not valid edXML to send: "
                + "; ".join(problems)
            )
        body = message.body
        if self._signing_key is not None:
            from . import signature

            # RSA PKCS#1 v1.5 is deterministic: a redelivery sends the same bytes.
            body = signature.sign(
                body,
                self._signing_key,
                self.settings["signing_algorithm"],
                max_bytes=self.services.max_message_bytes,
            )
        doc_id = self._client().send(
            body,
            organ_id=organ,
            message_type=message_type,
            key=key,
            filename=f"{message.id}.edxml",
        )
        log.info(
            "endpoint '%s': sent message %s as axis docId %s", self.endpoint, message.id, doc_id
        )

    # --- sync ---

    def sync_read(self, entity: str, since: str | None) -> SyncBatch:
        """The axis's agency list as ``agency`` records, for a sync into the email directory.

        Each record is keyed by the agency code, with the fields of the
        directory's agency map: ``code``, ``name``, ``mailbox`` and ``parent``
        (the parent agency's code; the axis names it by its internal id). Empty
        values are ``None``, as the directory reads absent attributes. The axis
        has no change feed, so every read is a complete snapshot and ``since``
        is ignored.
        """
        if entity != "agency":
            raise ConfigError(
                [
                    ConfigProblem(
                        f"endpoints.{self.endpoint}",
                        f"the axis has no entity {entity!r} to sync. Hint: use 'agency' "
                        "(the axis agency list)",
                    )
                ]
            )
        agencies = self._client().agencies()
        code_of = {a.id: a.code for a in agencies if a.id}
        codes = {a.code for a in agencies}
        records = []
        for agency in agencies:
            parent = code_of.get(agency.pid) or (agency.pid if agency.pid in codes else None)
            if agency.pid and parent is None:
                log.warning(
                    "endpoint '%s': agency %s names parent %r, which is not on the axis list",
                    self.endpoint,
                    agency.code,
                    agency.pid,
                )
            records.append(
                Record(
                    key=agency.code,
                    fields={
                        "code": agency.code,
                        "name": agency.name or None,
                        "mailbox": agency.mail or None,
                        "parent": parent,
                    },
                )
            )
        return SyncBatch(records=records, complete=True, cursor=None)
