"""The plugin host: discovery, blocking, registries and loud failures."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from lienthong.adapter import Adapter, Capability
from lienthong.errors import ConfigError
from lienthong.hookspecs import hookimpl
from lienthong.host import PluginHost


def test_builtin_adapters_load_with_their_origin() -> None:
    host = PluginHost()
    assert host.adapters["folder"].origin == "built-in"
    assert host.adapter("memory").name == "memory"


def test_an_unknown_adapter_name_suggests_the_right_one() -> None:
    with pytest.raises(ConfigError, match="Unknown adapter 'foldr'. Did you mean 'folder'"):
        PluginHost().adapter("foldr")


def test_a_blocked_plugin_does_not_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIENTHONG_DISABLE_PLUGINS", "memory, something-else")
    host = PluginHost()
    assert "memory" not in host.adapters and "folder" in host.adapters


def test_a_misspelt_hook_fails_loudly() -> None:
    class Misspelt:
        @hookimpl
        def lienthong_register_adapter(self, register):  # missing the final s
            pass

    host = PluginHost()
    host.add(Misspelt(), "misspelt")
    with pytest.raises(Exception, match="lienthong_register_adapter"):
        host.refresh()


def test_two_plugins_claiming_one_adapter_name_are_refused() -> None:
    class Folder2(Adapter):
        """Another folder."""

        name = "folder"
        capabilities = frozenset({Capability.SEND})

    class Clash:
        @hookimpl
        def lienthong_register_adapters(self, register):
            register(Folder2)

    host = PluginHost()
    host.add(Clash(), "clash")
    with pytest.raises(ConfigError, match="registered twice.*LIENTHONG_DISABLE_PLUGINS=clash"):
        host.refresh()


def test_xpath_functions_are_registered_through_the_hook() -> None:
    class Lookups:
        @hookimpl
        def lienthong_register_xpath_functions(self, register):
            register("upper", lambda context, value: str(value).upper())

    host = PluginHost()
    host.add(Lookups(), "lookups")
    host.refresh()
    assert host.xpath_functions["upper"](None, "so tài chính") == "SO TÀI CHÍNH"
    host.remove("lookups")
    assert "upper" not in host.xpath_functions


def test_installed_packages_join_through_the_entry_point_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A real installed distribution, as pip lays it out: module + dist-info.
    (tmp_path / "lienthong_smoke_adapter.py").write_text(
        textwrap.dedent('''
        from lienthong.adapter import Adapter, Capability
        from lienthong.hookspecs import hookimpl

        class Smoke(Adapter):
            """Smoke signals."""
            name = "smoke"
            version = "2.1"
            capabilities = frozenset({Capability.SEND})

        @hookimpl
        def lienthong_register_adapters(register):
            register(Smoke)
    ''')
    )
    info = tmp_path / "lienthong_smoke_adapter-2.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: lienthong-smoke-adapter\nVersion: 2.1\n"
    )
    (info / "entry_points.txt").write_text(
        "[lienthong.adapters]\nsmoke = lienthong_smoke_adapter\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    host = PluginHost()
    assert host.adapters["smoke"].origin == "entry point (lienthong-smoke-adapter 2.1)"
    monkeypatch.setenv("LIENTHONG_DISABLE_PLUGINS", "smoke")
    assert "smoke" not in PluginHost().adapters
    sys.modules.pop("lienthong_smoke_adapter", None)
