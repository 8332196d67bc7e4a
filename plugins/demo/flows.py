"""The main job on the embedded default: the reference flows against sandboxes, with a summary.

``lienthong demo`` reads ``config/reference-flows.yaml`` (or ``--config``),
starts a SANDBOX of every system it names on the loopback port its URL gives
(the axis, one accounting service per port, slapd for the directory, an SMTP
sink for mail, the one-stop-shop system and the national portal), seeds them
with a province's day (agencies on the axis, vouchers, a staff list, documents
other agencies send ours, dossiers lodged at our one-stop desks), then runs
cycles: the directory syncs (as their nightly schedule would), the bus until
nothing is due, the Department of Finance answering the reports it got, UBND
tỉnh the letters asking its opinion, and the bus again. It prints what moved,
read back from the store and the sandboxes.

Everything lives under the config's ``bus.var_dir`` (``var/demo/``), which
each run starts afresh: the sandboxes keep their state in memory, so an old
store would take their new document ids for ones it had seen. A folder that a
demo did not make is never wiped.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import signal
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import click

from lienthong import config as config_module
from lienthong.bus import Bus
from lienthong.errors import ConfigError
from lienthong.host import PluginHost
from lienthong.store import Store, utcnow

from .agencies import OtherAgencies
from .clerks import Clerks
from .desks import OneStopDesks
from .errors import DemoError, DemoUnavailable
from .province import (
    AGENCIES,
    DESK_SGD,
    DESK_SYT,
    DIRECTORY_PEOPLE,
    DOCUMENTS,
    DOSSIERS,
    FINANCE_SYSTEM,
    MAIL_DOMAIN,
    NAMES,
    NGHEAN,
    OPINION_ANSWERS,
    OPINION_STAFF,
    PLACES,
    RECALLS,
    SGD,
    STAFF_LISTS,
    STC,
    SYT,
    UBND,
    UBND_SYSTEM,
    VN,
    VOUCHERS,
    VPCP,
    Dossier,
    Incoming,
    Step,
    Voucher,
)
from .sandboxes import MailSink, Sandboxes
from .seed import OWN_KEYS, SIGNERS, Pki, build_document, document_id, make_pki, staff_list
from .summary import ACC, ED, FN, DocumentLine, DossierLine, ReportLine, Summary, read_summary

# What this module defined before the demo split by noun, importable from here as before.
__all__ = [
    "ACC",
    "AGENCIES",
    "DEFAULT_FLOWS",
    "DESK_SGD",
    "DESK_SYT",
    "DIRECTORY_PEOPLE",
    "DOCUMENTS",
    "DOSSIERS",
    "Demo",
    "DemoError",
    "DemoUnavailable",
    "DocumentLine",
    "Dossier",
    "DossierLine",
    "ED",
    "FINANCE_SYSTEM",
    "FN",
    "Incoming",
    "MAIL_DOMAIN",
    "MARKER",
    "MailSink",
    "NAMES",
    "NGHEAN",
    "OPINION_ANSWERS",
    "OPINION_STAFF",
    "OWN_KEYS",
    "PLACES",
    "Pki",
    "RECALLS",
    "ReportLine",
    "SGD",
    "SIGNERS",
    "SOON",
    "STAFF_LISTS",
    "STC",
    "SYT",
    "Sandboxes",
    "Step",
    "Summary",
    "UBND",
    "UBND_SYSTEM",
    "VN",
    "VOUCHERS",
    "VPCP",
    "Voucher",
    "build_document",
    "document_id",
    "make_pki",
    "run_demo",
    "staff_list",
]

DEFAULT_FLOWS = Path("config/reference-flows.yaml")
#: A retry due within this is waited for by :meth:`Demo.drain`.
SOON = timedelta(seconds=5)
#: Marks a var folder a demo made, so only such a folder is ever wiped.
MARKER = ".lienthong-demo"


class Demo:
    """The reference flows on the embedded default against sandboxes; a context manager."""

    def __init__(
        self,
        config_path: Path,
        *,
        echo: Callable[[str], None] = click.echo,
        start_bus: bool = True,
    ) -> None:
        self.echo = echo
        self.host = PluginHost()
        self.config_path = config_path
        self.cfg = config_module.load(config_path, host=self.host)
        # The demo serves the console itself, with a sandbox login; not through its bus.
        self.console_port = self.cfg.bus.console_port
        self.cfg.bus.console_port = None
        # Without its own bus, the demo only runs the sandboxes and the other
        # agencies' side: 'lienthong run' workers elsewhere are the bus.
        self.start_bus = start_bus
        self.var_dir = self.cfg.bus.var_dir
        self.sandboxes = Sandboxes(self.cfg)
        self.bus: Bus | None = None
        self.pki: Pki | None = None
        self.cycles = 0
        # The agencies' side: our clerks and one-stop desks, the other agencies (once the
        # run's keys exist).
        self.clerks = Clerks(self.cfg, self.sandboxes)
        self.desks = OneStopDesks(self.sandboxes)
        self.agencies: OtherAgencies | None = None

    # --- lifecycle ---

    def __enter__(self) -> Demo:
        self._fresh_var()
        self.pki = make_pki(self.var_dir / "keys")
        self.agencies = OtherAgencies(self.sandboxes, self.pki)
        self.sandboxes.start(self.var_dir)
        try:
            self._seed_axis()
            if self.start_bus:
                self.bus = Bus(self.cfg, self.host, worker="demo")
                self.bus.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.bus is not None:
            self.bus.close()
            self.bus = None
        self.sandboxes.stop()

    def _fresh_var(self) -> None:
        var = self.var_dir
        if var.exists() and any(var.iterdir()) and not (var / MARKER).exists():
            raise DemoError(
                f"{var} exists and was not made by a demo, so the demo will not wipe it. "
                "Hint: point bus.var_dir at a folder of its own (var/demo)"
            )
        shutil.rmtree(var, ignore_errors=True)
        var.mkdir(parents=True)
        (var / MARKER).write_text("made by 'lienthong demo'; wiped by the next run\n")

    def _seed_axis(self) -> None:
        axis = self.sandboxes.axis
        for code, name, mail, parent in AGENCIES:
            pid = axis.agencies[parent]["id"] if parent else ""
            axis.register_agency(code, name, pid=pid, mail=mail)

    # --- one cycle ---

    def cycle(self) -> None:
        """Seed this cycle's events, sync, run the bus, let the others answer, run again.

        The Department of Finance answers the reports it got; our agencies'
        clerks, in their document systems, answer what arrived (03, 04 now, 05
        and 06 a cycle later; 15 to a recall request).
        """
        assert self.bus is not None
        self.seed()
        self._run_jobs()
        self.drain()
        answered = self.finance_answers()
        answered += self.clerks_answer()
        answered += self.opinions_answer()
        if answered:
            self.drain()

    def seed(self) -> None:
        """What happens at the other agencies during the next cycle."""
        self.cycles += 1
        self._seed(self.cycles)

    def _seed(self, n: int) -> None:
        assert self.pki is not None
        today = datetime.now(VN).strftime("%Y/%m/%d")
        for doc in DOCUMENTS.get(n, ()):
            body = build_document(doc, self.pki, today)
            self.sandboxes.axis.deliver(doc.sender, list(doc.recipients), body)
        for voucher in VOUCHERS.get(n, VOUCHERS[max(VOUCHERS)] if n > max(VOUCHERS) else ()):
            sandbox = self.sandboxes.accounting.get(self._accounting_of.get(voucher.agency, ""))
            if sandbox is None:
                continue
            debit, credit = ("1111", "5111") if voucher.kind == "receipt" else ("6612", "1111")
            sandbox.add_voucher(
                kind=voucher.kind,
                date=datetime.now(VN).date().isoformat(),
                agencyCode=voucher.agency,
                debitAccount=debit,
                creditAccount=credit,
                amount=voucher.amount,
                description=voucher.description,
            )
        for cycle, people in STAFF_LISTS:
            if cycle == n:
                self._drop_staff(cycle, people)
        if n in RECALLS:
            assert self.agencies is not None
            self.agencies.ask_recall(document_id(UBND, today, RECALLS[n]))
        self.desks.lodge(n)

    # --- the agencies' side (their modules: agencies, clerks, desks) ---

    def opinions_answer(self) -> int:
        """UBND tỉnh answers each letter asking its opinion; returns the letters answered."""
        assert self.agencies is not None
        return self.agencies.opinions_answer()

    def finance_answers(self) -> int:
        """The Department of Finance's system answers each report; returns the reports answered."""
        assert self.agencies is not None
        return self.agencies.finance_answers()

    def clerks_answer(self) -> int:
        """Our agencies' clerks answer in their document systems; returns the statuses dropped."""
        return self.clerks.answer()

    def _drop_staff(self, cycle: int, people: tuple[tuple[str, str, str, str, str], ...]) -> None:
        for ep in self.cfg.endpoints.values():
            if ep.adapter != "folder" or ep.settings.get("direction") != "sync":
                continue
            folder = self.cfg.base_dir / Path(ep.settings["path"])
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"nhan-su-{cycle:02d}.xml"
            path.write_bytes(staff_list(people))
            # As if dropped a while ago (the folder reads only settled files), newest last.
            settle = float(ep.settings.get("settle_seconds") or 0)
            stamp = time.time() - settle - 1 - (len(STAFF_LISTS) - cycle)
            os.utime(path, (stamp, stamp))

    @property
    def _accounting_of(self) -> dict[str, str]:
        """Each agency's accounting endpoint: the source of the route reporting for it."""
        found: dict[str, str] = {}
        for route in self.cfg.routes:
            for source in route.sources & set(self.sandboxes.accounting):
                for target in route.targets:
                    if target.params.get("organ_id"):
                        found[target.params["organ_id"]] = source
        return found

    def _run_jobs(self) -> None:
        """Each job once (syncs, then the scheduled polls), as its tick would run it.

        Through the scheduler, so a run takes the job's lease and is recorded
        (``lienthong jobs``, ``lienthong sync runs``) like a scheduled one.
        """
        assert self.bus is not None and self.bus.scheduler is not None
        ordered = sorted(self.cfg.jobs.items(), key=lambda item: item[1].sync is None)
        for name, _job in ordered:
            outcome = self.bus.scheduler.fire(name)
            if outcome != "ok":
                self.echo(f"job {name}: {outcome}. Hint: lienthong jobs")

    def drain(self, timeout: float = 30.0) -> None:
        """Run the bus until nothing is received and nothing is due within a few seconds.

        A retry due that soon is waited for: the flows expect some (a progress step
        polled before its dossier reaches the portal first and is retried), and a
        cycle should end with what it started done.
        """
        assert self.bus is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            step = self.bus.run_cycle()
            if not step.idle:
                continue
            due = self.bus.store.next_due()
            now = utcnow()
            if due is None or due > now + SOON:
                return
            time.sleep(min(max((due - now).total_seconds(), 0.0), 0.5))

    # --- what moved ---

    def summary(self, store: Store | None = None) -> Summary:
        """What moved, from ``store`` (default: the demo's bus's) and the mail sink."""
        if store is None:
            assert self.bus is not None
            store = self.bus.store
        return read_summary(self.cfg, self.sandboxes, store)

    def print_summary(self) -> None:
        for line in self.summary().lines():
            self.echo(line)


