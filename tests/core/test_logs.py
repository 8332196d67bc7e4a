"""Logs: one line per event, JSON on request, the message's ids on every line, no secret ever."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

import pytest
import yaml

from lienthong import logs
from lienthong.adapter import Adapter, Capability, Option, Secret
from lienthong.errors import TransientError
from lienthong.hookspecs import hookimpl
from lienthong.message import Message
from lienthong.plugins import memory

LIENTHONG = str(Path(sys.executable).parent / "lienthong")
SECRET = "hunter2-Mật-khẩu-9f3c"

leak = logging.getLogger("tests.leaky")


@pytest.fixture(autouse=True)
def _fresh_memory() -> None:
    memory.reset()


@pytest.fixture
def captured() -> Iterator[Callable[..., io.StringIO]]:
    """``captured(json=...)`` sends every log line to a buffer; logging is restored afterwards."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    buffers: list[io.StringIO] = []

    def start(*, json: bool, level: str = "INFO") -> io.StringIO:
        buffer = io.StringIO()
        logs.configure(level, json=json, stream=buffer, force=True)
        buffers.append(buffer)
        return buffer

    yield start
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


class Leaky(Adapter):
    """Sends with a password, and logs its settings everywhere it can (as careless code does)."""

    name = "leaky"
    summary = "test adapter that logs its secret settings"
    options = (
        Option("password", "the password", secret=True),
        Option("user", "the user", default="admin"),
    )
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.SEND})
    failures = 0

    def start(self) -> None:
        leak.info("starting with %s", self.settings)
        leak.debug("password %r, as text %s", self.settings["password"], self.settings["password"])

    def send(self, message: Message, *, key: str) -> None:
        leak.warning("sending", extra={"password": self.settings["password"], "key": key})
        if Leaky.failures:
            Leaky.failures -= 1
            raise TransientError(f"login refused for {self.settings['password']}")


class LeakyPlugin:
    @hookimpl
    def lienthong_register_adapters(self, register):  # type: ignore[no-untyped-def]
        register(Leaky)


def memory_bus(lienthong_bus, **bus):  # type: ignore[no-untyped-def]
    return lienthong_bus(
        bus=bus,
        endpoints={"in": {"adapter": "memory"}, "out": {"adapter": "memory"}},
        routes=[{"name": "copy", "from": "in", "to": ["out"]}],
    )


def drain(bus, expected: int) -> int:  # type: ignore[no-untyped-def]
    """Run the bus until ``expected`` deliveries are done (retries come due after a moment)."""
    delivered = 0
    for _ in range(50):
        delivered += bus.run(once=True).delivered
        if delivered >= expected:
            break
        time.sleep(0.02)
    return delivered


def test_json_lines_carry_the_message_and_correlation_ids(lienthong_bus, captured) -> None:
    buffer = captured(json=True)
    bus = memory_bus(lienthong_bus)
    messages = [Message(body=b"<a/>", correlation_id="HS-0001"), Message(body=b"<b/>")]
    memory.feed("in", messages)
    assert bus.run(once=True).delivered == 2
    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    assert lines, "nothing was logged"
    for line in lines:
        assert {"time", "level", "logger", "message"} <= set(line)
        assert line["time"].endswith("Z")
    for m in messages:
        mine = [line for line in lines if line.get("message_id") == m.id]
        accepted = [line for line in mine if "accepted from" in line["message"]]
        delivered = [line for line in mine if "delivered to" in line["message"]]
        assert len(accepted) == 1 and len(delivered) == 1, mine
        assert accepted[0]["correlation_id"] == delivered[0]["correlation_id"] == m.correlation_id
        assert accepted[0]["endpoint"] == "in" and accepted[0]["route"] == "copy"
        assert delivered[0]["endpoint"] == "out" and delivered[0]["route"] == "copy"
        assert delivered[0]["level"] == "INFO" and delivered[0]["logger"] == "lienthong.bus"


