"""The exit codes of every ``lienthong`` command, and the one way an error is printed.

==== ============ ==============================================================
code name         meaning (what the admin or the cron job does next)
==== ============ ==============================================================
0    OK           done
1    PROBLEMS     the command ran and found problems: failed mapping cases or
                  sync items, replays that failed again, a broken audit chain,
                  an edXML file that does not check
2    USAGE        wrong usage (click's own code); also REFUSED: the sync
                  disable guard or a plan that changed since its dry run (a
                  human decides: ``--force`` or a new dry run)
3    UNAVAILABLE  cannot run now: the store or the broker is unreachable, a
                  sync job's lease is held by another run (try again later)
4    CONFIG       the configuration is wrong, or names no such job, endpoint,
                  mapping or run (fix it; ``lienthong config check``)
5    INTERRUPTED  a sync run was interrupted by a transient error (re-run; the
                  next run picks up where it stopped, nothing is lost)
==== ============ ==============================================================

Every error line starts with :data:`PREFIX`, ``error: ``, click's own included.
docs/cli.md shows the same table.
"""

from __future__ import annotations

import io
import sys
from enum import IntEnum
from typing import NoReturn

import click

from .errors import ConfigError, LienthongError, TransientError

PREFIX = "error: "


class Exit(IntEnum):
    """An exit code of the table above."""

    OK = 0
    PROBLEMS = 1
    USAGE = 2
    REFUSED = 2
    UNAVAILABLE = 3
    CONFIG = 4
    INTERRUPTED = 5


def code_of(exc: LienthongError) -> Exit:
    """The exit code for an error no command handled itself."""
    if isinstance(exc, ConfigError):
        return Exit.CONFIG
    if isinstance(exc, TransientError):
        return Exit.UNAVAILABLE
    return Exit.PROBLEMS


def fail(message: str, code: Exit) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code``."""
    click.echo(f"{PREFIX}{message}", err=True)
    sys.exit(code)


def prefixed(exc: click.ClickException) -> click.ClickException:
    """``exc``, shown with this table's prefix instead of click's ``Error: ``."""
    original = type(exc).show

    def show(file: object = None) -> None:
        shown = io.StringIO()
        original(exc, file=shown)
        text = shown.getvalue()
        if text.startswith("Error: "):
            text = PREFIX + text[len("Error: ") :]
        click.echo(text.replace("\nError: ", f"\n{PREFIX}", 1), err=True, nl=False)

    exc.show = show  # type: ignore[method-assign]
    return exc
