"""The contract suite's hostile checks: a system that refuses, hangs or rejects the
credentials, and secrets kept out of every error and log line."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from .adapter import Adapter, Capability
from .contract_base import ContractBase, broken, describe
from .contract_parts import SilentServer, closed_port
from .errors import ConfigError, FatalError, LienthongError, TransientError
from .message import Message


class HostileChecks(ContractBase):
    """Errors: rules transient-errors, fatal-credentials, secrets-stay-secret."""

    def _provoke(
        self, tmp_path: Path, raw: Mapping[str, Any], bodies: Sequence[bytes] = ()
    ) -> list[tuple[str, Adapter, BaseException]]:
        """Start the adapter and use it as the bus would; every error, with the step that raised it.

        It receives once if it can, and sends :meth:`sample` (or each of ``bodies``)
        if it can. Log lines written meanwhile are checked for secrets.
        """
        secrets = self._secrets(tmp_path, raw)
        adapter = self._build(tmp_path, raw)
        errors: list[tuple[str, Adapter, BaseException]] = []
        with _captured_logs() as lines:
            try:
                adapter.start()
            except Exception as exc:
                errors.append(("start()", adapter, exc))
            else:
                if Capability.RECEIVE in adapter.capabilities:
                    try:
                        adapter.receive(self.inbox())
                    except Exception as exc:
                        errors.append(("receive()", adapter, exc))
                if Capability.SEND in adapter.capabilities:
                    for index, body in enumerate(bodies or [self.send_sample(0)]):
                        try:
                            message = Message(body=body, kind=self.sample_kind)
                            adapter.send(message, key=f"contract-provoked-{index}")
                        except Exception as exc:
                            errors.append(("send()", adapter, exc))
            finally:
                adapter.stop()
        for step, _, error in errors:
            self._no_secrets(step, error, secrets)
        for line in lines:
            self._no_secrets("a log line", line, secrets)
        return errors

    def _needs_address(self) -> None:
        if not self._implements("settings_for_address"):
            pytest.skip("the contract has no settings_for_address() (the adapter uses no network)")

    def _address_errors(self, tmp_path: Path, port: int, what: str) -> None:
        raw = self.settings_for_address(tmp_path, "127.0.0.1", port)
        errors = self._provoke(tmp_path, raw)
        if not errors:
            broken(
                "transient-errors",
                f"nothing failed although {what} at 127.0.0.1:{port}. Hint: does "
                "settings_for_address() point the adapter there?",
            )
        for step, adapter, exc in errors:
            transient = isinstance(exc, TransientError) or (
                not isinstance(exc, LienthongError) and adapter.is_transient(exc)
            )
            if not transient:
                broken(
                    "transient-errors",
                    f"when {what}, {step} raised {describe(exc)}, which the bus does not "
                    "treat as passing. Hint: raise TransientError (or declare the library's "
                    "exception in transient_errors), so the bus retries with back-off and the "
                    "message waits instead of being dead-lettered",
                )

    def test_a_refused_connection_is_transient(self, tmp_path: Path) -> None:
        self._needs_address()
        self._address_errors(tmp_path, closed_port(), "nothing listens")

    def test_a_timeout_is_transient(self, tmp_path: Path) -> None:
        self._needs_address()
        with SilentServer() as server:
            self._address_errors(tmp_path, server.port, "the server accepts and never answers")

    def test_refused_credentials_are_fatal(self, tmp_path: Path) -> None:
        if not self._implements("wrong_credentials"):
            pytest.skip("the contract has no wrong_credentials() (the adapter logs in nowhere)")
        errors = self._provoke(tmp_path, self.wrong_credentials(tmp_path))
        if not errors:
            broken("fatal-credentials", "nothing failed with the settings of wrong_credentials()")
        for step, _, exc in errors:
            if not isinstance(exc, (FatalError, ConfigError)):
                broken(
                    "fatal-credentials",
                    f"with refused credentials {step} raised {describe(exc)}. Retrying cannot "
                    "help and a human must fix the secret. Hint: raise FatalError (ConfigError "
                    "from start()); as transient the bus would hammer the server, as rejected "
                    "it would dead-letter every message",
                )

    def test_keeps_secrets_out_of_errors(self, tmp_path: Path) -> None:
        if not any(o.secret for o in self.adapter_class.options):
            pytest.skip("the adapter has no secret options")
        checked = 0
        if self._implements("settings_for_address"):
            with SilentServer() as server:
                for port in (closed_port(), server.port):
                    raw = self.settings_for_address(tmp_path, "127.0.0.1", port)
                    checked += len(self._provoke(tmp_path, raw))
        if self._implements("wrong_credentials"):
            checked += len(self._provoke(tmp_path, self.wrong_credentials(tmp_path)))
        if self.bad_bodies():
            checked += len(
                self._provoke(tmp_path, self.send_settings(tmp_path), list(self.bad_bodies()))
            )
        if not checked:
            pytest.skip(
                "no error to look at: implement settings_for_address() or wrong_credentials()"
            )


@contextlib.contextmanager
def _captured_logs() -> Iterator[list[str]]:
    """The lines logged meanwhile at INFO and above, formatted with their tracebacks."""
    lines: list[str] = []
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(formatter.format(record))

    root = logging.getLogger()
    handler = Collect(logging.INFO)
    level = root.level
    root.addHandler(handler)
    if level > logging.INFO:
        root.setLevel(logging.INFO)
    try:
        yield lines
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