def _serve_console(instance: Demo) -> Any:
    """The web console over the demo's store, with a sandbox login made for this run only.

    The account lives in the demo's var folder (wiped by the next run), so the
    config's own console accounts are never touched. A taken port is reported
    and the demo goes on without the console.
    """
    from lienthong.console.auth import add_local_account
    from lienthong.console.server import ConsoleServer
    from lienthong.console.settings import DEFAULT_PORT

    users = instance.var_dir / "console-users"
    password = secrets.token_urlsafe(9)
    add_local_account(users, "demo", "admin", password)
    cfg = dataclasses.replace(
        instance.cfg, console=dataclasses.replace(instance.cfg.console, users_file=users)
    )
    port = instance.console_port if instance.console_port is not None else DEFAULT_PORT
    try:
        server = ConsoleServer(cfg, instance.host, listen=cfg.bus.console_host, port=port)
    except ConfigError as exc:
        click.echo(f"The console did not start: {exc}")
        return None
    server.start()
    click.echo(
        f"Console (SANDBOX data): {server.url} - log in as demo / {password} "
        "(admin; a new password each run)"
    )
    return server


def _config_path(ctx: click.Context) -> Path:
    given = getattr(ctx.obj, "config_path", None) if ctx.obj is not None else None
    return Path(given) if given else DEFAULT_FLOWS


