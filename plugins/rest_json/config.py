"""An endpoint's config read at start: every problem collected, then all refused at once.

What the settings become (the operations, the compiled JSON paths, the auth,
the limits, the result codes, the TLS files) is one :class:`Config`, so the
caller, the sender and the poller work from the same checked values.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lienthong import jsonxml
from lienthong.adapter import Secret, Services
from lienthong.errors import ConfigError

from . import auth as auth_schemes
from . import operations
from .auth import Transport
from .client import origin
from .operations import Operation
from .options import OPTIONS
from .paths import JsonPath, PathError

# The adapter's logger: an endpoint's lines keep one name, whichever module writes them.
log = logging.getLogger("lienthong.plugins.rest_json.adapter")

AUTH_SCHEMES = ("none", "basic", "bearer", "login", "oauth2", "api_key", "hmac")
PAGINATION = ("none", "next_link", "page", "cursor")
INVALID_CHARACTERS = ("replace", "reject", "escape")
DEFAULT_HMAC_HEADERS = {
    "X-Key-Id": "{key_id}",
    "X-Timestamp": "{timestamp}",
    "X-Nonce": "{nonce}",
    "X-Signature": "{signature}",
}
#: The options holding JSON paths, compiled once.
PATH_OPTIONS = (
    "items_path",
    "cursor_path",
    "cursor_field",
    "next_path",
    "more_path",
    "error_path",
    "error_message_path",
)


@dataclass
class Config:
    """One endpoint's settings, checked, and what start() built from them."""

    where: str
    settings: Mapping[str, Any]
    base_url: str
    operations: dict[str, Operation]
    paths: dict[str, JsonPath | None]
    item_keys: list[JsonPath]
    item_validator: Any
    auth: auth_schemes.Auth
    limits: jsonxml.Limits
    body_fields: dict[str, Any]
    error_ok: frozenset[str]
    error_done: frozenset[str]
    error_transient: frozenset[str]
    error_auth: frozenset[str]
    tls: dict[str, Any]


def read(
    where: str, settings: Mapping[str, Any], services: Services, *, transport: Transport
) -> Config:
    """Check the whole config; a ConfigError lists every problem, each under ``where``.

    ``transport`` is how a login call goes out (used later, at the first call).
    """
    s = settings
    problems: list[str] = []
    base_url = str(s["base_url"]).rstrip("/")
    if origin(base_url)[0] not in ("http", "https") or not origin(base_url)[1]:
        problems.append(f"base_url {s['base_url']!r} is not an http(s) URL")
    for option, allowed in (
        ("auth", AUTH_SCHEMES),
        ("pagination", PAGINATION),
        ("duplicate_keys", jsonxml.DUPLICATES),
        ("invalid_characters", INVALID_CHARACTERS),
        ("client_auth", ("basic", "post")),
        ("hmac_encoding", ("hex", "base64")),
        ("hmac_algorithm", ("sha256", "sha512")),
    ):
        if s[option] not in allowed:
            problems.append(f"{option} is {s[option]!r}; one of {', '.join(allowed)}")

    def load_schema(value: Any, option: str, problems: list[str]) -> Any:
        return operations.load_schema(value, option, problems, services.base_dir)

    parsed = operations.parse(
        s["operations"],
        receive_operation=s["receive_operation"],
        load_schema=load_schema,
        problems=problems,
    )
    for option in ("send_operation", "receive_operation"):
        if s[option] and s[option] not in parsed:
            problems.append(
                f"{option} {s[option]!r} is not in operations ({', '.join(parsed) or 'none'})"
            )
    paths = _paths(s, problems)
    item_keys = _item_keys(s, problems)
    _check_receive(s, problems)
    item_validator = load_schema(s["item_schema"], "item_schema", problems)
    auth = _auth(where, s, base_url, transport, problems)
    limits = jsonxml.Limits(
        max_bytes=s["max_response_bytes"],
        max_depth=s["json_max_depth"],
        max_number_chars=s["json_max_number_chars"],
    )
    body_fields = dict(s["body_fields"] or {})
    for option in (o.name for o in OPTIONS if o.secret):
        value = s[option]
        if isinstance(value, Secret) and value.origin == "config":
            problems.append(
                f"{option} is written in the config file. Hint: secrets come only from the "
                f"environment or a file: {option}: {{env: NAME}} or {{file: PATH}}"
            )
    tls = _tls(where, s, services.base_dir, problems)
    if problems:
        raise ConfigError([f"{where}: {p}" for p in problems])
    return Config(
        where=where,
        settings=s,
        base_url=base_url,
        operations=parsed,
        paths=paths,
        item_keys=item_keys,
        item_validator=item_validator,
        auth=auth,
        limits=limits,
        body_fields=body_fields,
        error_ok=_codes(s["error_ok"]),
        error_done=_codes(s["error_done"]),
        error_transient=_codes(s["error_transient"]),
        error_auth=_codes(s["error_auth"]),
        tls=tls,
    )


def _codes(text: str) -> frozenset[str]:
    return frozenset(c.strip() for c in text.split(",") if c.strip())