def test_parked_and_retried_lines_name_the_message(lienthong_bus, lienthong_host, captured) -> None:
    lienthong_host.add(LeakyPlugin(), "leaky")
    lienthong_host.refresh()
    buffer = captured(json=True)
    Leaky.failures = 1
    bus = lienthong_bus(
        bus={"retry": {"initial_delay": 0.01, "max_delay": 0.01}},
        endpoints={"in": {"adapter": "memory"}, "out": {"adapter": "leaky", "password": "x"}},
        routes=[{"name": "r", "from": "in", "to": ["out"]}],
    )
    good, bad = Message(body=b"<a/>"), Message(body=b"<a><b></a>")
    memory.feed("in", [good, bad])
    bus.run(once=True)
    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    (parked,) = [line for line in lines if "dead-lettered" in line["message"]]
    assert parked["message_id"] == bad.id and parked["level"] == "WARNING"
    assert "not well-formed" in parked["message"]
    (retried,) = [line for line in lines if "will be retried" in line["message"]]
    assert retried["message_id"] == good.id and retried["endpoint"] == "out"
    assert retried["route"] == "r" and retried["delivery"]


def test_plain_text_appends_the_fields_as_key_value(lienthong_bus, captured) -> None:
    buffer = captured(json=False)
    bus = memory_bus(lienthong_bus)
    m = Message(body=b"<a/>", correlation_id="hồ sơ 12")
    memory.feed("in", [m])
    bus.run(once=True)
    (line,) = [x for x in buffer.getvalue().splitlines() if "delivered to" in x]
    assert " INFO lienthong.bus: message " in line
    assert f"message_id={m.id} " in line
    assert 'correlation_id="hồ sơ 12" endpoint=out route=copy' in line


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "text"])
def test_a_secret_in_the_config_never_reaches_a_log_line(
    lienthong_bus, lienthong_host, captured, as_json: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEAKY_PASSWORD", SECRET)
    lienthong_host.add(LeakyPlugin(), "leaky")
    lienthong_host.refresh()
    buffer = captured(json=as_json, level="DEBUG")
    Leaky.failures = 1
    bus = lienthong_bus(
        bus={"retry": {"initial_delay": 0.01, "max_delay": 0.01}},
        endpoints={
            "in": {"adapter": "memory"},
            "out": {"adapter": "leaky", "password": {"env": "LEAKY_PASSWORD"}},
        },
        routes=[{"name": "r", "from": "in", "to": ["out"]}],
    )
    assert bus.adapters["out"].settings["password"].reveal() == SECRET
    memory.feed("in", [Message(body=b"<a/>"), Message(body=b"<b/>")])
    assert drain(bus, 2) == 2
    text = buffer.getvalue()
    assert "Secret(from env LEAKY_PASSWORD)" in text, "the lines that tried were logged"
    assert "login refused for Secret(from env LEAKY_PASSWORD)" in text
    assert text.count("sending") >= 3
    assert SECRET not in text
    assert SECRET.encode("unicode_escape").decode() not in text


def test_formatters_render_secrets_and_odd_values_safely() -> None:
    secret = Secret(SECRET, origin="file /etc/lienthong/pw")
    record = logging.LogRecord(
        "x", logging.ERROR, __file__, 1, "with %s and %r", (secret,) * 2, None
    )
    record.password = secret
    record.path = Path("/tmp/a b")
    record.route = None
    try:
        raise ValueError(f"boom {secret}")
    except ValueError:
        record.exc_info = sys.exc_info()
    line = logs.JsonFormatter().format(record)
    assert "\n" not in line, "one line per event, even with a traceback"
    data = json.loads(line)
    assert data["message"] == "with Secret(from file /etc/lienthong/pw) and " + repr(secret)
    assert data["password"] == repr(secret)
    assert data["path"] == "/tmp/a b"
    assert "route" not in data
    assert "ValueError: boom Secret(" in data["exception"]
    text = logs.TextFormatter().format(record)
    assert SECRET not in line + text
    assert 'password="Secret(from file /etc/lienthong/pw)" path="/tmp/a b"' in text


def test_configure_leaves_someone_elses_logging_alone_and_replaces_its_own() -> None:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    foreign = logging.NullHandler()
    root.addHandler(foreign)
    try:
        assert logs.configure("DEBUG", json=True) is None
        assert root.level == level
        first = logs.configure("WARNING", json=True, stream=io.StringIO(), force=True)
        second = logs.configure("INFO", json=False, stream=io.StringIO(), force=True)
        assert first not in root.handlers and second in root.handlers
        assert root.level == logging.INFO
        assert logging.getLogger("alembic").level == logging.WARNING
    finally:
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)


