"""The ``console`` section of the config: who may log in to the web console, and how.

```yaml
bus:
  console_port: 8470            # serve the console from 'lienthong run' too (default: not)
  console_host: 127.0.0.1       # loopback unless a reverse proxy elsewhere needs it
console:
  users_file: console-users     # local accounts: 'lienthong console adduser NAME --role R'
  ldap:                         # or (and) the official directory
    url: ldaps://ldap.tinh.gov.vn/
    user_dn: "uid={username},ou=people,dc=tinh,dc=gov,dc=vn"
    groups:                     # a member of the group gets the role (highest wins)
      admin: cn=lienthong-admins,ou=groups,dc=tinh,dc=gov,dc=vn
      operator: cn=lienthong-operators,ou=groups,dc=tinh,dc=gov,dc=vn
    role_attribute: employeeType   # or: the person's own attribute holds the role name
  secret_key: {env: LIENTHONG_CONSOLE_KEY}  # signs session cookies (default: a file in var_dir)
  behind_proxy: true            # TLS ends at a reverse proxy: Secure cookies, X-Forwarded-*
```
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..adapter import Secret, resolve_secret
from ..errors import ConfigProblem
from ..suggest import unknown_key

ROLES = ("viewer", "operator", "admin")
DEFAULT_PORT = 8470

_KEYS = (
    "users_file",
    "ldap",
    "secret_key",
    "behind_proxy",
    "session_hours",
    "audit_verify_minutes",
)
_LDAP_KEYS = ("url", "user_dn", "groups", "role_attribute", "ca_file", "start_tls", "timeout")


@dataclass(frozen=True)
class LdapLogin:
    """Log in by binding to the directory as the person, with their own password."""

    url: str
    user_dn: str
    groups: Mapping[str, str] = field(default_factory=dict)
    role_attribute: str | None = None
    ca_file: Path | None = None
    start_tls: bool = False
    timeout: float = 5.0


@dataclass(frozen=True)
class ConsoleSettings:
    """How people log in to the console and how their sessions are kept."""

    users_file: Path | None = None
    ldap: LdapLogin | None = None
    secret_key: Secret | None = None
    behind_proxy: bool = False
    session_hours: float = 8.0
    audit_verify_minutes: float = 10.0


def from_config(
    raw: Any, base_dir: Path, where: Callable[..., str], environ: Mapping[str, str]
) -> tuple[ConsoleSettings, list[ConfigProblem]]:
    """Read a ``console`` section; ``where(*keys)`` gives a problem's location."""
    if raw is None:
        return ConsoleSettings(), []
    problems: list[ConfigProblem] = []

    def problem(message: str, *keys: Any) -> None:
        problems.append(ConfigProblem(where("console", *keys), message))

    if not isinstance(raw, Mapping):
        problem("expected a mapping with users_file and/or ldap")
        return ConsoleSettings(), problems
    _unknown(raw, _KEYS, (), problem)
    users_file = (base_dir / str(raw["users_file"])).resolve() if raw.get("users_file") else None
    ldap = _ldap(raw.get("ldap"), base_dir, problem) if raw.get("ldap") is not None else None
    secret = None
    if raw.get("secret_key") is not None:
        try:
            secret = resolve_secret(raw["secret_key"], environ)
        except ValueError as exc:
            problem(str(exc), "secret_key")
        else:
            if len(secret.reveal()) < 32:
                problem(
                    "a session signing key needs at least 32 characters. Hint: "
                    "python3 -c 'import secrets; print(secrets.token_urlsafe(48))'",
                    "secret_key",
                )
    numbers = {}
    for name, default in (("session_hours", 8.0), ("audit_verify_minutes", 10.0)):
        value = raw.get(name, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            problem(f"expected a positive number, got {value!r}", name)
            value = default
        numbers[name] = float(value)
    behind_proxy = raw.get("behind_proxy", False)
    if not isinstance(behind_proxy, bool):
        problem(f"expected true or false, got {behind_proxy!r}", "behind_proxy")
        behind_proxy = False
    return (
        ConsoleSettings(users_file, ldap, secret, behind_proxy, **numbers),
        problems,
    )


def _ldap(raw: Any, base_dir: Path, problem: Callable[..., None]) -> LdapLogin | None:
    if not isinstance(raw, Mapping):
        problem("expected a mapping with url, user_dn and groups or role_attribute", "ldap")
        return None
    _unknown(raw, _LDAP_KEYS, ("ldap",), problem)
    url = str(raw.get("url") or "")
    if not url.startswith(("ldap://", "ldaps://")):
        problem(f"{url!r} is not an LDAP URL. Hint: ldaps://ldap.tinh.gov.vn/", "ldap", "url")
    user_dn = str(raw.get("user_dn") or "")
    if "{username}" not in user_dn:
        problem(
            "user_dn must contain {username}. Hint: uid={username},ou=people,dc=tinh,dc=gov,dc=vn",
            "ldap",
            "user_dn",
        )
    groups = raw.get("groups") or {}
    if not isinstance(groups, Mapping):
        problem("expected role: group DN pairs", "ldap", "groups")
        groups = {}
    for role in groups:
        if role not in ROLES:
            problem(f"unknown role '{role}'. Roles: {', '.join(ROLES)}", "ldap", "groups", role)
    attribute = raw.get("role_attribute")
    if not groups and not attribute:
        problem(
            "nobody would get a role. Hint: set groups (role: group DN) or role_attribute",
            "ldap",
        )
    timeout = raw.get("timeout", 5)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        problem(f"expected seconds, got {timeout!r}", "ldap", "timeout")
        timeout = 5
    return LdapLogin(
        url=url,
        user_dn=user_dn,
        groups={str(k): str(v) for k, v in groups.items() if k in ROLES},
        role_attribute=str(attribute) if attribute else None,
        ca_file=(base_dir / str(raw["ca_file"])).resolve() if raw.get("ca_file") else None,
        start_tls=bool(raw.get("start_tls", False)),
        timeout=float(timeout),
    )


def _unknown(
    raw: Mapping[str, Any],
    known: tuple[str, ...],
    keys: tuple[str, ...],
    problem: Callable[..., None],
) -> None:
    for key in raw:
        if key not in known:
            problem(unknown_key(key, known), *keys, key)
