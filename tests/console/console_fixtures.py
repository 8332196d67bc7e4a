"""A bus project for the console's tests: real folders, a real store, real accounts.

``console_project`` writes a config (a one-stop-shop inbox mapped to receipts in
an outbox folder, local console accounts in a file), builds the bus that
accepts and delivers, and the console over the same store. A dead letter is
made the way one happens: the receipt's file name is taken by another file, so
the folder adapter rejects the delivery; removing that file fixes the cause.

``directory`` adds the shared slapd: a subtree with accounts a staff list is
synced into, console users who bind with their own passwords, and the groups
that give them their roles.
"""

from __future__ import annotations

import itertools
import re
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ldap
import pytest
import yaml

from lienthong import config as config_module
from lienthong.bus import Bus
from lienthong.console.app import create_app
from lienthong.console.auth import add_local_account
from lienthong.console.services import Console
from lienthong.host import PluginHost
from lienthong.plugins.email_directory.slapd import TemporarySlapd
from tests.busproject import REPO
from tests.email_directory.directory_fixtures import Tree, add

APPLICATION = (REPO / "mappings/onestop/application-to-receipt.cases/basic/input.xml").read_bytes()

#: name: (role, password) of the local accounts every project has.
LOCAL = {
    "xem": ("viewer", "viewer-pass-1"),
    "vanhanh": ("operator", "operator-pass-1"),
    "quantri": ("admin", "admin-pass-123"),
}
#: Console users in the directory: uid: (password, group or None).
PEOPLE = {
    "lan": ("mat-khau-lan-1", "operators"),
    "minh": ("mat-khau-minh-1", "viewers"),
    "tuan": ("mat-khau-tuan-1", None),  # in the directory, in no console group
}
STAFF_COLUMNS = "uid,full_name,given_name,family_name,mail,title\n"


@pytest.fixture(scope="session")
def users_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The local accounts file, hashed once for the whole run (argon2 is slow on purpose)."""
    path = tmp_path_factory.mktemp("console") / "users"
    for name, (role, password) in LOCAL.items():
        add_local_account(path, name, role, password)
    return path


_ous = itertools.count()


@dataclass
class Directory:
    """This test's subtree of the shared slapd: synced accounts, console users and groups."""

    tree: Tree
    base: str
    people_dn: str

    @property
    def server(self) -> TemporarySlapd:
        return self.tree.server

    def user_dn(self, uid: str) -> str:
        return f"uid={uid},{self.people_dn}"

    def account(self, uid: str) -> dict[str, list[str]] | None:
        """An account the sync writes, as the directory holds it now."""
        try:
            found = self.tree.conn.search_s(
                f"uid={uid},{self.tree.accounts_dn}", ldap.SCOPE_BASE, "(objectClass=*)"
            )
        except ldap.NO_SUCH_OBJECT:
            return None
        return {k: [v.decode() for v in vs] for k, vs in found[0][1].items()}

    def set_title(self, uid: str, title: str) -> None:
        self.tree.conn.modify_s(
            f"uid={uid},{self.tree.accounts_dn}", [(ldap.MOD_REPLACE, "title", [title.encode()])]
        )

    def login_settings(self) -> dict[str, Any]:
        return {
            "url": self.server.url,
            "user_dn": f"uid={{username}},{self.people_dn}",
            "groups": {
                "operator": f"cn=lienthong-operators,{self.base}",
                "viewer": f"cn=lienthong-viewers,{self.base}",
            },
            "timeout": 5,
        }


def make_directory(tree: Tree) -> Directory:
    """Seed ``tree`` with synced accounts, console users with passwords, and role groups."""
    tree.seed()
    base = tree.base
    people = f"ou=console{next(_ous)},{base}"
    add(tree.conn, people, objectClass="organizationalUnit", ou=people.split(",")[0][3:])
    members: dict[str, list[str]] = {"operators": [], "viewers": []}
    for uid, (password, group) in PEOPLE.items():
        dn = f"uid={uid},{people}"
        add(tree.conn, dn, objectClass="inetOrgPerson", uid=uid, cn=uid, sn=uid,
            userPassword=password)
        if group:
            members[group].append(dn)
    for group, dns in members.items():
        add(tree.conn, f"cn=lienthong-{group},{base}", objectClass="groupOfNames",
            cn=f"lienthong-{group}", member=dns)
    return Directory(tree, base, people)


@pytest.fixture
def directory(tree: Tree) -> Directory:
    return make_directory(tree)


