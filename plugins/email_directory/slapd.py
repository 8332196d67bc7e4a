"""A throwaway OpenLDAP server for tests, benchmarks and the sandbox.

:class:`TemporarySlapd` writes a ``slapd.conf`` (core, cosine, inetorgperson and
nis schemas; one mdb database; a root DN with a password) into a temporary
folder, creates the suffix entry, starts ``slapd`` as the current user on a free
loopback port, waits until it answers, and on exit stops it and deletes the
folder. ``load_ldif`` bulk-loads entries with ``slapadd`` (fast, offline).

It is a sandbox: it never listens on anything but 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

SCHEMAS = ("core", "cosine", "inetorgperson", "nis")
_SCHEMA_DIRS = ("/etc/ldap/schema", "/etc/openldap/schema", "/usr/local/etc/openldap/schema")
_MODULE_DIRS = (
    "/usr/lib/ldap",
    "/usr/lib64/openldap",
    "/usr/lib/openldap",
    "/usr/libexec/openldap",
)
INSTALL_HINT = "apt-get install slapd ldap-utils (.ci/run installs it)"


class SlapdMissing(RuntimeError):
    """slapd or slapadd is not installed; the message says how to install it."""


def find_binary(name: str) -> str | None:
    """Where ``name`` is, looking in sbin folders that a non-root PATH often lacks."""
    found = shutil.which(name)
    if found:
        return found
    for folder in ("/usr/sbin", "/usr/local/sbin", "/sbin"):
        candidate = Path(folder, name)
        if candidate.exists():
            return str(candidate)
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TemporarySlapd:
    """slapd on 127.0.0.1 with its own config and database, gone after ``stop``.

    ``size_limit`` sets the server's ``sizelimit`` (the root DN is exempt, so test
    it with :meth:`add_reader`); ``tls`` is a ``(certfile, keyfile)`` pair that
    enables StartTLS.
    """

    def __init__(
        self,
        suffix: str = "dc=tinh,dc=gov,dc=vn",
        *,
        password: str = "sandbox-secret",
        size_limit: int | None = None,
        tls: tuple[Path, Path] | None = None,
        indexes: tuple[str, ...] = ("objectClass", "uid", "ou", "businessCategory", "mail"),
    ) -> None:
        self.slapd = find_binary("slapd")
        self.slapadd = find_binary("slapadd")
        if not self.slapd or not self.slapadd:
            raise SlapdMissing(f"slapd not found: {INSTALL_HINT}")
        self.suffix = suffix
        self.rootdn = f"cn=admin,{suffix}"
        self.password = password
        self.size_limit = size_limit
        self.tls = tls
        self.indexes = indexes
        self.dir = Path(tempfile.mkdtemp(prefix="lienthong-slapd-"))
        self.conf = self.dir / "slapd.conf"
        self.port = 0
        self.tls_port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        try:
            self._write_config()
            first = self.suffix.split(",")[0].split("=", 1)[1]
            self.load_ldif_text(
                f"dn: {suffix}\nobjectClass: dcObject\nobjectClass: organization\n"
                f"dc: {first}\no: {first}\n"
            )
        except BaseException:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}/"

    @property
    def ldaps_url(self) -> str:
        """The LDAPS listener, when started with ``tls``."""
        return f"ldaps://127.0.0.1:{self.tls_port}/"

    def _write_config(self) -> None:
        schema_dir = next((d for d in _SCHEMA_DIRS if Path(d, "core.schema").exists()), None)
        if schema_dir is None:
            raise SlapdMissing(f"OpenLDAP schema files not found in {_SCHEMA_DIRS}: {INSTALL_HINT}")
        lines = [f"include {schema_dir}/{name}.schema" for name in SCHEMAS]
        lines.append(f"pidfile {self.dir / 'slapd.pid'}")
        module_dir = next((d for d in _MODULE_DIRS if list(Path(d).glob("back_mdb*"))), None)
        if module_dir:
            lines += [f"modulepath {module_dir}", "moduleload back_mdb"]
        if self.tls:
            lines += [f"TLSCertificateFile {self.tls[0]}", f"TLSCertificateKeyFile {self.tls[1]}"]
        if self.size_limit is not None:
            lines.append(f"sizelimit {self.size_limit}")
        (self.dir / "data").mkdir()
        lines += [
            "database mdb",
            "maxsize 4294967296",
            f'suffix "{self.suffix}"',
            f'rootdn "{self.rootdn}"',
            f"rootpw {self.password}",
            f"directory {self.dir / 'data'}",
            *(f"index {name} eq" for name in self.indexes),
        ]
        self.conf.write_text("\n".join(lines) + "\n", encoding="utf-8")

    # --- life cycle ---

    def start(self, timeout: float = 15.0) -> TemporarySlapd:
        """Start slapd on a free port and wait until it answers a search."""
        for _attempt in range(3):
            self.port = self.port or free_port()
            urls = self.url
            if self.tls:
                self.tls_port = self.tls_port or free_port()
                urls += f" {self.ldaps_url}"
            log = (self.dir / "slapd.log").open("wb")
            self._proc = subprocess.Popen(
                [self.slapd or "slapd", "-f", str(self.conf), "-h", urls, "-d", "0"],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            log.close()
            if self._wait(timeout):
                return self
            self._kill()
            self.port = self.tls_port = 0  # a port was taken in between: try others
        raise RuntimeError(f"slapd did not start; its log:\n{self.log()}")

    def _wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return True
            except OSError:
                time.sleep(0.05)
        return False

    def log(self) -> str:
        path = self.dir / "slapd.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _kill(self) -> None:
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGINT)  # slapd's clean shutdown
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self._proc.pid, signal.SIGKILL)
                self._proc.wait()
        self._proc = None

    def stop(self) -> None:
        """Stop slapd and delete its folder."""
        self._kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> TemporarySlapd:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- data ---

    def load_ldif(self, path: Path) -> None:
        """Bulk-load an LDIF file with ``slapadd -q``; slapd is paused meanwhile if running."""
        running = self._proc is not None
        if running:
            self._kill()
        result = subprocess.run(
            [self.slapadd or "slapadd", "-q", "-f", str(self.conf), "-l", str(path)],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise RuntimeError(f"slapadd of '{path}' failed: {result.stderr.strip()}")
        if running:
            self.start()

    def load_ldif_text(self, text: str) -> None:
        path = self.dir / "load.ldif"
        path.write_text(text, encoding="utf-8")
        try:
            self.load_ldif(path)
        finally:
            path.unlink()

    def add_reader(self, name: str = "reader", password: str = "reader-secret") -> str:
        """Add a plain (non-root) bind DN that server limits apply to; returns its DN."""
        dn = f"cn={name},{self.suffix}"
        self.load_ldif_text(
            f"dn: {dn}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\n"
            f"cn: {name}\nuserPassword: {password}\n"
        )
        return dn
