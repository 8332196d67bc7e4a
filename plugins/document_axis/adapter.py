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
    - refusals: a document refused at intake for a reason its sender can fix
      brings its sender a status 02 with the reason in Vietnamese
      (``on_refuse``, :mod:`.refusal`), once per document;
    - a register of the documents sent and taken in (:mod:`.register`: their
      business and the documents they concern, for ``edxml history`` and
      ``edxml overdue``) and of the signing certificates verified
      (:mod:`.certificates`: ``edxml certs`` and the expiry gauge);
    - correlation: a document and every status answering it share one
      correlation id, derived from the edXML ``DocumentId``;
    - errors by what happens next: network trouble, timeouts and 5xx are
      transient; a refused secret is fatal (retried slowly); a refused document is
      dead-lettered.

Connection settings:
    ``url`` is the axis endpoint (``https://axis.example.gov.vn/vxp``); the axis
    knows this system by ``system_id`` and a shared ``secret`` used for the
    HMAC-SHA256 request signature, in the wire format of the vendor's SDK
    (:mod:`.client`). ``organ_id`` is the agency code (mã định danh) this
    endpoint receives and sends for: the axis binds the system to it, and an
    item listed for another agency stops the endpoint with a clear error.

Options:
    url, system_id, secret, organ_id, timeout (10 s), hash_file (``unpadded`` as
    the vendor SDK writes it, or ``padded``), nonce and idempotency_key (true:
    sign these extra parameters; false sends exactly the SDK's), signature_policy
    (``require`` | ``verify-if-present`` | ``off``), signature_required_for
    (document types that need a signature under ``verify-if-present``),
    trust_anchors, intermediate_certs, crl_files (files, relative to the config
    file's folder), signer_agencies (subject pattern → agency codes): see
    docs/signatures.md; organ_name, on_refuse (``status-02`` | ``silent``);
    max_attachment_bytes (10 MiB),
    batch_size (50 per message type and poll), sandbox (false: refuse to start
    against a sandbox axis unless set).

Received messages: kind ``edxml.document`` or ``edxml.status``, source key = the
axis docId, headers ``axis_doc_id``, ``from`` (the sender the axis reported; a document
whose ``From`` differs is refused), ``to``, ``document_id``,
``status_code``, ``response_for`` (the answered DocumentId, for correlation),
``signature`` (trusted | untrusted) and ``signed_by`` (the trusted signer) when
signed, ``edxml_document_id``, ``edxml_kind``
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
from sqlalchemy.exc import SQLAlchemyError

from lienthong.adapter import (
    INVALID_HEADER,
    Acceptance,
    Adapter,
    Capability,
    Inbox,
    Option,
    Record,
    SyncBatch,
)
from lienthong.errors import (
    ConfigError,
    ConfigProblem,
    FatalError,
    LienthongError,
    RejectedError,
    TransientError,
)
from lienthong.message import Message
from lienthong.store import utcnow
from lienthong.xml import XmlRejected

from . import certificates, edxml, refusal, register
from .client import HASH_FILE_FORMS, AxisAuthError, AxisClient, ReceivedItem, Wire
from .correlation import (
    BUSINESS_HEADER,
    CONCERNS_HEADER,
    CONCERNS_SEPARATOR,
    DOCUMENT_ID_HEADER,
    facts,
)
from .edxml import Document, text_of
from .edxml import build as edxml_build
from .inspection import Inspection, inspect
from .provenance import DEFAULT_REQUIRED_TYPES, Provenance
from .validation import parse_problem

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
    inspection: Inspection | None


def _text(tree: etree._ElementTree, path: str) -> str:
    return str(tree.xpath(f"string({_HEADER}{path})", namespaces=NS)).strip()


def _texts(tree: etree._ElementTree, path: str) -> list[str]:
    """Each element's whole text: ``text()`` would split a value at a comment into two."""
    return [text_of(e).strip() for e in tree.xpath(f"{_HEADER}{path}", namespaces=NS)]


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
            example="000.00.00.H15",
        ),
        Option(
            "timeout", "seconds to wait for each axis call", default=10.0, type=float, minimum=0.1
        ),
        Option(
            "hash_file",
            "unpadded (each SHA-256 byte without its leading zero, as the vendor SDK writes "
            "it) or padded (standard hex), for the sendEdoc hash-file",
            default="unpadded",
        ),
        Option(
            "nonce",
            "sign a random nonce with each call, so an axis that checks it can refuse replays",
            default=True,
            type=bool,
        ),
        Option(
            "idempotency_key",
            "sign the delivery key with each sendEdoc, so an axis that knows it keeps one copy",
            default=True,
            type=bool,
        ),
        Option(
            "signature_policy",
            "require, verify-if-present or off, for received documents and statuses",
            default="verify-if-present",
            choices=POLICIES,
        ),
        Option(
            "signature_required_for",
            "document types (TypeName) that need a trusted signature bound to their sender "
            "even under verify-if-present",
            default=list(DEFAULT_REQUIRED_TYPES),
            type=list,
            example=["Quyết định", "Nghị quyết"],
        ),
        Option(
            "trust_anchors",
            "CA root certificate files (PEM or DER) a signer's chain must reach; only CA "
            "certificates; none: no signer is trusted",
            default=[],
            type=list,
            example=["/etc/lienthong/ca/ca-chinhphu.pem"],
        ),
        Option(
            "intermediate_certs",
            "intermediate CA certificate files, for signatures that do not carry them",
            default=[],
            type=list,
        ),
        Option(
            "crl_files",
            "the CAs' CRL files (PEM or DER), re-read when they change; a revoked signer is "
            "refused; none: revocation is not checked",
            default=[],
            type=list,
            example=["/var/lib/lienthong/crl/ca-chinhphu.crl"],
        ),
        Option(
            "signer_agencies",
            "certificate subject pattern (RFC 4514) -> the agency codes its holders sign for",
            default={},
            type=dict,
            example={"O=UBND tỉnh Đắk Lắk,C=VN": ["000.00.00.H15"]},
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
            "organ_name",
            "the agency's name, written in the statuses this endpoint makes (its 02 refusals)",
            default=None,
            example="Sở Y tế tỉnh Đắk Lắk",
        ),
        Option(
            "on_refuse",
            "status-02: a document refused at intake for a reason its sender can fix (invalid, "
            "unsigned where required, a bad or unbound signature, not addressed to this agency) "
            "brings its sender a status 02 with the reason in Vietnamese; silent: nothing is sent",
            default="status-02",
            choices=refusal.ON_REFUSE,
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
    provenance: Provenance | None = None

    # --- lifecycle ---

    def start(self) -> None:
        self._check_settings()
        self.provenance = self._load_provenance()
        for warning in self.provenance.warnings():
            log.warning("endpoint '%s': SIGNATURES NOT FULLY CHECKED: %s", self.endpoint, warning)
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
            wire=Wire(
                hash_file=s["hash_file"],
                nonce=bool(s["nonce"]),
                idempotency_key=bool(s["idempotency_key"]),
            ),
        )
        try:
            response_is_sandbox = self.client.check()
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

    def _load_provenance(self) -> Provenance:
        """Trust anchors, intermediates, CRLs and the signer binding, every problem at once."""
        from .binding import Binding
        from .trust import Trust

        s = self.settings
        where = f"endpoints.{self.endpoint}"
        problems: list[ConfigProblem] = []
        trust = binding = None

        def files(option: str) -> list[Any]:
            return [self.services.base_dir / str(p) for p in s[option]]

        try:
            trust = Trust.from_files(
                files("trust_anchors"), files("intermediate_certs"), files("crl_files")
            )
        except ConfigError as exc:
            problems.extend(ConfigProblem(f"{where}.{p.location}", p.message) for p in exc.problems)
        try:
            binding = Binding(s["signer_agencies"])
        except ConfigError as exc:
            problems.extend(ConfigProblem(f"{where}.{p.location}", p.message) for p in exc.problems)
        if trust is None or binding is None:
            raise ConfigError(problems)
        try:
            return Provenance(
                policy=s["signature_policy"],
                required_types=[str(t) for t in s["signature_required_for"]],
                trust=trust,
                binding=binding,
                max_bytes=self.services.max_message_bytes,
            )
        except ConfigError as exc:
            raise ConfigError(
                ConfigProblem(f"{where}.signature_policy", p.message) for p in exc.problems
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
        if s.get("hash_file") not in HASH_FILE_FORMS:
            problems.append(
                ConfigProblem(
                    f"{where}.hash_file",
                    f"{s.get('hash_file')!r} is not one of {', '.join(HASH_FILE_FORMS)}. Hint: "
                    "unpadded is what the vendor SDK sends; confirm with the axis's test "
                    "environment (docs/axis.md, going live)",
                )
            )
        organ = str(s.get("organ_id", ""))
        if not organ or len(organ.split(".")) > 4:
            problems.append(
                ConfigProblem(
                    f"{where}.organ_id",
                    f"{organ!r} is not an agency code. Hint: e.g. 000.00.00.H15 (at most 4 groups)",
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
        batch = int(self.settings["batch_size"])
        received: list[_Received] = []
        for message_type in ("edoc", "status"):
            for item in client.received(message_type=message_type)[:batch]:
                self._check_addressee(item)
                try:
                    body = client.fetch(item.doc_id)
                except RejectedError as exc:
                    log.warning(
                        "endpoint '%s': skipping axis item %s: %s", self.endpoint, item.doc_id, exc
                    )
                    continue
                message, inspection = self._take(item, body)
                received.append(_Received(item, message, inspection))
        if not received:
            return 0
        acceptances = inbox.accept([r.message for r in received])
        self._remember(received, acceptances)
        for r, acceptance in zip(received, acceptances, strict=True):
            if acceptance.parked:
                try:
                    self._refuse(r, acceptance)
                except TransientError as exc:
                    # Left unacknowledged: the next poll takes it again and refuses it then.
                    log.warning(
                        "endpoint '%s': the status 02 for axis item %s was not sent (%s); the "
                        "item stays on the axis until it is",
                        self.endpoint,
                        r.item.doc_id,
                        exc,
                    )
                    continue
                except RejectedError as exc:
                    # The axis refused the 02 itself: sending it again cannot help.
                    log.warning(
                        "endpoint '%s': the axis refused the status 02 for item %s: %s",
                        self.endpoint,
                        r.item.doc_id,
                        exc,
                    )
            client.update_status(r.item.doc_id, "fail" if acceptance.parked else "done")
        return len(received)

    def _remember(self, received: list[_Received], acceptances: list[Acceptance]) -> None:
        """Register the documents taken in and the signing certificates verified."""
        engine = self.services.engine
        if engine is None:
            return
        now = self.services.clock()
        entries, seen = [], []
        for r, acceptance in zip(received, acceptances, strict=True):
            inspection = r.inspection
            if inspection is None:
                continue
            document_id = r.message.headers.get(DOCUMENT_ID_HEADER, "")
            info = inspection.verdict.signature
            if info is not None:
                seen.append(
                    certificates.Seen.of(
                        info,
                        agency=inspection.verdict.sender,
                        document_id=document_id,
                        endpoint=self.endpoint,
                        at=now,
                    )
                )
            document = inspection.message
            if not acceptance.parked and isinstance(document, Document) and document_id:
                entries.append(self._entry(r.message, document, "in", inspection.verdict.sender))
        try:
            register.record(engine, entries)
            certificates.record(engine, seen)
        except SQLAlchemyError as exc:
            raise TransientError(
                f"endpoint '{self.endpoint}': the axis register could not be written: {exc}"
            ) from exc

    def _entry(
        self, message: Message, document: Document, direction: str, sender: str
    ) -> register.Entry:
        headers = message.headers
        return register.Entry(
            message_id=message.id,
            endpoint=self.endpoint,
            direction=direction,
            organ_id=str(self.settings["organ_id"]),
            document_id=document.document_id or "",
            correlation_id=message.correlation_id,
            sender=sender,
            recipients=tuple(document.recipient_ids),
            business=headers.get(BUSINESS_HEADER, "new"),
            concerns=tuple(
                c for c in headers.get(CONCERNS_HEADER, "").split(CONCERNS_SEPARATOR) if c
            ),
            subject=document.subject or "",
            at=utcnow(),
        )

    def _refuse(self, received: _Received, acceptance: Acceptance) -> None:
        """Send the sender a status 02 for a document refused at intake (``on_refuse``)."""
        inspection = received.inspection
        message = received.message
        if (
            self.settings["on_refuse"] != "status-02"
            or INVALID_HEADER not in message.headers  # parked later: ours to fix, not the sender's
            or inspection is None
            or not isinstance(inspection.message, Document)
            or not inspection.message.document_id
        ):
            return
        document = inspection.message
        sender = inspection.verdict.sender
        engine = self.services.engine
        doc_id = received.item.doc_id
        if engine is None:
            if acceptance.duplicate:
                return  # no store to tell whether it was refused already
        elif refusal.already(engine, self.endpoint, doc_id, sender, document.document_id or ""):
            return
        status = refusal.status_02(
            document,
            organ_id=str(self.settings["organ_id"]),
            organ_name=self.settings.get("organ_name"),
            sender=sender,
            problems=inspection.problems,
            now=edxml.axis_now(self.services.clock()),
        )
        body = self._signed(edxml_build(status))
        status_doc_id = self._client().send(
            body,
            organ_id=str(self.settings["organ_id"]),
            message_type="status",
            key=f"status-02-{doc_id}",
        )
        log.info(
            "endpoint '%s': refused %s from %s with status 02 (axis docId %s)",
            self.endpoint,
            document.document_id,
            sender,
            status_doc_id,
        )
        if engine is not None:
            refusal.record(
                engine,
                endpoint=self.endpoint,
                axis_doc_id=doc_id,
                message_id=acceptance.message_id,
                organ_id=str(self.settings["organ_id"]),
                document_id=document.document_id or "",
                correlation_id=message.correlation_id,
                sender=sender,
                reason=status.description or "",
                status_doc_id=status_doc_id,
                sent_at=utcnow(),
            )

    def _check_addressee(self, item: ReceivedItem) -> None:
        """The axis lists what waits for the system's own agency: it must be ``organ_id``."""
        organ = self.settings["organ_id"]
        if item.to and item.to != organ:
            raise AxisAuthError(
                f"endpoint '{self.endpoint}': the axis lists item {item.doc_id} for agency "
                f"'{item.to}' to system '{self.settings['system_id']}', but this endpoint "
                f"receives for '{organ}'. Hint: the axis binds each system to one agency: "
                "check 'organ_id' and 'system_id'",
                option="organ_id",
            )

    def to_message(self, item: ReceivedItem, body: bytes) -> Message:
        """The bus message for one fetched axis item, with its routing headers and problems."""
        return self._take(item, body)[0]

    def _take(self, item: ReceivedItem, body: bytes) -> tuple[Message, Inspection | None]:
        """The message for one fetched item and what inspecting it found (None if not XML)."""
        kind = KIND_STATUS if item.message_type == "status" else KIND_DOCUMENT
        headers = {"axis_doc_id": item.doc_id, "from": item.from_}
        message = Message(
            body=body, kind=kind, source=self.endpoint, source_key=item.doc_id, headers=headers
        )
        try:
            tree = message.tree(max_bytes=self.services.max_message_bytes)
        except XmlRejected as exc:
            headers[INVALID_HEADER] = str(parse_problem(exc))
            return message, None
        found = facts(tree.getroot())
        if found is not None:
            # Set here too, not only in the prepare hook: a message parked as
            # invalid skips that hook but still belongs to its document's history.
            message.correlation_id = found.correlation_id
            headers.update(found.headers())
        response_for = _text(tree, "ed:ResponseFor/ed:DocumentId")
        if response_for:
            headers["response_for"] = response_for
        if kind == KIND_STATUS:
            headers["to"] = _text(tree, "ed:ResponseFor/ed:OrganId")
            headers["status_code"] = _text(tree, "ed:StatusCode")
        else:
            headers["document_id"] = _text(tree, "ed:DocumentId")
            headers["to"] = ",".join(_texts(tree, "ed:To/ed:OrganId"))
        inspection = inspect(
            tree,
            provenance=self._provenance(),
            axis_sender=item.from_,
            document=kind == KIND_DOCUMENT,
            organ_id=None if kind == KIND_STATUS else str(self.settings["organ_id"]),
            max_attachment_bytes=int(self.settings["max_attachment_bytes"]),
        )
        for warning in inspection.warnings:
            log.warning("endpoint '%s': %s", self.endpoint, warning)
        headers.update(inspection.verdict.headers())
        if inspection.problems:
            headers[INVALID_HEADER] = "; ".join(inspection.problems)
        return message, inspection

    def problems(self, body: bytes) -> list[str]:
        """Every edXML rule and size limit ``body`` breaks, each with its line where known.

        The same checks as ``lienthong edxml validate`` (:func:`.validation.check`):
        attachments are opened as a receiver would. Warnings are logged, not problems.
        """
        from .validation import check

        found = check(
            body,
            max_bytes=self.services.max_message_bytes,
            max_attachment_bytes=int(self.settings["max_attachment_bytes"]),
        )
        for warning in (p for p in found if not p.is_error):
            log.warning("endpoint '%s': %s", self.endpoint, warning)
        return [str(p) for p in found if p.is_error]

    def _provenance(self) -> Provenance:
        if self.provenance is None:
            raise FatalError(f"endpoint '{self.endpoint}': the axis adapter is not started")
        return self.provenance

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
        problems = self.problems(message.body)
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
        doc_id = self._client().send(
            self._signed(message.body),
            organ_id=organ,
            message_type=message_type,
            key=key,
        )
        log.info(
            "endpoint '%s': sent message %s as axis docId %s", self.endpoint, message.id, doc_id
        )
        if message_type == "edoc" and self.services.engine is not None:
            self._register_sent(message, tree)

    def _register_sent(self, message: Message, tree: etree._ElementTree) -> None:
        """Register a document sent, for ``edxml overdue`` and its history's links."""
        try:
            document = edxml.read_root(tree.getroot())
        except RejectedError:
            return  # validated above; a document that cannot be read is not registered
        if not isinstance(document, Document) or not document.document_id:
            return
        found = facts(tree.getroot())
        if found is not None:
            message.headers.update(found.headers())
            message.correlation_id = found.correlation_id
        entry = self._entry(message, document, "out", str(self.settings["organ_id"]))
        assert self.services.engine is not None
        try:
            register.record(self.services.engine, [entry])
        except SQLAlchemyError as exc:
            # Sent already: only the register's index misses it; say so, do not send again.
            log.warning(
                "endpoint '%s': document %s was sent but not registered: %s",
                self.endpoint,
                document.document_id,
                exc,
            )

    def _signed(self, body: bytes) -> bytes:
        """``body`` signed with the endpoint's signing key, or as it is when it has none."""
        if self._signing_key is None:
            return body
        from . import signature

        # RSA PKCS#1 v1.5 is deterministic: a redelivery sends the same bytes.
        return signature.sign(
            body,
            self._signing_key,
            self.settings["signing_algorithm"],
            max_bytes=self.services.max_message_bytes,
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