class ConsoleProject:
    """A config on disk, the bus that accepts and delivers, and consoles over its store."""

    def __init__(self, root: Path, users: Path, directory: Directory | None = None,
                 **extra: Any) -> None:
        self.root = root
        self.directory = directory
        for folder in ("in", "out", "hr", "edxml"):
            (root / folder).mkdir()
        shutil.copy(users, root / "users")
        data: dict[str, Any] = {
            "bus": {
                "store": "sqlite:///var/bus.db",
                "var_dir": "var",
                "mappings": str(REPO / "mappings"),
                "poll_interval": 0.05,
                "retry": {"initial_delay": 0.05, "max_delay": 0.2},
            },
            "endpoints": {
                "inbox": {"adapter": "folder", "path": "in", "kind": "onestop.application"},
                "outbox": {"adapter": "folder", "path": "out", "direction": "out",
                           "filename": "receipt-{filename}"},
                "edxml-in": {"adapter": "folder", "path": "edxml", "kind": "edxml"},
            },
            "routes": [{
                "name": "receipts",
                "from": "inbox",
                "to": [{"endpoint": "outbox", "mapping": "onestop/application-to-receipt.xsl",
                        "params": {"issuer": "000.00.00.H41"}}],
            }],
            "console": {"users_file": "users"},
        }
        if directory is not None:
            tree = directory.tree
            data["endpoints"]["staff"] = {
                "adapter": "folder", "path": "hr", "direction": "sync",
                "sync_pattern": "staff-*.csv", "sync_key": "uid",
            }
            data["endpoints"]["directory"] = {
                "adapter": "email_directory", "url": tree.server.url,
                "bind_dn": tree.server.rootdn, "password": {"env": "LIENTHONG_TEST_LDAP_PASSWORD"},
                "base_dn": tree.base, "agencies_dn": tree.agencies_dn,
                "accounts_dn": tree.accounts_dn,
            }
            data["jobs"] = {"staff-sync": {
                "cron": "0 2 * * *",
                "sync": {"source": "staff", "target": "directory", "entity": "account",
                         "max_disable_share": 0.5},
            }}
            data["console"]["ldap"] = directory.login_settings()
        for section, values in extra.items():
            data.setdefault(section, {}).update(values)
        self.path = root / "lienthong.yaml"
        self.path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        self._buses: list[Bus] = []
        self._consoles: list[Console] = []
        self._names = itertools.count(1)

    def config(self) -> config_module.Config:
        environ = {"LIENTHONG_TEST_LDAP_PASSWORD": self.directory.server.password} \
            if self.directory else {}
        return config_module.load(self.path, environ=environ)

    # --- the bus ---

    def bus(self) -> Bus:
        """The bus that accepts and delivers (started, but not running: tests drive its cycles)."""
        if not self._buses:
            bus = Bus(self.config(), PluginHost(), worker="test-bus")
            bus.start()
            self._buses.append(bus)
        return self._buses[0]

    def run_until(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        """Run the bus's cycles until ``condition`` holds (or fail after ``timeout``)."""
        bus = self.bus()
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"not reached within {timeout} s")
            bus.run_cycle()
            time.sleep(0.02)

    def park(self, body: bytes = APPLICATION) -> int:
        """A dead letter made the real way: the receipt's file name is taken. Its id."""
        name = f"app{next(self._names)}.xml"
        (self.root / "out" / f"receipt-{name}").write_text("another receipt is here")
        (self.root / "in" / name).write_bytes(body)
        store = self.bus().store
        before = {d["id"] for d in store.dead_letters()}
        found: list[int] = []

        def parked() -> bool:
            found[:] = [d["id"] for d in store.dead_letters() if d["id"] not in before]
            return bool(found)

        self.run_until(parked)
        return found[0]

    def fix_cause(self) -> None:
        """Remove the files that took the receipts' names, so a replay can succeed."""
        for path in (self.root / "out").glob("receipt-*.xml"):
            if path.read_text(errors="replace") == "another receipt is here":
                path.unlink()

    def delivered(self, name: str = "app1.xml") -> bool:
        """Whether the receipt for the application ``name`` was written by the bus."""
        path = self.root / "out" / f"receipt-{name}"
        return path.exists() and path.read_bytes().startswith(b"<?xml")

    def drop_staff(self, rows: list[str], name: str = "staff-01.csv") -> None:
        path = self.root / "hr" / name
        path.write_text(STAFF_COLUMNS + "".join(r + "\n" for r in rows), encoding="utf-8")

    # --- the console ---

    def console(self, **kwargs: Any) -> Console:
        services = Console(self.config(), PluginHost(), **kwargs)
        self._consoles.append(services)
        return services

    def client(self, services: Console | None = None) -> Any:
        app = create_app(services or self.console())
        app.testing = True
        return app.test_client()

    def close(self) -> None:
        for services in self._consoles:
            services.close()
        for bus in self._buses:
            bus.close()


@pytest.fixture
def console_project(tmp_path: Path, users_file: Path) -> Iterator[ConsoleProject]:
    project = ConsoleProject(tmp_path, users_file)
    yield project
    project.close()


@pytest.fixture
def directory_project(tmp_path: Path, users_file: Path, directory: Directory
                      ) -> Iterator[ConsoleProject]:
    project = ConsoleProject(tmp_path, users_file, directory)
    yield project
    project.close()


# --- the test client ---------------------------------------------------------


def csrf(page: Any) -> str:
    """The CSRF token a page carries in its forms."""
    found = re.search(r'name="csrf" value="([^"]+)"', page.get_data(as_text=True))
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def log_in(client: Any, name: str, password: str | None = None) -> Any:
    """Log ``client`` in as a local account (its password from LOCAL unless given)."""
    token = csrf(client.get("/login"))
    password = password if password is not None else LOCAL[name][1]
    return client.post("/login", data={"username": name, "password": password, "csrf": token,
                                       "next": "/"})


def post(client: Any, path: str, data: dict[str, Any] | list[tuple[str, Any]]) -> Any:
    """POST a form with the session's CSRF token, as the console's own pages do."""
    token = csrf(client.get("/"))
    items = list(data.items()) if isinstance(data, dict) else list(data)
    from werkzeug.datastructures import MultiDict

    return client.post(path, data=MultiDict([*items, ("csrf", token)]))


def text(response: Any) -> str:
    return response.get_data(as_text=True)
