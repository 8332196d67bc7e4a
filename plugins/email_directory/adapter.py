"""Email directory adapter: the province's LDAP directory of agencies and accounts, and mail.

Features
========
- Sync: reads agencies and accounts with paged searches (all of them, or those
  changed since a ``modifyTimestamp`` cursor) as a stream, and applies creates,
  updates (only the attributes that differ) and disables (a marker attribute,
  or a delete when ``delete_on_disable``; see :mod:`.writer`).
- Any schema: object classes and attribute names come from ``agency_map`` and
  ``account_map`` in config (see :mod:`.attrmap`).
- Lookups for mappings: ``lt:agency-mailbox(code)``, ``lt:account-mail(uid)``.
- Send: a message becomes an email to an agency's mailbox (header
  ``to_agency``) or to addresses (header ``to``, else option ``default_to``),
  Message-ID from the delivery key (see :mod:`.mail`).
- A server size limit that cuts a search short is an error, never the end of data
  (see :mod:`.connection`).

Connection settings
===================
``url`` is ``ldap://host:389/`` or ``ldaps://host:636/``; ``start_tls`` upgrades
an ``ldap://`` connection. ``ca_file`` is the CA that signed the server's
certificate (certificates are always verified). ``bind_dn`` and ``password``
authenticate (empty ``bind_dn``: anonymous).

Options
=======
See :attr:`DirectoryAdapter.options` (``lienthong adapters`` shows them):
``base_dn``, ``agencies_dn``, ``accounts_dn``, ``page_size``, ``timeout``,
``agency_map``, ``account_map``, ``delete_on_disable`` and the ``smtp_*``
settings with ``mail_from`` and ``default_to``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import ldap
import ldap.dn
import ldap.filter

from lienthong.adapter import (
    Adapter,
    Capability,
    Change,
    Option,
    Record,
    Secret,
    Services,
    SyncBatch,
)
from lienthong.errors import FatalError, RejectedError, TransientError
from lienthong.message import Message
from lienthong.sync import DISABLED

from . import lookup, mail
from .attrmap import DEFAULT_MAPS, EntityMap, config_error
from .connection import TRANSIENT_LDAP, Connection, DirectoryLimitError, describe
from .writer import Writer

# Importable from here as before the connection had a module of its own.
__all__ = ["DirectoryAdapter", "DirectoryLimitError", "describe"]

_GENERALIZED_TIME = re.compile(r"^\d{14}(\.\d{1,6})?Z$")


class DirectoryAdapter(Adapter):
    """One LDAP directory (and the mail server that serves its mailboxes)."""

    name = "email_directory"
    version = "1"
    summary = "LDAP directory of agencies and accounts: sync, lookups, mail delivery"
    options = (
        Option(
            "url",
            "LDAP server URL, ldap:// or ldaps://",
            example="ldaps://ldap.tinh.gov.vn/",
            pattern=r"ldaps?://\S*",
        ),
        Option("start_tls", "upgrade an ldap:// connection with StartTLS", False, type=bool),
        Option("ca_file", "CA certificate file that signed the server's certificate", ""),
        Option(
            "bind_dn",
            "DN to bind as (empty: anonymous)",
            "",
            example="cn=lienthong,ou=services,dc=tinh,dc=gov,dc=vn",
        ),
        Option("password", "password of bind_dn", None, secret=True),
        Option("base_dn", "the directory's base", example="dc=tinh,dc=gov,dc=vn"),
        Option(
            "agencies_dn",
            "where agencies are (default: base_dn)",
            "",
            example="ou=agencies,dc=tinh,dc=gov,dc=vn",
        ),
        Option(
            "accounts_dn",
            "where accounts are (default: base_dn)",
            "",
            example="ou=people,dc=tinh,dc=gov,dc=vn",
        ),
        Option("page_size", "entries per page of a paged search", 500, type=int, minimum=1),
        Option("timeout", "seconds to wait for the server", 10.0, type=float, minimum=0.1),
        Option(
            "agency_map",
            "object classes and attributes of an agency",
            DEFAULT_MAPS["agency"],
            type=dict,
        ),
        Option(
            "account_map",
            "object classes and attributes of an account",
            DEFAULT_MAPS["account"],
            type=dict,
        ),
        Option(
            "delete_on_disable",
            "delete entries a sync disables instead of marking them",
            False,
            type=bool,
        ),
        Option(
            "smtp_host",
            "mail server for send (empty: send is refused)",
            "",
            example="mail.tinh.gov.vn",
        ),
        Option("smtp_port", "mail server port", 25, type=int, minimum=1, maximum=65535),
        Option("smtp_starttls", "upgrade the SMTP connection with STARTTLS", False, type=bool),
        Option("smtp_ca_file", "CA certificate file that signed the mail server's certificate", ""),
        Option("smtp_user", "SMTP login (empty: no login)", ""),
        Option("smtp_password", "SMTP password", None, secret=True),
        Option("mail_from", "sender address of sent mail", "", example="lienthong@tinh.gov.vn"),
        Option(
            "default_to",
            "addresses (comma-separated) for messages that name no recipient",
            "",
            example="vanthu@tinh.gov.vn",
        ),
    )
    capabilities = frozenset({Capability.SYNC, Capability.SEND})
    transient_errors: ClassVar[tuple[type[BaseException], ...]] = (
        TransientError,
        *TRANSIENT_LDAP,
    )

    def __init__(self, endpoint: str, settings: Mapping[str, Any], services: Services) -> None:
        defaults = {o.name: o.default for o in self.options if not o.required}
        super().__init__(endpoint, {**defaults, **settings}, services)
        where = f"endpoints.{endpoint}"
        problems: list[str] = []
        url = str(self.settings.get("url") or "")
        if not url.startswith(("ldap://", "ldaps://")):
            problems.append(
                f"{where}.url: {url!r} is not an LDAP URL. "
                "Hint: ldap://host:389/ or ldaps://host:636/"
            )
        if url.startswith("ldaps://") and self.settings["start_tls"]:
            problems.append(f"{where}.start_tls: ldaps:// is already TLS. Hint: use one of the two")
        if not self.settings.get("base_dn"):
            problems.append(f"{where}.base_dn: required, e.g. base_dn: dc=tinh,dc=gov,dc=vn")
        if int(self.settings["page_size"]) < 1:
            problems.append(
                f"{where}.page_size: must be at least 1, got {self.settings['page_size']}"
            )
        self.maps: dict[str, EntityMap] = {}
        for entity in ("agency", "account"):
            parsed, found = EntityMap.parse(
                entity, self.settings[f"{entity}_map"], f"{where}.{entity}_map"
            )
            problems += found
            if parsed:
                self.maps[entity] = parsed
        if problems:
            raise config_error(problems)
        base = str(self.settings["base_dn"])
        self.containers = {
            "agency": str(self.settings["agencies_dn"] or base),
            "account": str(self.settings["accounts_dn"] or base),
        }
        self.ldap = Connection(endpoint, self.settings)
        self.writer = Writer(endpoint, self.settings, self.ldap, self.containers)

    # --- connection ---

    @property
    def _where(self) -> str:
        return f"endpoint '{self.endpoint}': directory {self.settings['url']}"

    def connection(self) -> ldap.ldapobject.LDAPObject:
        """The bound connection, opened on first use and after a network failure."""
        return self.ldap.get()

    def start(self) -> None:
        self.connection()
        lookup.register(self)

    def stop(self) -> None:
        lookup.unregister(self)
        self.ldap.drop()

    def _map(self, entity: str) -> EntityMap:
        try:
            return self.maps[entity]
        except KeyError:
            raise config_error(
                [f"{self._where}: unknown entity {entity!r}. Hint: use 'agency' or 'account'"]
            ) from None

    # --- reading ---

    def sync_read(self, entity: str, since: str | None) -> SyncBatch:
        """All entries of ``entity`` (complete) or those changed since ``since`` (a delta).

        The records stream page by page; ``batch.cursor`` is the newest
        ``modifyTimestamp`` seen and is final once the records are exhausted. A
        delta uses ``>=``, so entries changed in the cursor's own second are read
        again: nothing changed in that second is missed.
        """
        emap = self._map(entity)
        delta = ""
        if since is not None:
            if not _GENERALIZED_TIME.match(since):
                raise FatalError(
                    f"{self._where}: cursor {since!r} is not an LDAP time like "
                    "20260101120000Z. Hint: reset the sync's cursor"
                )
            delta = f"(modifyTimestamp>={ldap.filter.escape_filter_chars(since)})"
        filterstr = f"(&{emap.filter_clauses()}({emap.key}=*){delta})"
        batch = SyncBatch(records=(), complete=since is None, cursor=since)
        batch.records = self._records(emap, filterstr, batch)
        return batch

    def _records(self, emap: EntityMap, filterstr: str, batch: SyncBatch) -> Iterator[Record]:
        container = self.containers[emap.entity]
        own = ldap.dn.str2dn(container.lower())
        own_value = own[0][0][1] if own else ""
        read = emap.reader()
        newest = b""
        for dn, attrs in self.ldap.search(container, filterstr, emap.attributes):
            try:
                raw_key, fields = read(attrs)
            except UnicodeDecodeError as exc:
                raise _not_text(dn, attrs) from exc
            if not raw_key:
                continue
            key = raw_key.decode("utf-8")
            # The container itself may match (an OU of OUs): skip it, comparing
            # whole DNs only when the cheap RDN-value test says it might be.
            if key.lower() == own_value and ldap.dn.str2dn(dn.lower()) == own:
                continue
            stamp = attrs.get("modifyTimestamp") or emap.value(attrs, "modifyTimestamp")
            if stamp and stamp[0] > newest:
                newest = stamp[0]
            yield Record(key, fields)
        # Only a read that reached the end moves the cursor: entries come in no
        # time order, so the newest stamp of a cut read could skip older unseen ones.
        if newest and (batch.cursor is None or newest.decode("ascii") > batch.cursor):
            batch.cursor = newest.decode("ascii")

    def agency_mailbox(self, code: str) -> str | None:
        """The mailbox of the agency whose code is ``code``, or None."""
        emap = self._map("agency")
        if "code" not in emap.fields or "mailbox" not in emap.fields:
            raise config_error(
                [
                    f"endpoints.{self.endpoint}.agency_map: needs fields 'code' "
                    "and 'mailbox' for agency lookups and to_agency mail"
                ]
            )
        found = self.ldap.find(
            self.containers["agency"], emap, emap.fields["code"][0], code.strip()
        )
        for _dn, attrs in found:
            fields = emap.to_fields(attrs)
            if not fields.get(DISABLED) and fields["mailbox"]:
                return str(fields["mailbox"])
        return None

    def account_mail(self, uid: str) -> str | None:
        """The mail address of the active account ``uid``, or None."""
        emap = self._map("account")
        if "mail" not in emap.fields:
            raise config_error([f"endpoints.{self.endpoint}.account_map: needs a 'mail' field"])
        for _dn, attrs in self.ldap.find(self.containers["account"], emap, emap.key, uid.strip()):
            fields = emap.to_fields(attrs)
            if not fields.get(DISABLED) and fields["mail"]:
                return str(fields["mail"])
        return None

    # --- writing ---

    def sync_apply(self, entity: str, change: Change) -> None:
        """Create, update or disable one entry; a failure of this entry alone is RejectedError."""
        self.writer.apply(entity, self._map(entity), change)

    # --- mail ---

    def send(self, message: Message, *, key: str) -> None:
        """Mail ``message`` to the agencies in ``to_agency`` and the addresses in ``to``.

        A mail envelope that names recipients itself is mailed to those instead.
        """
        if not self.settings["smtp_host"] or not self.settings["mail_from"]:
            raise config_error(
                [
                    f"endpoints.{self.endpoint}: send needs smtp_host and mail_from. "
                    "Hint: set both, e.g. smtp_host: mail.tinh.gov.vn"
                ]
            )
        recipients: list[str] = []
        named = mail.envelope_recipients(message)
        if named is None:
            codes = _split(message.headers.get("to_agency", ""))
            addresses = _split(message.headers.get("to", ""))
        else:
            codes, addresses = named
        for code in codes:
            mailbox = self.agency_mailbox(code)
            if not mailbox:
                raise RejectedError(
                    f"{self._where}: message {message.id}: agency code {code!r} (to_agency) has "
                    "no active agency with a mailbox. Hint: check the code or sync the directory"
                )
            recipients.append(mail.check_address(mailbox, f"mailbox of agency {code!r}"))
        for address in addresses:
            recipients.append(mail.check_address(address, f"message {message.id}: 'to'"))
        if not recipients:
            for address in _split(str(self.settings["default_to"])):
                recipients.append(mail.check_address(address, "default_to"))
        if not recipients:
            raise RejectedError(
                f"{self._where}: message {message.id} has no recipient. "
                "Hint: set header to_agency (agency codes) or to (addresses), "
                "or the endpoint's default_to"
            )
        sender = mail.check_address(str(self.settings["mail_from"]), "mail_from")
        email = mail.build(
            message, key=key, mail_from=sender, recipients=list(dict.fromkeys(recipients))
        )
        password = self.settings.get("smtp_password")
        mail.deliver(
            email,
            mail.SmtpSettings(
                host=str(self.settings["smtp_host"]),
                port=int(self.settings["smtp_port"]),
                starttls=bool(self.settings["smtp_starttls"]),
                ca_file=str(self.settings["smtp_ca_file"]),
                user=str(self.settings["smtp_user"]),
                password=password if isinstance(password, Secret) else None,
                timeout=float(self.settings["timeout"]),
            ),
            endpoint=self.endpoint,
        )


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _not_text(dn: str, attrs: Mapping[str, list[bytes]]) -> FatalError:
    """The error for an entry whose mapped attribute holds bytes that are not UTF-8 text.

    Fatal for the read: skipping the entry would make a full sync take it for gone.
    """
    bad = next((name for name, values in attrs.items() for v in values if not _is_utf8(v)), "?")
    return FatalError(
        f"directory entry '{dn}': attribute '{bad}' holds bytes that are not UTF-8 text. "
        "Hint: map a text attribute instead, or fix the entry"
    )


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