def run_demo(ctx: click.Context, once: bool, cycles: int | None) -> None:
    """What ``lienthong demo`` does (the command itself is in :mod:`.plugin`)."""
    path = _config_path(ctx)
    count = 1 if once else (cycles or 3)
    try:
        instance = Demo(path)
    except ConfigError as exc:
        raise DemoError(str(exc)) from exc
    if not instance.cfg.bus.embedded:
        raise DemoError(
            f"{path}: the demo runs on the embedded default (broker: embedded). "
            "Hint: use config/reference-flows.yaml; production runs 'lienthong run'"
        )
    with instance:
        for n in range(1, count + 1):
            click.echo(f"-- cycle {n}")
            instance.cycle()
        click.echo("")
        instance.print_summary()
        if once or cycles:
            return
        bus = instance.bus
        assert bus is not None
        # bus.run() installs the same handlers; these cover the moment before it does.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: bus.stop())
        click.echo("")
        console = _serve_console(instance)
        click.echo(
            "The bus keeps running on the sandboxes (axis at "
            f"{instance.sandboxes.axis.url}); press Ctrl-C to stop."
        )
        # bus.run() stops on SIGINT/SIGTERM after its current batch, so nothing is cut short.
        try:
            bus.run()
        finally:
            if console is not None:
                console.stop()
        click.echo("")
        click.echo("stopped: the batch in hand was finished; the rest waits in var/demo/.")
        instance.print_summary()
