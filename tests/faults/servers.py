"""PRIVATE PostgreSQL and RabbitMQ servers that fault tests may stop, kill and restart.

The machine's shared servers (127.0.0.1:5432, :5672) serve other tests at the
same time, so a test that restarts a server gets its own: a PostgreSQL cluster
made with ``initdb`` and a second RabbitMQ node, each on free loopback ports
under a temporary folder, removed afterwards. The fixtures skip, naming the
missing binary and how to install it, where these cannot be started.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _as_user(user: str) -> list[str]:
    """The prefix that runs a command as ``user`` (servers refuse to run as root)."""
    if os.geteuid() != 0:
        return []
    return ["runuser", "-u", user, "--"]


def _owned_tempdir(prefix: str, user: str) -> Path:
    """A temporary folder the server's user may write in (pytest's tmp_path is root-only)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    path.chmod(0o755)
    return path


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not happen within {timeout:.0f} s")


# --- PostgreSQL ---


def postgres_bin() -> Path | None:
    """The newest Debian PostgreSQL bin folder holding initdb and pg_ctl."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda p: int(Path(p).parts[4]) if Path(p).parts[4].isdigit() else 0,
    )
    return Path(found[-1]).parent if found else None


class PrivatePostgres:
    """A throw-away PostgreSQL cluster on a free port: start, stop (fast or immediate), restart."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
        self.root = _owned_tempdir("ltfault-pg-", self.user)
        self.data = self.root / "data"
        self.port = free_port()
        self.log = self.root / "server.log"

    @property
    def url(self) -> str:
        """An SQLAlchemy URL for the cluster's ``postgres`` database (trust auth)."""
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*_as_user(self.user), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=self.root,
        )

    def init(self) -> None:
        done = self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            self.user,
            "--no-sync",
        )
        if done.returncode:
            raise RuntimeError(f"initdb failed: {done.stderr or done.stdout}")

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c max_connections=100"
        )
        done = self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )
        if done.returncode:
            raise RuntimeError(f"pg_ctl start failed: {done.stderr}\n{self.log_tail()}")

    def stop(self, mode: str = "fast") -> None:
        """Stop: ``fast`` cuts sessions and checkpoints, ``immediate`` is a crash."""
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self, down_seconds: float = 0.0, mode: str = "fast") -> None:
        self.stop(mode)
        time.sleep(down_seconds)
        self.start()

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-3000:]
        return ""

    def cleanup(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


# --- RabbitMQ ---

RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")


def rabbit_bin() -> Path | None:
    """The folder of rabbitmq-server and rabbitmqctl (the Debian package's, else on PATH)."""
    if (RABBIT_BIN / "rabbitmq-server").exists():
        return RABBIT_BIN
    found = shutil.which("rabbitmq-server")
    return Path(found).parent if found else None


class PrivateRabbit:
    """A second RabbitMQ node on free ports, with its own data: start, stop, restart.

    It shares the machine's Erlang cookie (the ``rabbitmq`` user's home), so
    ``rabbitmqctl -n NODE`` reaches it, and keeps its data across a restart,
    so durable queues and persistent messages survive as in production.
    """

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.user = "rabbitmq" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
        self.root = _owned_tempdir("ltfault-rmq-", self.user)
        self.node = f"ltfault-{uuid.uuid4().hex[:8]}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        (self.root / "enabled_plugins").write_text("")
        (self.root / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = 127.0.0.1:{self.port}\n"
        )
        for name in ("enabled_plugins", "rabbitmq.conf"):
            (self.root / name).chmod(0o644)
        home = Path(pwd.getpwnam(self.user).pw_dir)
        self.env = {
            **os.environ,
            "HOME": str(home),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONFIG_FILE": str(self.root / "rabbitmq.conf"),
            "RABBITMQ_MNESIA_BASE": str(self.root / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.root / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.root / "enabled_plugins"),
        }

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def _ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*_as_user(self.user), str(self.bindir / "rabbitmqctl"), "-n", self.node, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=self.env,
            cwd=self.root,
        )

    def start(self) -> None:
        subprocess.run(
            [*_as_user(self.user), str(self.bindir / "rabbitmq-server"), "-detached"],
            env=self.env,
            cwd=self.root,
            check=True,
            timeout=30,
        )
        try:
            _wait(lambda: listening(self.port), 90, f"RabbitMQ node {self.node} listening")
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n{self.log_tail()}") from exc
        self._ctl("await_startup", "--timeout", "60")

    def stop(self) -> None:
        self._ctl("stop")
        _wait(lambda: not listening(self.port), 60, f"RabbitMQ node {self.node} stopping")

    def restart(self, down_seconds: float = 0.0) -> None:
        self.stop()
        time.sleep(down_seconds)
        self.start()

    def log_tail(self) -> str:
        logs = sorted((self.root / "log").glob("*.log"))
        with contextlib.suppress(OSError):
            return "\n".join(p.read_text(errors="replace")[-2000:] for p in logs)
        return ""

    def cleanup(self) -> None:
        with contextlib.suppress(Exception):
            self._ctl("stop", timeout=30)
        shutil.rmtree(self.root, ignore_errors=True)


# --- fixtures ---


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL cluster of this test's own, which it may restart."""
    bindir = postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not found: apt-get install postgresql")
    server = PrivatePostgres(bindir)
    try:
        server.init()
        server.start()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        server.cleanup()
        pytest.skip(f"could not start a private PostgreSQL with {bindir}: {exc}")
    yield server
    server.cleanup()


@pytest.fixture(scope="module")
def private_rabbit_node() -> Iterator[PrivateRabbit]:
    """A RabbitMQ node for one test module: a node takes seconds to boot and to stop."""
    bindir = rabbit_bin()
    if bindir is None:
        pytest.skip("rabbitmq-server not found: apt-get install rabbitmq-server")
    server = PrivateRabbit(bindir)
    try:
        server.start()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        server.cleanup()
        pytest.skip(f"could not start a private RabbitMQ node with {bindir}: {exc}")
    yield server
    server.cleanup()


@pytest.fixture
def private_rabbit(private_rabbit_node: PrivateRabbit) -> PrivateRabbit:
    """The module's private RabbitMQ node, up, which the test may restart. Tests share it:
    each names its queues apart (endpoint names with the ``unique`` fixture)."""
    if not listening(private_rabbit_node.port):  # a test before left it stopped
        private_rabbit_node.start()
    return private_rabbit_node
