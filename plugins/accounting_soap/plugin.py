"""Registers the accounting SOAP adapter with the bus."""

from __future__ import annotations

from collections.abc import Callable

from lienthong.adapter import Adapter
from lienthong.hookspecs import hookimpl

from .adapter import AccountingSoapAdapter


@hookimpl
def lienthong_register_adapters(register: Callable[[type[Adapter]], None]) -> None:
    register(AccountingSoapAdapter)
