"""Registers the axis adapter and the ``edxml`` commands with the plugin host."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from lienthong.hookspecs import hookimpl

from .adapter import AxisAdapter

if TYPE_CHECKING:
    import click

    from lienthong.adapter import Adapter


@hookimpl
def lienthong_register_adapters(register: Callable[[type[Adapter]], None]) -> None:
    register(AxisAdapter)


@hookimpl
def lienthong_register_commands(cli: click.Group) -> None:
    # The edXML commands are optional: an install without .cli still gets the adapter.
    try:
        module = importlib.import_module(f"{__package__}.cli")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__package__}.cli":
            raise
        return
    cli.add_command(module.edxml_group)
