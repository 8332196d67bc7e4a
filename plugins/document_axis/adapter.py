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

Parts: :mod:`.config` reads the settings at start, :mod:`.intake` is the
receive path, :mod:`.entries` the register entries, :mod:`.agencies` the
sync's records.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, ClassVar

from lienthong.adapter import Adapter, Capability, Inbox, Option, Services, SyncBatch
from lienthong.errors import ConfigError, ConfigProblem, FatalError, RejectedError, TransientError
from lienthong.message import Message

from . import agencies, config, entries, refusal
from .client import AxisClient, ReceivedItem
from .config import POLICIES
from .intake import KIND_DOCUMENT, KIND_STATUS, Intake, header_text
from .provenance import DEFAULT_REQUIRED_TYPES, Provenance

log = logging.getLogger(__name__)

KINDS = {KIND_DOCUMENT: "edoc", KIND_STATUS: "status"}


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

    def __init__(self, endpoint: str, settings: Mapping[str, Any], services: Services) -> None:
        super().__init__(endpoint, settings, services)
        self._intake = Intake(
            endpoint, self.settings, services, provenance=self._provenance, sign=self._signed
        )

    # --- lifecycle ---

    def start(self) -> None:
        config.check(self.endpoint, self.settings)
        self.provenance = config.provenance(self.endpoint, self.settings, self.services)
        for warning in self.provenance.warnings():
            log.warning("endpoint '%s': SIGNATURES NOT FULLY CHECKED: %s", self.endpoint, warning)
        self._signing_key = config.signing_key(self.endpoint, self.settings, self.services)
        self.client = config.client(self.settings, self.services)
        config.check_axis(self.endpoint, self.settings, self.client)

    def stop(self) -> None:
        if self.client is not None:
            self.client.session.close()
            self.client = None

    def _client(self) -> AxisClient:
        if self.client is None:
            raise FatalError(f"endpoint '{self.endpoint}': the axis adapter is not started")
        return self.client

    # --- receive ---

    def receive(self, inbox: Inbox) -> int:
        """Poll once (:class:`.intake.Intake`): hand over what waits, then acknowledge it."""
        return self._intake.receive(self._client(), inbox)

    def to_message(self, item: ReceivedItem, body: bytes) -> Message:
        """The bus message for one fetched axis item, with its routing headers and problems."""
        return self._intake.take(item, body)[0]

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
        sender = header_text(tree, "ed:From/ed:OrganId")
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
            entries.register_sent(
                self.services.engine, message, tree, endpoint=self.endpoint, organ_id=str(organ)
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
        """The axis's agency list as ``agency`` records (:mod:`.agencies`), for the email directory.

        The axis has no change feed, so every read is a complete snapshot and
        ``since`` is ignored.
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
        return SyncBatch(
            records=agencies.records(self.endpoint, self._client().agencies()),
            complete=True,
            cursor=None,
        )
