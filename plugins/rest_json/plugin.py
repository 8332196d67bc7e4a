"""Hooks of the JSON/REST plugin: its adapter and its date function for mappings."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lienthong.adapter import Adapter
from lienthong.hookspecs import hookimpl

from . import functions
from .adapter import RestJsonAdapter


@hookimpl
def lienthong_register_adapters(register: Callable[[type[Adapter]], None]) -> None:
    register(RestJsonAdapter)


@hookimpl
def lienthong_register_xpath_functions(register: Callable[..., Any]) -> None:
    for name, function in functions.FUNCTIONS.items():
        register(name, function)
