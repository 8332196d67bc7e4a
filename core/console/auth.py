"""Who may use the console: a bind to the official directory, or local accounts; and a limiter.

- **LDAP**: the person binds with their own DN and password (``user_dn`` with
  ``{username}``); membership of a configured group, or the value of
  ``role_attribute`` on their own entry, gives the role. An empty password is
  refused before any bind (LDAP takes it as an anonymous bind that succeeds).
- **Local accounts**: a file of ``name:role:argon2-hash`` lines, written by
  ``lienthong console adduser`` and read on every login, so an edit needs no restart.
- **Roles**: viewer (reads), operator (replays, purges, runs and approves syncs),
  admin (also forces past the disable guard and sees the configuration).
- **Limiter**: after five wrong passwords for one account (or twenty from one
  address) in 15 minutes, each further try must wait 30 s, doubling up to 15 min.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import ldap
import ldap.dn
import ldap.filter
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from .settings import ROLES, LdapLogin

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_hasher = PasswordHasher()
#: Verified when the account does not exist, so its absence takes as long as a wrong password.
_DUMMY_HASH = _hasher.hash("no such account")


class LoginUnavailable(Exception):
    """The directory could not be asked; the person should try again later (not their fault)."""


@dataclass(frozen=True)
class User:
    """A person logged in to the console."""

    name: str
    role: str
    via: str  # local | ldap

    def may(self, role: str) -> bool:
        """Whether this person's role includes ``role`` (admin > operator > viewer)."""
        return ROLES.index(self.role) >= ROLES.index(role)


def valid_name(name: str) -> bool:
    """User names are plain: letters, digits and ``._@-``, at most 64 characters."""
    return bool(_NAME.match(name))


# --- local accounts -------------------------------------------------------


def _read_accounts(path: Path) -> dict[str, tuple[str, str]]:
    accounts: dict[str, tuple[str, str]] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return accounts
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, rest = line.partition(":")
        role, _, digest = rest.partition(":")
        if role in ROLES and digest:
            accounts[name] = (role, digest)
    return accounts


def local_login(path: Path, name: str, password: str) -> User | None:
    """The account ``name`` if ``password`` matches its argon2 hash in ``path``."""
    found = _read_accounts(path).get(name) if valid_name(name) else None
    role, digest = found or ("viewer", _DUMMY_HASH)
    try:
        _hasher.verify(digest, password)
    except (VerificationError, InvalidHashError):
        return None
    return User(name, role, "local") if found else None


