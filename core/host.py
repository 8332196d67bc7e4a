"""The plugin host: loads adapters and extensions through pluggy, and is their only caller.

Discovery is explicit and the core names no plugin: the built-in plugins are
listed in lienthong's own ``setup.cfg``, entry-point group ``lienthong.builtins``
(loaded first); installed packages join through the group ``lienthong.adapters``;
``LIENTHONG_DISABLE_PLUGINS`` (comma-separated names) blocks any of them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from types import ModuleType
from typing import Any

import click
import pluggy

from . import hookspecs
from .adapter import Adapter
from .errors import ConfigError, LienthongError
from .suggest import did_you_mean

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "lienthong.adapters"
BUILTIN_GROUP = "lienthong.builtins"
DISABLE_VARIABLE = "LIENTHONG_DISABLE_PLUGINS"
XPATH_NAMESPACE = "urn:lienthong:functions"


def builtin_plugins() -> list[metadata.EntryPoint]:
    """The plugins lienthong ships, as its own distribution declares them.

    Only lienthong's entries count, so another package cannot pass for built-in.
    """
    found = [
        ep
        for ep in metadata.entry_points(group=BUILTIN_GROUP)
        if ep.dist is None or ep.dist.name == "lienthong"
    ]
    if not found:
        raise ConfigError(
            [
                f"no built-in plugins are declared (entry-point group '{BUILTIN_GROUP}'): "
                "the installed metadata is older than this code. "
                "Hint: reinstall with scripts/setup (pip install -e .)"
            ]
        )
    return found


@dataclass(frozen=True)
class AdapterInfo:
    """An adapter class and where it came from, as ``lienthong adapters`` shows it."""

    cls: type[Adapter]
    plugin: str
    origin: str


class PluginHost:
    """Owns the pluggy manager and the registries the hooks fill."""

    def __init__(self, *, load_builtins: bool = True, load_entry_points: bool = True) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.origins: dict[str, str] = {}
        self.adapters: dict[str, AdapterInfo] = {}
        self.xpath_functions: dict[str, Callable[..., Any]] = {}
        self._blocked = {
            n.strip() for n in os.environ.get(DISABLE_VARIABLE, "").split(",") if n.strip()
        }
        for name in self._blocked:
            self.pm.set_blocked(name)
        if load_builtins:
            for ep in builtin_plugins():
                if ep.name not in self._blocked:
                    self.add(ep.load(), ep.name, origin="built-in")
        if load_entry_points:
            self._load_entry_points()
        self.pm.check_pending()
        self._collect()

    # --- discovery ---

    def _load_entry_points(self) -> None:
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in self._blocked or self.pm.has_plugin(ep.name):
                continue
            try:
                plugin = ep.load()
            except Exception as exc:
                dist = ep.dist.name if ep.dist else "?"
                raise ConfigError(
                    [
                        f"plugin '{ep.name}' from package '{dist}' failed to load: {exc}. "
                        f"Hint: fix or uninstall it, or set {DISABLE_VARIABLE}={ep.name}"
                    ]
                ) from exc
            dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist else ep.value
            self.add(plugin, ep.name, origin=f"entry point ({dist})")

    def add(self, plugin: ModuleType | object, name: str, *, origin: str = "registered") -> None:
        """Register a plugin object or module under ``name`` (blocked names are skipped)."""
        if name in self._blocked:
            return
        self.pm.register(plugin, name=name)
        self.origins[name] = origin

    def remove(self, name: str) -> None:
        """Unregister a plugin and forget what it registered."""
        self.pm.unregister(name=name)
        self.origins.pop(name, None)
        self._collect()

    def refresh(self) -> None:
        """Re-run the registration hooks after :meth:`add`, checking for misspelt hooks."""
        self.pm.check_pending()
        self._collect()

    # --- registries ---

    def _collect(self) -> None:
        self.observed = {
            name
            for name in dir(self.pm.hook)
            if name.startswith("lienthong_after_") and getattr(self.pm.hook, name).get_hookimpls()
        }
        self._prepare_message_impls = bool(self.pm.hook.lienthong_prepare_message.get_hookimpls())
        self.adapters = {}
        self.xpath_functions = {}
        for impl in self.pm.hook.lienthong_register_adapters.get_hookimpls():
            plugin_name = self.pm.get_name(impl.plugin) or "?"
            impl.function(register=lambda cls, _p=plugin_name: self._register_adapter(cls, _p))
        for impl in self.pm.hook.lienthong_register_xpath_functions.get_hookimpls():
            plugin_name = self.pm.get_name(impl.plugin) or "?"
            impl.function(
                register=lambda name, fn, _p=plugin_name: self._register_function(name, fn, _p)
            )

    def _register_adapter(self, cls: type[Adapter], plugin: str) -> None:
        if not (isinstance(cls, type) and issubclass(cls, Adapter)) or not cls.name:
            raise LienthongError(
                f"plugin '{plugin}' registered {cls!r}, "
                "which is not an Adapter subclass with a name"
            )
        existing = self.adapters.get(cls.name)
        if existing and existing.cls is not cls:
            raise ConfigError(
                [
                    f"adapter '{cls.name}' is registered twice: by plugin '{existing.plugin}' "
                    f"and by plugin '{plugin}'. Hint: set {DISABLE_VARIABLE}={plugin} to keep one"
                ]
            )
        self.adapters[cls.name] = AdapterInfo(cls, plugin, self.origins.get(plugin, "registered"))

    def _register_function(self, name: str, fn: Callable[..., Any], plugin: str) -> None:
        if name in self.xpath_functions and self.xpath_functions[name] is not fn:
            raise ConfigError(
                [f"XPath function 'lt:{name}' is registered twice (last by '{plugin}')"]
            )
        self.xpath_functions[name] = fn

    def adapter(self, name: str) -> type[Adapter]:
        """The adapter class called ``name``, or an error that suggests the right name."""
        info = self.adapters.get(name)
        if info is not None:
            return info.cls
        hint = did_you_mean(name, self.adapters, cutoff=0.5, within=True)
        known = ", ".join(sorted(self.adapters)) or "none"
        raise ConfigError([f"Unknown adapter '{name}'.{hint} Loaded adapters: {known}"])

    # --- the typed facade over the hooks ---

    def register_commands(self, cli: click.Group) -> None:
        self.pm.hook.lienthong_register_commands(cli=cli)

    def prepare_message(self, message: Any) -> None:
        """Let plugins adjust a message before routing; their errors are the message's."""
        if self._prepare_message_impls:
            self.pm.hook.lienthong_prepare_message(message=message)

    def describe_message(self, kind: str, headers: dict[str, str]) -> str:
        """A plugin's short label for a stored message, or ``""``."""
        return self.pm.hook.lienthong_describe_message(kind=kind, headers=headers) or ""

    def list_documents(self, queries: Any, limit: int) -> list[dict[str, Any]]:
        """The recently active documents a plugin lists, or none."""
        return self.pm.hook.lienthong_list_documents(queries=queries, limit=limit) or []

    def describe_document(self, queries: Any, document_id: str) -> Any | None:
        """A plugin's account of one document's life, or ``None`` when none knows it."""
        return self.pm.hook.lienthong_describe_document(queries=queries, document_id=document_id)

    def prepare_metrics(self, **kwargs: Any) -> None:
        self.pm.hook.lienthong_prepare_metrics(**kwargs)

    def after_accept(self, **kwargs: Any) -> None:
        self._notify("lienthong_after_accept", kwargs)

    def after_route(self, **kwargs: Any) -> None:
        self._notify("lienthong_after_route", kwargs)

    def after_deliver(self, **kwargs: Any) -> None:
        self._notify("lienthong_after_deliver", kwargs)

    def after_dead_letter(self, **kwargs: Any) -> None:
        self._notify("lienthong_after_dead_letter", kwargs)

    def after_start(self, **kwargs: Any) -> None:
        self._notify("lienthong_after_start", kwargs)

    def _notify(self, hook_name: str, kwargs: dict[str, Any]) -> None:
        if hook_name not in self.observed:
            return  # nobody listens: skip the call on the hot path
        # An observer's bug must never lose or block a message: log and go on.
        try:
            getattr(self.pm.hook, hook_name)(**kwargs)
        except Exception:
            log.exception("a plugin's %s hook failed; the message flow goes on", hook_name)
