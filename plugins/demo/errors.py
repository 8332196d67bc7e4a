"""Why the demo cannot run: as configured (exit 4), or not now on this machine."""

from __future__ import annotations

import click

from lienthong.exits import Exit


class DemoError(click.ClickException):
    """The demo cannot run as configured, or not now; the message says why and what to do.

    Exits with the table's code for a config problem (:mod:`lienthong.exits`).
    """

    exit_code = Exit.CONFIG


class DemoUnavailable(DemoError):
    """What the demo needs is missing or taken on this machine (a port, slapd): not now."""

    exit_code = Exit.UNAVAILABLE