def add_local_account(path: Path, name: str, role: str, password: str) -> None:
    """Add or replace ``name`` in the accounts file (written atomically, readable by its owner)."""
    if not valid_name(name):
        raise ValueError(
            f"user name {name!r} is not allowed: use letters, digits and ._@- (at most 64)"
        )
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    if len(password) < 10:
        raise ValueError("a console password needs at least 10 characters")
    lines = []
    if path.exists():
        lines = [
            line
            for line in path.read_text(encoding="utf-8").splitlines()
            if line.partition(":")[0].strip() != name
        ]
    else:
        lines = ["# lienthong console accounts: name:role:argon2 hash (lienthong console adduser)"]
    lines.append(f"{name}:{role}:{_hasher.hash(password)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(handle, 0o600)
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write("\n".join(lines) + "\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# --- the directory --------------------------------------------------------


def ldap_login(settings: LdapLogin, name: str, password: str) -> User | None:
    """Bind as ``name`` with ``password``; the person with their highest role, or None.

    Raises :class:`LoginUnavailable` when the directory cannot be reached and
    ``PermissionError`` (with what to do) when the bind works but no role applies.
    """
    if not password or not valid_name(name):
        return None
    dn = settings.user_dn.format(username=ldap.dn.escape_dn_chars(name))
    conn = ldap.initialize(settings.url)
    try:
        conn.set_option(ldap.OPT_PROTOCOL_VERSION, ldap.VERSION3)
        conn.set_option(ldap.OPT_REFERRALS, 0)
        conn.set_option(ldap.OPT_NETWORK_TIMEOUT, settings.timeout)
        conn.set_option(ldap.OPT_TIMEOUT, settings.timeout)
        conn.set_option(ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_DEMAND)
        if settings.ca_file:
            conn.set_option(ldap.OPT_X_TLS_CACERTFILE, str(settings.ca_file))
        conn.set_option(ldap.OPT_X_TLS_NEWCTX, 0)
        if settings.start_tls:
            conn.start_tls_s()
        conn.simple_bind_s(dn, password)
        role = _role(conn, settings, dn)
    except ldap.INVALID_CREDENTIALS:
        return None
    except ldap.LDAPError as exc:
        detail = exc.args[0].get("desc", str(exc)) if exc.args else str(exc)
        raise LoginUnavailable(f"the directory {settings.url} did not answer: {detail}") from exc
    finally:
        conn.unbind_s()
    if role is None:
        raise PermissionError(
            f"'{name}' has no console role. Hint: an administrator adds the account to one "
            "of the console's groups"
        )
    return User(name, role, "ldap")


def _role(conn: ldap.ldapobject.LDAPObject, settings: LdapLogin, dn: str) -> str | None:
    escaped = ldap.filter.escape_filter_chars(dn)
    for role in reversed(ROLES):
        group = settings.groups.get(role)
        if not group:
            continue
        try:
            found = conn.search_s(
                group,
                ldap.SCOPE_BASE,
                f"(|(member={escaped})(uniqueMember={escaped}))",
                ["1.1"],
            )
        except ldap.NO_SUCH_OBJECT:
            continue
        if found:
            return role
    if settings.role_attribute:
        entry = conn.search_s(dn, ldap.SCOPE_BASE, "(objectClass=*)", [settings.role_attribute])
        values = {
            v.decode("utf-8", "replace").strip().lower()
            for _, attrs in entry
            for v in attrs.get(settings.role_attribute, [])
        }
        for role in reversed(ROLES):
            if role in values:
                return role
    return None


# --- the limiter ----------------------------------------------------------


@dataclass
class _Tries:
    failures: int = 0
    last: float = 0.0
    locked_until: float = 0.0


class LoginLimiter:
    """Slows password guessing down, per account and per address (in this process)."""

    def __init__(
        self,
        *,
        free: int = 5,
        free_per_address: int = 20,
        base_s: float = 30.0,
        cap_s: float = 900.0,
        window_s: float = 900.0,
        clock: Callable[[], float] = time.monotonic,
        remembered: int = 10_000,
    ) -> None:
        self.free = {"name": free, "address": free_per_address}
        self.base_s = base_s
        self.cap_s = cap_s
        self.window_s = window_s
        self.clock = clock
        self.remembered = remembered
        self._tries: OrderedDict[tuple[str, str], _Tries] = OrderedDict()
        self._lock = threading.Lock()

    def _keys(self, name: str, address: str) -> list[tuple[str, str]]:
        return [("name", name.strip().lower()), ("address", address)]

    def wait(self, name: str, address: str) -> float:
        """Seconds before a login for ``name`` from ``address`` may be tried; 0 means now."""
        now = self.clock()
        with self._lock:
            waits = [
                t.locked_until - now
                for key in self._keys(name, address)
                if (t := self._tries.get(key))
            ]
        return max([0.0, *waits])

    def failed(self, name: str, address: str) -> None:
        now = self.clock()
        with self._lock:
            for key in self._keys(name, address):
                tries = self._tries.pop(key, None) or _Tries()
                if now - tries.last > self.window_s:
                    tries = _Tries()
                tries.failures += 1
                tries.last = now
                over = tries.failures - self.free[key[0]]
                if over >= 0:
                    tries.locked_until = now + min(self.cap_s, self.base_s * 2**over)
                self._tries[key] = tries
            while len(self._tries) > self.remembered:
                self._tries.popitem(last=False)

    def succeeded(self, name: str, address: str) -> None:
        with self._lock:
            self._tries.pop(("name", name.strip().lower()), None)
