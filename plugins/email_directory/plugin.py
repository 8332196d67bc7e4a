"""Hooks of the email directory plugin: its adapter and its lookup functions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lienthong.hookspecs import hookimpl

from . import lookup
from .adapter import DirectoryAdapter


@hookimpl
def lienthong_register_adapters(register: Callable[[type[DirectoryAdapter]], None]) -> None:
    register(DirectoryAdapter)


@hookimpl
def lienthong_register_xpath_functions(register: Callable[..., Any]) -> None:
    for name, function in lookup.FUNCTIONS.items():
        register(name, function)
