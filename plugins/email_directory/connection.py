"""The directory's LDAP connection: bound with TLS checked, reconnected after a failure, and
its paged search that never hides a cut.

:class:`~lienthong.plugins.email_directory.adapter.DirectoryAdapter` reads and
writes through one :class:`Connection`. Errors are sorted here, where the LDAP
error is known: a refused password or a failed TLS handshake is configuration, a
lost server is transient (and drops the connection, so the next call opens a new
one), and a search the server cut short is :class:`DirectoryLimitError`.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator, Mapping
from typing import Any

import ldap
import ldap.filter
import ldapurl
from ldap.controls import SimplePagedResultsControl

from lienthong.adapter import Secret
from lienthong.errors import FatalError, TransientError

from .attrmap import EntityMap, config_error

TRANSIENT_LDAP = (ldap.SERVER_DOWN, ldap.TIMEOUT, ldap.CONNECT_ERROR, ldap.BUSY, ldap.UNAVAILABLE)
_LIMITS = (ldap.SIZELIMIT_EXCEEDED, ldap.ADMINLIMIT_EXCEEDED, ldap.TIMELIMIT_EXCEEDED)


class DirectoryLimitError(FatalError):
    """The server cut a search short: the data read is incomplete and must not be trusted."""


def describe(exc: ldap.LDAPError) -> str:
    """python-ldap's error dict as one readable line."""
    info = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
    text = info.get("desc") or type(exc).__name__
    if info.get("info"):
        text += f" ({info['info']})"
    return text


class Connection:
    """One endpoint's bound LDAP connection, opened on first use and after a network failure."""

    def __init__(self, endpoint: str, settings: Mapping[str, Any]) -> None:
        self.endpoint = endpoint
        self.settings = settings
        self._conn: ldap.ldapobject.LDAPObject | None = None

    @property
    def _where(self) -> str:
        return f"endpoint '{self.endpoint}': directory {self.settings['url']}"

    def _password(self) -> str:
        secret = self.settings.get("password")
        return secret.reveal() if isinstance(secret, Secret) else str(secret or "")

    def get(self) -> ldap.ldapobject.LDAPObject:
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
            if isinstance(exc, TRANSIENT_LDAP):
                raise TransientError(
                    f"{self._where} unreachable: {text}. Hint: is slapd up and the URL right?"
                ) from exc
            raise FatalError(f"{self._where}: bind as {bind_dn!r} failed: {text}") from exc
        self._conn = conn
        return conn

    def _tls_refused(self, exc: ldap.LDAPError) -> bool:
        """Whether an ldaps:// failure is the TLS handshake: the port answers TCP but not TLS."""
        url = str(self.settings["url"])
        if not url.startswith("ldaps://") or not isinstance(exc, TRANSIENT_LDAP):
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

    def drop(self) -> None:
        """Close the connection (if open); the next call opens a new one."""
        conn, self._conn = self._conn, None
        if conn is not None:
            # The server may already be gone; the socket closes either way.
            with contextlib.suppress(ldap.LDAPError):
                conn.unbind_s()

    def search(self, base: str, filterstr: str, attrs: list[str]) -> Iterator[tuple[str, dict]]:
        """Paged subtree search that yields entries page by page and never hides a cut."""
        page_size = int(self.settings["page_size"])
        timeout = float(self.settings["timeout"])
        conn = self.get()
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
            except TRANSIENT_LDAP as exc:
                self.drop()
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

    def find(
        self, base: str, emap: EntityMap, attribute: str, value: str
    ) -> list[tuple[str, dict]]:
        """The entries of ``emap``'s kind under ``base`` whose ``attribute`` is ``value``."""
        filterstr = (
            f"(&{emap.filter_clauses()}({attribute}={ldap.filter.escape_filter_chars(value)}))"
        )
        return list(self.search(base, filterstr, emap.attributes))
