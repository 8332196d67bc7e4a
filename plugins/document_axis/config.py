"""An axis endpoint's settings read at start: checked all at once, and what their files hold.

Every problem names its place in the config file (``endpoints.<name>.<option>``):
the URL, policy, hash form and agency code are checked together; the trust
anchors, intermediates, CRLs and signer binding are loaded together, so one
start reports every broken file; the signing key is loaded last.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests

from lienthong.adapter import Services
from lienthong.errors import ConfigError, ConfigProblem, LienthongError

from .client import HASH_FILE_FORMS, AxisAuthError, AxisClient, Wire
from .provenance import Provenance

POLICIES = ("require", "verify-if-present", "verify_if_present", "off")


def check(endpoint: str, settings: Mapping[str, Any]) -> None:
    """Refuse settings the option types let through, every problem at once."""
    s = settings
    where = f"endpoints.{endpoint}"
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


def provenance(endpoint: str, settings: Mapping[str, Any], services: Services) -> Provenance:
    """Trust anchors, intermediates, CRLs and the signer binding, every problem at once."""
    from .binding import Binding
    from .trust import Trust

    s = settings
    where = f"endpoints.{endpoint}"
    problems: list[ConfigProblem] = []
    trust = binding = None

    def files(option: str) -> list[Any]:
        return [services.base_dir / str(p) for p in s[option]]

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
            max_bytes=services.max_message_bytes,
        )
    except ConfigError as exc:
        raise ConfigError(
            ConfigProblem(f"{where}.signature_policy", p.message) for p in exc.problems
        ) from exc


def signing_key(endpoint: str, settings: Mapping[str, Any], services: Services) -> Any:
    """The key that signs what the endpoint sends; None when it sends unsigned."""
    from . import signature

    s = settings
    if not s["signing_key"]:
        return None
    if s["signing_algorithm"] not in signature.ALGORITHMS:
        raise ConfigError(
            [
                ConfigProblem(
                    f"endpoints.{endpoint}.signing_algorithm",
                    f"unknown algorithm {s['signing_algorithm']!r}; use one of "
                    f"{', '.join(sorted(signature.ALGORITHMS))}",
                )
            ]
        )
    cert = services.base_dir / s["signing_cert"] if s["signing_cert"] else None
    try:
        return signature.load_key(
            services.base_dir / s["signing_key"], s["signing_password"], cert=cert
        )
    except LienthongError as exc:
        raise ConfigError([ConfigProblem(f"endpoints.{endpoint}.signing_key", str(exc))]) from exc


def client(settings: Mapping[str, Any], services: Services) -> AxisClient:
    """The axis client the settings describe, on a session of its own; not yet called."""
    s = settings
    return AxisClient(
        s["url"],
        s["system_id"],
        s["secret"],
        session=requests.Session(),
        timeout=float(s["timeout"]),
        clock=services.clock,
        wire=Wire(
            hash_file=s["hash_file"],
            nonce=bool(s["nonce"]),
            idempotency_key=bool(s["idempotency_key"]),
        ),
    )


def check_axis(endpoint: str, settings: Mapping[str, Any], client: AxisClient) -> None:
    """Call the axis once: a refused secret, or a sandbox axis not allowed, is a config error."""
    try:
        response_is_sandbox = client.check()
    except AxisAuthError as exc:
        where = f"endpoints.{endpoint}.{exc.option}"
        raise ConfigError([ConfigProblem(where, str(exc))]) from exc
    if response_is_sandbox and not settings["sandbox"]:
        raise ConfigError(
            [
                ConfigProblem(
                    f"endpoints.{endpoint}.url",
                    f"{settings['url']} is a SANDBOX axis, not the national axis. "
                    "Hint: point 'url' at the real axis, or set 'sandbox: true' for tests "
                    "and demos",
                )
            ]
        )
