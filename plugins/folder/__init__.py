"""The folder plugin: drop folders in and out, and a folder's newest file as a sync snapshot.

The adapter is :class:`FolderAdapter` (``adapter.py``); this module registers it
and is the plugin the ``lienthong.builtins`` entry point names.
"""

from __future__ import annotations

from lienthong.hookspecs import hookimpl

from .adapter import FolderAdapter

__all__ = ["FolderAdapter"]


@hookimpl
def lienthong_register_adapters(register):  # type: ignore[no-untyped-def]
    register(FolderAdapter)