def _paths(settings: Mapping[str, Any], problems: list[str]) -> dict[str, JsonPath | None]:
    compiled: dict[str, JsonPath | None] = {}
    for option in PATH_OPTIONS:
        text = settings[option]
        try:
            compiled[option] = JsonPath.compile(text) if text else None
        except PathError as exc:
            problems.append(f"{option}: {exc}")
            compiled[option] = None
    return compiled


def _item_keys(settings: Mapping[str, Any], problems: list[str]) -> list[JsonPath]:
    try:
        return [JsonPath.compile(p) for p in settings["item_key"].split(",") if p.strip()]
    except PathError as exc:
        problems.append(f"item_key: {exc}")
        return []


def _check_receive(s: Mapping[str, Any], problems: list[str]) -> None:
    if not s["receive_operation"]:
        return
    if s["cursor_param"] and not (s["cursor_path"] or s["cursor_field"]):
        problems.append(
            "cursor_param needs cursor_path (from the answer) or cursor_field (from the items)"
        )
    if s["cursor_path"] and s["cursor_field"]:
        problems.append("set cursor_path or cursor_field, not both")
    if s["pagination"] in ("next_link", "cursor") and not s["next_path"]:
        problems.append(f"pagination: {s['pagination']} needs next_path")
    if s["pagination"] == "cursor" and not s["cursor_param"]:
        problems.append("pagination: cursor needs cursor_param, the parameter that carries it")
    if s["max_pages"] < 1 or s["page_size"] < 1:
        problems.append("max_pages and page_size must be at least 1")


def _auth(
    where: str,
    s: Mapping[str, Any],
    base_url: str,
    transport: Transport,
    problems: list[str],
) -> auth_schemes.Auth:
    """The endpoint's auth scheme, each setting it needs checked."""
    scheme = s["auth"]
    placing = {
        "header": s["token_header"],
        "prefix": s["token_prefix"],
        "field": s["token_field"],
    }

    def need(*names: str) -> None:
        for name in names:
            if not s[name]:
                problems.append(f"auth: {scheme} needs {name}")

    if scheme == "basic":
        need("username", "password")
        return auth_schemes.BasicAuth(where, s["username"], s["password"])
    if scheme == "bearer":
        need("token")
        return auth_schemes.BearerAuth(where, s["token"], **placing)
    if scheme == "api_key":
        need("api_key")
        return auth_schemes.ApiKeyAuth(where, s["api_key_header"], s["api_key"])
    if scheme == "hmac":
        need("hmac_key_id", "hmac_secret")
        headers = s["hmac_headers"] or DEFAULT_HMAC_HEADERS
        hmac_auth = auth_schemes.HmacAuth(
            where,
            key_id=s["hmac_key_id"],
            secret=s["hmac_secret"],
            message=s["hmac_message"],
            headers={str(k): str(v) for k, v in headers.items()},
            encoding=s["hmac_encoding"],
            algorithm=s["hmac_algorithm"],
        )
        known = {"method", "path", "host", "timestamp", "timestamp_ms", "date", "nonce"}
        known |= {"body_sha256", "body_sha256_b64", "content_type", "key_id"}
        for template in (hmac_auth.message, *hmac_auth.headers.values()):
            unknown = (
                set(template.names)
                - known
                - ({"signature"} if template is not hmac_auth.message else set())
            )
            if unknown:
                problems.append(
                    f"hmac: unknown placeholder(s) {sorted(unknown)} in {template.text!r}"
                )
        return hmac_auth
    if scheme in ("login", "oauth2"):
        need("login_path")
        need(*(("client_id", "client_secret") if scheme == "oauth2" else ("username", "password")))
        login = s["login_path"]
        url = login if "://" in login else base_url + login
        if login and "://" not in login and not login.startswith("/"):
            problems.append(f"login_path {login!r} must start with '/' or be a full URL")
        try:
            return auth_schemes.LoginAuth(
                where,
                transport=transport,
                url=url,
                oauth2=scheme == "oauth2",
                settings=s,
                **placing,
            )
        except PathError as exc:
            problems.append(str(exc))
    return auth_schemes.Auth(where)


def _tls(
    where: str, settings: Mapping[str, Any], base_dir: Path, problems: list[str]
) -> dict[str, Any]:
    """The client's TLS settings; its files checked to exist, verification off warned of."""

    def file(option: str) -> Path | None:
        value = settings[option]
        if not value:
            return None
        path = Path(value) if Path(value).is_absolute() else base_dir / value
        if not path.is_file():
            problems.append(
                f"{option} file '{path}' does not exist. Hint: a PEM file, absolute or "
                "relative to the config file"
            )
        return path

    ca, cert, key = file("ca_file"), file("client_cert"), file("client_key")
    if key and not cert:
        problems.append(
            "client_key is set without client_cert. Hint: set client_cert to the PEM "
            "certificate of that key"
        )
    verify = bool(settings["verify_tls"])
    if not verify and ca:
        problems.append(
            "ca_file is set but verify_tls is false, so it would be ignored. "
            "Hint: drop verify_tls: false"
        )
    if not verify:
        log.warning(
            "%s: TLS verification is off (verify_tls: false): the system's certificate is not "
            "checked, so anyone on the path can read and change the traffic. Hint: set ca_file "
            "to the system's CA instead",
            where,
        )
    return {"verify": verify, "ca_file": ca, "client_cert": cert, "client_key": key}
