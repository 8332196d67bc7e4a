"""Email directory adapter: the province's LDAP directory of agencies and accounts, and mail.

Features
========
- Sync: reads agencies and accounts with paged searches (all of them, or those
  changed since a ``modifyTimestamp`` cursor) as a stream, and applies creates,
  updates (only the attributes that differ) and disables (a marker attribute,
  or a delete when ``delete_on_disable``).
- Any schema: object classes and attribute names come from ``agency_map`` and
  ``account_map`` in config (see :mod:`.attrmap`).
- Lookups for mappings: ``lt:agency-mailbox(code)``, ``lt:account-mail(uid)``.
- Send: a message becomes an email to an agency's mailbox (header
  ``to_agency``) or to addresses (header ``to``, else option ``default_to``),
  Message-ID from the delivery key (see :mod:`.mail`).
- A server size limit that cuts a search short is an error, never the end of data.

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

import contextlib
import re
import socket
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import ldap
import ldap.dn
import ldap.filter
import ldapurl
from ldap.controls import SimplePagedResultsControl

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

_TRANSIENT_LDAP = (ldap.SERVER_DOWN, ldap.TIMEOUT, ldap.CONNECT_ERROR, ldap.BUSY, ldap.UNAVAILABLE)
_LIMITS = (ldap.SIZELIMIT_EXCEEDED, ldap.ADMINLIMIT_EXCEEDED, ldap.TIMELIMIT_EXCEEDED)
_GENERALIZED_TIME = re.compile(r"^\d{14}(\.\d{1,6})?Z$")


class DirectoryLimitError(FatalError):
    """The server cut a search short: the data read is incomplete and must not be trusted."""


def describe(exc: ldap.LDAPError) -> str:
    """python-ldap's error dict as one readable line."""
    info = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
    text = info.get("desc") or type(exc).__name__
    if info.get("info"):
        text += f" ({info['info']})"
    return text


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
        *_TRANSIENT_LDAP,
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
        self._conn: ldap.ldapobject.LDAPObject | None = None

    # --- connection ---

    @property
    def _where(self) -> str:
        return f"endpoint '{self.endpoint}': directory {self.settings['url']}"

    def _password(self) -> str:
        secret = self.settings.get("password")
        return secret.reveal() if isinstance(secret, Secret) else str(secret or "")

    def connection(self) -> ldap.ldapobject.LDAPObject:
        """The bound connection, opened on first use and after a network failure."""
        if self._conn is not None:
            return self._conn
        timeout = float(self.settings["timeout"])
        conn = ldap.initialize(str(self.settings["url"]))
        conn.set_option(ldap.OPT_PROTOCOL_VERSION, ldap.VERSION3)
        conn.set_option(ldap.OPT_REFERRALS, 0)
        conn.set_option(ldap.OPT_NETWORK_TIMEOUT, timeout)
        conn.set_option(ldap.OPT_TIMEOUT, timeout)
        conn.set_option(ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_DEMAND)
        if self.settings["ca_file"]:
            conn.set_option(ldap.OPT_X_TLS_CACERTFILE, str(self.settings["ca_file"]))
        conn.set_option(ldap.OPT_X_TLS_NEWCTX, 0)
        bind_dn = str(self.settings["bind_dn"])
        try:
            if self.settings["start_tls"]:
                try:
                    conn.start_tls_s()
                except (ldap.CONNECT_ERROR, ldap.PROTOCOL_ERROR, ldap.UNAVAILABLE) as exc:
                    # TCP worked (StartTLS is an LDAP operation): the handshake failed.
                    raise config_error(
                        [
                            f"endpoints.{self.endpoint}.ca_file: TLS with {self.settings['url']} "
                            f"failed: {describe(exc)}. Hint: set ca_file to the CA that signed the "
                            "server's certificate, and check the server offers StartTLS"
                        ]
                    ) from exc
            conn.simple_bind_s(bind_dn, self._password())
        except ldap.INVALID_CREDENTIALS as exc:
            raise config_error(
                [
                    f"endpoints.{self.endpoint}.bind_dn: the directory {self.settings['url']} "
                    f"refused the password of bind_dn {bind_dn!r} (invalid credentials). "
                    "Hint: check bind_dn and the password's source (env or file)"
                ]
            ) from exc
        except ldap.LDAPError as exc:
            text = describe(exc)
            if "TLS" in text or "certificate" in text.lower() or self._tls_refused(exc):
                raise config_error(
                    [
                        f"endpoints.{self.endpoint}.ca_file: TLS with {self.settings['url']} "
                        f"failed: {text}. Hint: set ca_file to the CA that signed the server's "
                        "certificate"
                    ]
                ) from exc
            if isinstance(exc, _TRANSIENT_LDAP):
                raise TransientError(
                    f"{self._where} unreachable: {text}. Hint: is slapd up and the URL right?"
                ) from exc
            raise FatalError(f"{self._where}: bind as {bind_dn!r} failed: {text}") from exc
        self._conn = conn
        return conn

    def _tls_refused(self, exc: ldap.LDAPError) -> bool:
        """Whether an ldaps:// failure is the TLS handshake: the port answers TCP but not TLS."""
        url = str(self.settings["url"])
        if not url.startswith("ldaps://") or not isinstance(exc, _TRANSIENT_LDAP):
            return False
        parsed = ldapurl.LDAPUrl(url)
        host, _, port = (parsed.hostport or "localhost").rpartition(":")
        if not host:
            host, port = port, ""
        try:
            with socket.create_connection(
                (host, int(port or 636)), timeout=float(self.settings["timeout"])
            ):
                return True
        except (OSError, ValueError):
            return False

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            # The server may already be gone; the socket closes either way.
            with contextlib.suppress(ldap.LDAPError):
                conn.unbind_s()

    def start(self) -> None:
        self.connection()
        lookup.register(self)

    def stop(self) -> None:
        lookup.unregister(self)
        self._drop()

    def _map(self, entity: str) -> EntityMap:
        try:
            return self.maps[entity]
        except KeyError:
            raise config_error(
                [f"{self._where}: unknown entity {entity!r}. Hint: use 'agency' or 'account'"]
            ) from None

    # --- reading ---

    def _search(self, base: str, filterstr: str, attrs: list[str]) -> Iterator[tuple[str, dict]]:
        """Paged subtree search that yields entries page by page and never hides a cut."""
        page_size = int(self.settings["page_size"])
        timeout = float(self.settings["timeout"])
        conn = self.connection()
        control = SimplePagedResultsControl(True, size=page_size, cookie="")
        seen = 0
        while True:
            try:
                msgid = conn.search_ext(
                    base, ldap.SCOPE_SUBTREE, filterstr, attrs, serverctrls=[control]
                )
                _type, entries, _id, controls = conn.result3(msgid, timeout=timeout)
            except _LIMITS as exc:
                raise DirectoryLimitError(
                    f"{self._where}: the server stopped the search of '{base}' after {seen} "
                    f"entries: {describe(exc)}. The data read is incomplete, so nothing is "
                    f"synced. Hint: lift the limit for bind_dn {self.settings['bind_dn']!r} "
                    '(slapd: limits dn.exact="<bind_dn>" size=unlimited)'
                ) from exc
            except _TRANSIENT_LDAP as exc:
                self._drop()
                raise TransientError(
                    f"{self._where}: search of '{base}' failed: {describe(exc)}"
                ) from exc
            except ldap.NO_SUCH_OBJECT as exc:
                raise FatalError(
                    f"{self._where}: base '{base}' does not exist. "
                    "Hint: check base_dn, agencies_dn and accounts_dn"
                ) from exc
            except ldap.LDAPError as exc:
                raise FatalError(
                    f"{self._where}: search of '{base}' for {filterstr} failed: {describe(exc)}"
                ) from exc
            for dn, entry_attrs in entries:
                if dn is not None:  # None marks a search reference
                    seen += 1
                    yield dn, entry_attrs
            response = next(
                (c for c in controls if c.controlType == SimplePagedResultsControl.controlType),
                None,
            )
            if response is None:
                if len(entries) >= page_size:
                    raise DirectoryLimitError(
                        f"{self._where}: the server ignored paging after {seen} entries of "
                        f"'{base}'; the rest may be missing. Hint: enable the paged results "
                        "control for bind_dn"
                    )
                return
            if not response.cookie:
                if response.size and response.size > seen:
                    raise DirectoryLimitError(
                        f"{self._where}: the search of '{base}' ended after {seen} of "
                        f"{response.size} entries. Hint: lift the server's size limit for bind_dn"
                    )
                return
            control.cookie = response.cookie

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
        for dn, attrs in self._search(container, filterstr, emap.attributes):
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

    def _find(self, emap: EntityMap, attribute: str, value: str) -> list[tuple[str, dict]]:
        filterstr = (
            f"(&{emap.filter_clauses()}({attribute}={ldap.filter.escape_filter_chars(value)}))"
        )
        return list(self._search(self.containers[emap.entity], filterstr, emap.attributes))

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
        found = self._find(emap, emap.fields["code"][0], code.strip())
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
        for _dn, attrs in self._find(emap, emap.key, uid.strip()):
            fields = emap.to_fields(attrs)
            if not fields.get(DISABLED) and fields["mail"]:
                return str(fields["mail"])
        return None

    # --- writing ---

    def sync_apply(self, entity: str, change: Change) -> None:
        """Create, update or disable one entry; a failure of this entry alone is RejectedError."""
        emap = self._map(entity)
        what = f"{entity} {emap.key}={change.key!r}"
        try:
            if change.action == "create":
                self._create(emap, change)
            elif change.action == "update":
                self._update(emap, change, what)
            elif change.action == "disable":
                self._disable(emap, change, what)
            else:
                raise RejectedError(
                    f"{self._where}: {what}: unknown action {change.action!r}. "
                    "Hint: create, update or disable"
                )
        except _TRANSIENT_LDAP as exc:
            self._drop()
            raise TransientError(f"{self._where}: {what}: {describe(exc)}") from exc
        except ldap.INSUFFICIENT_ACCESS as exc:
            raise FatalError(
                f"{self._where}: bind_dn {self.settings['bind_dn']!r} may not write "
                f"{what}: {describe(exc)}. Hint: grant it write access"
            ) from exc
        except ldap.LDAPError as exc:
            raise RejectedError(
                f"{self._where}: {what} ({change.action}) refused: {describe(exc)}"
            ) from exc

    def _create(self, emap: EntityMap, change: Change) -> None:
        if not change.key.strip():
            raise RejectedError(f"{self._where}: {emap.entity} with an empty {emap.key}")
        fields = dict(change.fields)
        if emap.active:
            fields.setdefault(DISABLED, False)
        attrs = {name: values for name, values in emap.to_attributes(fields).items() if values}
        attrs[emap.key] = [change.key.encode("utf-8")]
        attrs["objectClass"] = [oc.encode("utf-8") for oc in emap.object_classes]
        dn = f"{emap.key}={ldap.dn.escape_dn_chars(change.key)},{self.containers[emap.entity]}"
        try:
            self.connection().add_s(dn, list(attrs.items()))
        except ldap.ALREADY_EXISTS:
            # A redelivered create after a crash: make the entry match instead.
            self._update(emap, Change("update", change.key, fields), f"{emap.entity} {dn}")

    def _one(self, emap: EntityMap, key: str, what: str) -> tuple[str, dict] | None:
        found = self._find(emap, emap.key, key)
        if len(found) > 1:
            raise RejectedError(
                f"{self._where}: {what} matches {len(found)} entries "
                f"({', '.join(dn for dn, _ in found)}). Hint: keys must be unique"
            )
        return found[0] if found else None

    def _update(self, emap: EntityMap, change: Change, what: str) -> None:
        found = self._one(emap, change.key, what)
        if found is None:
            raise RejectedError(
                f"{self._where}: {what} is not in the directory under "
                f"'{self.containers[emap.entity]}'. Hint: plan a create"
            )
        dn, current = found
        lowered = {name.lower(): values for name, values in current.items()}
        mods: list[tuple[int, str, list[bytes] | None]] = []
        for name, wanted in emap.to_attributes(change.fields).items():
            have = lowered.get(name.lower())
            if wanted is None and have:
                mods.append((ldap.MOD_DELETE, name, None))
            elif wanted is not None and have != wanted:
                mods.append((ldap.MOD_REPLACE, name, wanted))
        if mods:
            self.connection().modify_s(dn, mods)

    def _disable(self, emap: EntityMap, change: Change, what: str) -> None:
        found = self._one(emap, change.key, what)
        if found is None:
            return  # already gone: disabling it again is a no-op
        dn, current = found
        if self.settings["delete_on_disable"]:
            self.connection().delete_s(dn)
            return
        if emap.active is None:
            raise RejectedError(
                f"{self._where}: {what} cannot be disabled: {emap.entity}_map has no 'active' "
                "marker. Hint: add active: {attribute: A, value: V, disabled: D} or set "
                "delete_on_disable: true"
            )
        marker = emap.active.disabled.encode("utf-8")
        lowered = {name.lower(): values for name, values in current.items()}
        if lowered.get(emap.active.attribute.lower()) != [marker]:
            self.connection().modify_s(dn, [(ldap.MOD_REPLACE, emap.active.attribute, [marker])])

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