def _folder_project(root: Path) -> Path:
    (root / "in").mkdir()
    (root / "in/a.xml").write_bytes(b"<a/>")
    (root / "in/b.xml").write_bytes(b"<a><broken></a>")
    config = {
        "bus": {"store": "sqlite:///var/bus.db", "var_dir": "var"},
        "endpoints": {
            "in": {"adapter": "folder", "path": "in"},
            "out": {"adapter": "folder", "path": "out", "direction": "out"},
        },
        "routes": [{"name": "copy", "from": "in", "to": ["out"]}],
    }
    path = root / "lienthong.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize("switch", ["--log-json", "LIENTHONG_LOG_JSON=1"])
def test_the_command_logs_json_with_the_flag_or_the_variable(tmp_path: Path, switch: str) -> None:
    config = _folder_project(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "LIENTHONG_LOG_JSON"}
    args = [LIENTHONG]
    if switch.startswith("--"):
        args.append(switch)
    else:
        env.update([switch.split("=")])
    done = subprocess.run(
        [*args, "--config", str(config), "run", "--once"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    for event in ("accepted from in", "delivered to out", "dead-lettered at accept"):
        found = [line for line in lines if event in line["message"]]
        assert len(found) == 1, (event, lines)
        assert found[0]["message_id"] and found[0]["correlation_id"], found
    assert "received 2, delivered 1" in done.stdout


FORGED = "2026-01-01T00:00:00.000Z ERROR lienthong.bus: endpoint axis: all documents deleted"
_LINE_START = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING|ERROR|CRITICAL) "


def _assert_one_event_per_line(text: str) -> None:
    """Every line is a record of the bus's own or an indented continuation."""
    for line in text.split("\n"):
        assert not line or re.match(_LINE_START, line) or line.startswith("  "), repr(line)
    assert "\n" + FORGED not in text


def test_a_file_name_with_a_newline_cannot_forge_a_text_log_line(
    folder_bus, captured, tmp_path: Path
) -> None:
    buffer = captured(json=False)
    bus = folder_bus(max_message_bytes=64)
    name = f"hồ sơ\n{FORGED}\r\x1b[2K\u2028.xml"
    (tmp_path / "in" / name).write_bytes(b"<a>" + b"x" * 100 + b"</a>")
    assert bus.run(once=True).dead == 1
    text = buffer.getvalue()
    (line,) = [x for x in text.split("\n") if "dead-lettered" in x]
    assert "hồ sơ\\n2026-01-01T00:00:00.000Z ERROR" in line, "shown, escaped"
    assert "\\r\\x1b[2K\\u2028.xml" in line
    _assert_one_event_per_line(text)


def test_text_lines_escape_controls_in_messages_fields_and_tracebacks() -> None:
    record = logging.LogRecord(
        "x", logging.ERROR, __file__, 1, "file %s", ("a\n" + FORGED + "\x85\u202e",), None
    )
    record.endpoint = "in\n" + FORGED
    record.filename_shown = "tab\there\x7f"
    try:
        raise OSError("cannot move 'a.xml\n" + FORGED + "'")
    except OSError:
        record.exc_info = sys.exc_info()
    text = logs.TextFormatter().format(record)
    first, *rest = text.split("\n")
    assert first.count("2026-01-01T00:00:00.000Z ERROR") == 2
    assert "file a\\n2026-01-01" in first and "\\x85\\u202e" in first
    assert 'endpoint="in\\n2026-01-01' in first
    assert 'filename_shown="tab\\there\\x7f"' in first
    assert rest and all(line.startswith("  ") for line in rest), rest
    assert any(line.strip() == "Traceback (most recent call last):" for line in rest)
    _assert_one_event_per_line(text)
