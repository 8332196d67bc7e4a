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
from typing import Annotated, Any

from pydantic import AfterValidator

from ..adapter import Secret
from ..errors import ConfigProblem
from ..shape import (
    CLOSED,
    FLAG,
    POSITIVE,
    ConfigPath,
    ConfigSecret,
    Flag,
    Positive,
    check,
    expect,
)

ROLES = ("viewer", "operator", "admin")
DEFAULT_PORT = 8470


def _ldap_url(url: str) -> str:
    if not url.startswith(("ldap://", "ldaps://")):
        raise ValueError(f"{url!r} is not an LDAP URL. Hint: ldaps://ldap.tinh.gov.vn/")
    return url


def _user_dn(dn: str) -> str:
    if "{username}" not in dn:
        raise ValueError(
            "user_dn must contain {username}. Hint: uid={username},ou=people,dc=tinh,dc=gov,dc=vn"
        )
    return dn


def _role(role: str) -> str:
    if role not in ROLES:
        raise ValueError(f"unknown role '{role}'. Roles: {', '.join(ROLES)}")
    return role


def _signing_key(key: Secret) -> Secret:
    if len(key.reveal()) < 32:
        raise ValueError(
            "a session signing key needs at least 32 characters. Hint: "
            "python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"
        )
    return key


@dataclass(frozen=True)
class LdapLogin:
    """Log in by binding to the directory as the person, with their own password."""

    __pydantic_config__ = CLOSED

    url: Annotated[str, AfterValidator(_ldap_url)]
    user_dn: Annotated[str, AfterValidator(_user_dn)]
    groups: Mapping[Annotated[str, AfterValidator(_role)], str] = field(
        default_factory=dict, metadata=expect("expected role: group DN pairs")
    )
    role_attribute: str | None = None
    ca_file: ConfigPath | None = None
    start_tls: Flag = field(default=False, metadata=FLAG)
    timeout: Positive = field(default=5.0, metadata=expect("expected seconds"))


@dataclass(frozen=True)
class ConsoleSettings:
    """How people log in to the console and how their sessions are kept."""

    __pydantic_config__ = CLOSED

    users_file: ConfigPath | None = None
    ldap: LdapLogin | None = None
    secret_key: Annotated[ConfigSecret, AfterValidator(_signing_key)] | None = None
    behind_proxy: Flag = field(default=False, metadata=FLAG)
    session_hours: Positive = field(default=8.0, metadata=POSITIVE)
    audit_verify_minutes: Positive = field(default=10.0, metadata=POSITIVE)


def from_config(
    raw: Any, base_dir: Path, where: Callable[..., str], environ: Mapping[str, str]
) -> tuple[ConsoleSettings, list[ConfigProblem]]:
    """Read a ``console`` section; ``where(*keys)`` gives a problem's location."""
    if raw is None:
        return ConsoleSettings(), []
    context = {"base": base_dir, "environ": environ}
    settings, problems = check(ConsoleSettings, raw, where, "console", context=context)
    ldap = settings.ldap if settings else None
    if ldap and not ldap.groups and not ldap.role_attribute:
        problems.append(
            ConfigProblem(
                where("console", "ldap"),
                "nobody would get a role. Hint: set groups (role: group DN) or role_attribute",
            )
        )
    return settings or ConsoleSettings(), problems
