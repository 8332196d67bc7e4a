"""Fixtures for the JSON/REST adapter's tests: the two sandboxes on free ports, real cursor
stores, and adapters built from the same configs users write (``configs.py``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lienthong.adapter import Services, resolve_options
from lienthong.errors import ConfigError
from lienthong.plugins.rest_json.adapter import RestJsonAdapter
from lienthong.plugins.rest_json.onestop_sandbox import OneStopSandbox
from lienthong.plugins.rest_json.portal_sandbox import PortalSandbox
from lienthong.store import Cursors, Store, make_engine
from tests.rest_json import configs


@pytest.fixture(autouse=True)
def secrets_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sandboxes' secrets, where the configs look for them."""
    monkeypatch.setenv(configs.ONESTOP_SECRET_ENV, "sandbox-secret")
    monkeypatch.setenv(configs.PORTAL_PASSWORD_ENV, "sandbox-password")


@pytest.fixture
def onestop() -> Iterator[OneStopSandbox]:
    with OneStopSandbox() as sandbox:
        yield sandbox  # type: ignore[misc]


@pytest.fixture
def portal() -> Iterator[PortalSandbox]:
    with PortalSandbox(agencies=(configs.MADONVI,)) as sandbox:
        yield sandbox  # type: ignore[misc]


@pytest.fixture
def cursors(tmp_path: Path) -> Cursors:
    store = Store(make_engine(f"sqlite:///{tmp_path / 'cursors.db'}"))
    store.upgrade()
    return Cursors(store.engine)


@pytest.fixture
def make_adapter(tmp_path: Path, cursors: Cursors) -> Iterator[Callable[..., RestJsonAdapter]]:
    """``make_adapter(raw_config)``: checked like ``config check`` does, started, stopped after."""
    started: list[RestJsonAdapter] = []

    def make(raw: dict[str, Any], endpoint: str = "rest", start: bool = True) -> RestJsonAdapter:
        settings, problems = resolve_options(
            RestJsonAdapter,
            {k: v for k, v in raw.items() if k != "adapter"},
            f"endpoints.{endpoint}",
        )
        if problems:
            raise ConfigError(problems)
        adapter = RestJsonAdapter(
            endpoint,
            settings,
            Services(base_dir=tmp_path, var_dir=tmp_path / "var", cursors=cursors),
        )
        if start:
            adapter.start()
            started.append(adapter)
        return adapter

    yield make
    for adapter in started:
        adapter.stop()


@pytest.fixture(params=["embedded", "production"])
def bus_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    """A bus on the embedded default, or on PostgreSQL + RabbitMQ (keys from the queue)."""
    if request.param == "embedded":
        return {}
    store = request.getfixturevalue("pg_url")
    engine = make_engine(store)
    Store(engine).upgrade()  # what 'lienthong db upgrade' does before production workers start
    engine.dispose()
    return {"store": store, "broker": request.getfixturevalue("amqp_url")}
