"""What every page shares: the config, the reads, the actions, logins and the audit chain's state.

Built once per console (``lienthong console``, or a ``lienthong run`` with
``bus.console_port``) and handed to :func:`lienthong.console.app.create_app`.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from .. import audit as audit_chain
from ..bus import Bus
from ..config import Config
from ..host import PluginHost
from ..mapping import MappingLibrary
from ..store import utcnow
from .actions import Actions
from .auth import LoginLimiter, LoginUnavailable, User, ldap_login, local_login
from .queries import Queries

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AuditState:
    """The audit chain's last verdict and when it was reached."""

    verdict: audit_chain.Verdict
    checked_at: datetime


class AuditWatch:
    """Walks the audit chain on a thread of its own, now and then, so no page waits for it."""

    def __init__(self, queries: Queries, every_s: float) -> None:
        self.queries = queries
        self.every_s = every_s
        self.state: AuditState | None = None
        self.running = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="console-audit", daemon=True)
        self._thread.start()

    def check_now(self) -> None:
        """Ask for a walk now (the overview's button); returns at once."""
        self._wake.set()

    def check(self) -> AuditState:
        """Walk the chain in this thread and keep the verdict."""
        self.running = True
        try:
            self.state = AuditState(self.queries.verify_audit(), utcnow())
        finally:
            self.running = False
        return self.state

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.check()
            except Exception:
                log.exception("the audit chain could not be verified; trying again later")
            self._wake.wait(self.every_s)
            self._wake.clear()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None


class Console:
    """The console's services over one config: its own bus (never started), reads, actions."""

    def __init__(
        self,
        config: Config,
        host: PluginHost | None = None,
        *,
        limiter: LoginLimiter | None = None,
    ) -> None:
        self.config = config
        self.settings = config.console
        bus = Bus(config, host, worker=f"console@{socket.gethostname()}:{os.getpid()}")
        self.queries = Queries(bus.store, config, bus.host)
        self.actions = Actions(bus, self.queries)
        self.mappings: MappingLibrary = bus.mappings
        self.limiter = limiter or LoginLimiter()
        self.audit = AuditWatch(self.queries, self.settings.audit_verify_minutes * 60)
        self.secret_key = self._secret_key()

    def _secret_key(self) -> str:
        """The configured signing key, or one kept in var_dir (made on first start, owner only)."""
        if self.settings.secret_key is not None:
            return self.settings.secret_key.reveal()
        path = Path(self.config.bus.var_dir) / "console-secret"
        try:
            return path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            pass
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(key + "\n")
        return key

    @property
    def login_methods(self) -> list[str]:
        methods = []
        if self.settings.ldap is not None:
            methods.append("ldap")
        if self.settings.users_file is not None:
            methods.append("local")
        return methods

    def login(self, name: str, password: str) -> User | None:
        """The person, if the directory or the local accounts file accepts the password.

        Raises ``LoginUnavailable`` (the directory is down and no local account
        matched) and ``PermissionError`` (right password, no console role).
        """
        unavailable: LoginUnavailable | None = None
        if self.settings.ldap is not None:
            try:
                user = ldap_login(self.settings.ldap, name, password)
            except LoginUnavailable as exc:
                log.warning("console login of %s: %s", name, exc)
                unavailable = exc
            else:
                if user is not None:
                    return user
        if self.settings.users_file is not None:
            user = local_login(self.settings.users_file, name, password)
            if user is not None:
                return user
        if unavailable is not None:
            raise unavailable
        return None

    def start(self) -> None:
        self.audit.start()

    def close(self) -> None:
        self.audit.stop()
        self.actions.close()
