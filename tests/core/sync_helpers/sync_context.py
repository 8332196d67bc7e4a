"""The smallest :class:`lienthong.sync_commands.SyncContext`, for invoking the commands in tests."""

from __future__ import annotations

from collections.abc import Mapping

import click
from sqlalchemy.engine import Engine

from lienthong.adapter import Adapter
from lienthong.errors import ConfigError
from lienthong.scheduler import JobSpec
from lienthong.sync_commands import register


class Context:
    """An engine (for reading too), the jobs, and started adapters by endpoint name."""

    def __init__(self, engine: Engine, jobs: Mapping[str, JobSpec],
                 adapters: dict[str, Adapter]) -> None:
        self.engine = engine
        self.read_engine = engine
        self._jobs = jobs
        self.adapters = adapters

    @property
    def jobs(self) -> Mapping[str, JobSpec]:
        return self._jobs

    def adapter(self, endpoint: str) -> Adapter:
        if endpoint not in self.adapters:
            raise ConfigError([f"endpoints.{endpoint}: not configured"])
        return self.adapters[endpoint]


def cli() -> click.Group:
    """A bare ``lienthong``-like group with the sync commands registered."""

    @click.group()
    def main() -> None:
        pass

    register(main)
    return main
