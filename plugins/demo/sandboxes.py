"""Every sandbox the demo's config names, started on its loopback port: the axis, the
accounting services, slapd for the directory, an SMTP sink, the one-stop system and
the national portal.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from lienthong import config as config_module

from .errors import DemoError, DemoUnavailable
from .province import DIRECTORY_PEOPLE, FINANCE_SYSTEM, MAIL_DOMAIN, STC, SYT, UBND, UBND_SYSTEM


def _loopback_port(url: str, where: str) -> int:
    parts = urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost") or not parts.port:
        raise DemoError(
            f"{where}: {url!r} is not a loopback URL with a port. Hint: the demo starts its "
            "sandboxes on 127.0.0.1 only; use config/reference-flows.yaml or a copy of it"
        )
    return parts.port


def _check_free(port: int, what: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise DemoUnavailable(
                f"port {port} on 127.0.0.1 ({what}) is in use: {exc.strerror}. Hint: is another "
                "demo still running? Stop it, or change the port in the config"
            ) from exc


class MailSink:
    """A SANDBOX SMTP server on loopback that keeps every mail, in memory and as .eml files."""

    def __init__(self, port: int, folder: Path) -> None:
        from aiosmtpd.controller import Controller

        self.folder = folder
        self.mails: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self._lock = threading.Lock()
        self.controller = Controller(self, hostname="127.0.0.1", port=port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        data = envelope.original_content or envelope.content
        mail = message_from_bytes(data, policy=policy.default)
        assert isinstance(mail, EmailMessage)
        with self._lock:
            self.mails.append(mail)
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            number = len(self.mails)
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / f"{number:03d}.eml").write_bytes(data)
        return "250 OK"

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()


class Sandboxes:
    """Every sandbox the config's endpoints name, started on their configured ports."""

    def __init__(self, cfg: config_module.Config) -> None:
        from ..accounting_soap.sandbox import AccountingSandbox
        from ..document_axis.sandbox import SandboxAxis

        self.cfg = cfg
        self.axis_endpoints: dict[str, dict[str, Any]] = {}
        self.accounting: dict[str, AccountingSandbox] = {}  # endpoint → its sandbox
        self.directory: dict[str, Any] | None = None
        # The fourth flow's JSON/REST systems, when the config has them.
        self.onestop: Any = None  # OneStopSandbox
        self.portal: Any = None  # PortalSandbox
        self.onestop_endpoints: set[str] = set()
        self.portal_endpoints: set[str] = set()
        rest: dict[int, tuple[str, str]] = {}  # port → (role, endpoint that set it)
        ports: dict[int, str] = {}
        axis_port = None
        by_port: dict[int, AccountingSandbox] = {}
        for name, ep in cfg.endpoints.items():
            s = ep.settings
            where = f"endpoints.{name}"
            if ep.adapter == "axis":
                port = _loopback_port(str(s["url"]), f"{where}.url")
                if axis_port not in (None, port):
                    raise DemoError(
                        f"{where}.url: the axis endpoints name two ports ({axis_port}, {port}). "
                        "Hint: the demo starts one sandbox axis; give them one URL"
                    )
                axis_port = port
                ports.setdefault(port, f"{where}.url")
                self.axis_endpoints[name] = s
            elif ep.adapter == "accounting_soap":
                port = _loopback_port(str(s.get("address") or s["wsdl"]), f"{where}.wsdl")
                if port not in by_port:
                    ports[port] = f"{where}.wsdl"
                    by_port[port] = AccountingSandbox(port=port)
                self.accounting[name] = by_port[port]
            elif ep.adapter == "email_directory":
                port = _loopback_port(str(s["url"]), f"{where}.url")
                if self.directory is None:
                    self.directory = dict(s)
                    ports[port] = f"{where}.url"
                    if s.get("smtp_host"):
                        ports[int(s["smtp_port"])] = f"{where}.smtp_port"
                elif port != _loopback_port(str(self.directory["url"]), where):
                    raise DemoError(f"{where}.url: the demo starts one directory; give one URL")
                if s.get("smtp_host") and not self.directory.get("smtp_host"):
                    self.directory.update(smtp_host=s["smtp_host"], smtp_port=s["smtp_port"])
                    ports[int(s["smtp_port"])] = f"{where}.smtp_port"
            elif ep.adapter == "rest_json":
                self._rest_endpoint(name, s, where, rest, ports)
        if axis_port is None or self.directory is None or not self.accounting:
            raise DemoError(
                "the config needs axis, accounting_soap and email_directory endpoints. "
                "Hint: run the demo with config/reference-flows.yaml"
            )
        if str(self.directory.get("smtp_host")) not in ("127.0.0.1", "localhost"):
            raise DemoError(
                "the demo's mail sink needs an email_directory endpoint with smtp_host: "
                "127.0.0.1 and an smtp_port. Hint: see config/reference-flows.yaml"
            )
        for port, what in ports.items():
            _check_free(port, what)
        # The axis binds each system to the agency it acts for.
        systems = {
            str(s["system_id"]): (s["secret"].reveal(), str(s["organ_id"]))
            for s in self.axis_endpoints.values()
        }
        systems[FINANCE_SYSTEM[0]] = (FINANCE_SYSTEM[1], STC)
        systems[UBND_SYSTEM[0]] = (UBND_SYSTEM[1], UBND)
        self.axis = SandboxAxis(systems, port=axis_port)
        self.smtp_port = int(self.directory["smtp_port"])
        self.slapd: Any = None
        self.mail: MailSink | None = None
        self._started: list[Callable[[], None]] = []

    def _rest_endpoint(
        self,
        name: str,
        s: dict[str, Any],
        where: str,
        rest: dict[int, tuple[str, str]],
        ports: dict[int, str],
    ) -> None:
        """A JSON/REST endpoint: the national portal or the one-stop-shop system, by its login.

        The portal gives a session for a username and password (``auth: login``); the
        province's integration platform issues OAuth2 tokens (``auth: oauth2``).
        """
        from ..rest_json.onestop_sandbox import OneStopSandbox
        from ..rest_json.portal_sandbox import PortalSandbox

        port = _loopback_port(str(s["base_url"]), f"{where}.base_url")
        roles = {"login": "portal", "oauth2": "onestop"}
        role = roles.get(str(s["auth"]))
        if role is None:
            raise DemoError(
                f"{where}.auth: {s['auth']!r} is neither the portal's session login (login) nor "
                "the one-stop platform's OAuth2 (oauth2). Hint: see config/reference-flows.yaml"
            )
        existing = self.portal if role == "portal" else self.onestop
        if port in rest:
            if rest[port][0] != role:
                raise DemoError(
                    f"{where}.base_url: port {port} is already the {rest[port][0]} sandbox's "
                    f"({rest[port][1]}). Hint: give the portal and the one-stop system a port each"
                )
        elif existing is not None:
            raise DemoError(
                f"{where}.base_url: the demo starts one {role} sandbox, on one port. "
                f"Hint: give every {role} endpoint the same base_url host and port"
            )
        elif role == "portal":
            madonvi = str((s.get("body_fields") or {}).get("madonvi") or "")
            if not madonvi:
                raise DemoError(
                    f"{where}.body_fields: the portal needs madonvi, the agency code it syncs "
                    'for. Hint: body_fields: {madonvi: "000.00.00.H15"}'
                )
            self.portal = PortalSandbox(
                username=str(s["username"]),
                password=s["password"].reveal(),
                agencies=(madonvi,),
                port=port,
            )
        else:
            self.onestop = OneStopSandbox(
                client_id=str(s["client_id"]), client_secret=s["client_secret"].reveal(), port=port
            )
        rest.setdefault(port, (role, name))
        ports.setdefault(port, f"{where}.base_url")
        (self.portal_endpoints if role == "portal" else self.onestop_endpoints).add(name)

    @property
    def organs(self) -> dict[str, str]:
        """Our axis endpoints' agency codes, by endpoint."""
        return {name: str(s["organ_id"]) for name, s in self.axis_endpoints.items()}

    def start(self, var_dir: Path) -> None:
        try:
            self.axis.start()
            self._started.append(self.axis.stop)
            for sandbox in dict.fromkeys(self.accounting.values()):
                sandbox.start()
                self._started.append(sandbox.stop)
            for rest in (self.onestop, self.portal):
                if rest is not None:
                    rest.start()
                    self._started.append(rest.stop)
            self._start_directory()
            self.mail = MailSink(self.smtp_port, var_dir / "mailbox")
            self.mail.start()
            self._started.append(self.mail.stop)
        except BaseException:
            self.stop()
            raise

    def _start_directory(self) -> None:
        from ..email_directory.slapd import SlapdMissing, TemporarySlapd

        assert self.directory is not None
        d = self.directory
        try:
            server = TemporarySlapd(str(d["base_dn"]), password=d["password"].reveal())
        except SlapdMissing as exc:
            raise DemoUnavailable(f"{exc}. The demo's email directory is a real slapd") from exc
        server.port = _loopback_port(str(d["url"]), "directory url")
        containers = {str(d["agencies_dn"]), str(d["accounts_dn"])}
        for ep in self.cfg.endpoints.values():
            if ep.adapter == "email_directory":
                containers.update(
                    {str(ep.settings["agencies_dn"]), str(ep.settings["accounts_dn"])}
                )
        ldif = []
        for dn in sorted(containers - {str(d["base_dn"])}, key=len):
            ou = dn.split(",")[0].split("=", 1)[1]
            ldif.append(f"dn: {dn}\nobjectClass: organizationalUnit\nou: {ou}\n")
        # The accounts a staff list is reconciled into: the target of the account sync.
        people = next(
            (
                str(self.cfg.endpoints[job.sync.target_endpoint].settings["accounts_dn"])
                for job in self.cfg.jobs.values()
                if job.sync is not None and job.sync.entity == "account"
            ),
            str(d["accounts_dn"]),
        )
        for uid, full, given, family, title in DIRECTORY_PEOPLE:
            ldif.append(
                f"dn: uid={uid},{people}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {full}\n"
                f"givenName: {given}\nsn: {family}\nmail: {uid}@{MAIL_DOMAIN}\ntitle: {title}\n"
                f"departmentNumber: {SYT}\nemployeeType: active\n"
            )
        server.load_ldif_text("\n".join(ldif))
        server.start()
        if server.port != _loopback_port(str(d["url"]), "directory url"):
            server.stop()
            raise DemoUnavailable(f"slapd could not listen on {d['url']}. Hint: free that port")
        self.slapd = server
        self._started.append(server.stop)

    def stop(self) -> None:
        while self._started:
            with contextlib.suppress(Exception):
                self._started.pop()()
