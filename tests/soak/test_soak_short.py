"""The soak's short form: 3,000 messages through RabbitMQ + PostgreSQL, two workers, SOAP sandbox.

The long form (100,000 messages) is ``python benchmarks/soak.py``; see
docs/operations.md, "Reliability tests".
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SOAK = Path(__file__).resolve().parents[2] / "benchmarks/soak.py"
MESSAGES = 3000


def load_soak():  # noqa: ANN201 (a module loaded from a path)
    spec = importlib.util.spec_from_file_location("lienthong_soak", SOAK)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.server
def test_three_thousand_messages_each_at_both_targets_once(
    pg_url: str, amqp_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    del pg_url  # the soak makes its own schema; the fixture only says PostgreSQL is up
    soak = load_soak()
    status = soak.main(["--messages", str(MESSAGES), "--amqp", amqp_url, "--timeout", "240"])
    printed = capsys.readouterr().out
    assert status == 0, printed
    assert "checks: all passed" in printed
    assert "RESULT soak.production" in printed
