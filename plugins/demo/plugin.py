"""The demo's hooks: the ``lienthong demo`` command, light until it runs."""

from __future__ import annotations

import click

from lienthong.hookspecs import hookimpl


@click.command("demo")
@click.option("--once", is_flag=True, help="run one cycle, print what moved and exit")
@click.option(
    "--cycles",
    type=click.IntRange(min=1),
    default=None,
    help="run this many cycles and exit (default: 3, then keep the bus running until Ctrl-C)",
)
@click.pass_context
def demo(ctx: click.Context, once: bool, cycles: int | None) -> None:
    """Run the reference flows against sandboxes and print what moved.

    Uses config/reference-flows.yaml unless --config names another. Starts a
    SANDBOX axis, accounting services, directory (slapd), mail sink, one-stop-shop
    system and national portal on the loopback ports the config gives, seeds
    them, and runs the flows. Everything
    it makes is under var/demo/ (mails as .eml in var/demo/mailbox/).
    """
    # Imported here: the sandboxes and the bus are not loaded for every other command.
    from .flows import run_demo

    run_demo(ctx, once, cycles)


@hookimpl
def lienthong_register_commands(cli: click.Group) -> None:
    cli.add_command(demo)
