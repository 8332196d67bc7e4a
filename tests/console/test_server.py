"""The console over real HTTP (waitress), from 'lienthong run' and 'lienthong console'; its texts."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from click.testing import CliRunner

from lienthong import config as config_module
from lienthong.bus import Bus
from lienthong.cli import cli
from lienthong.console import i18n
from lienthong.host import PluginHost
from tests.console.console_fixtures import ConsoleProject

CONSOLE = Path(i18n.__file__).parent


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_lienthong_run_serves_the_console_on_its_own_thread_and_stops_it(tmp_path, users_file):
    project = ConsoleProject(tmp_path, users_file, bus={"console_port": 0})
    bus = Bus(project.config(), PluginHost(), worker="run")
    try:
        bus.start()
        url = bus.console_server.url
        assert url.startswith("http://127.0.0.1:")
        status, page = get(url + "login")
        assert status == 200 and "Đăng nhập bảng điều khiển lienthong" in page
        port = int(url.rsplit(":", 1)[1].strip("/"))
    finally:
        bus.close()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0, "the console stopped with the bus"
    project.close()


def test_a_console_port_in_use_stops_the_bus_saying_so(tmp_path, users_file):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        project = ConsoleProject(tmp_path, users_file, bus={"console_port": port})
        bus = Bus(project.config(), PluginHost(), worker="run")
        try:
            result = None
            try:
                bus.start()
            except Exception as exc:  # the bus refuses to start, naming the port
                result = str(exc)
            assert result is not None and f"127.0.0.1:{port}" in result
            assert "choose another port" in result
        finally:
            bus.close()
            project.close()


def test_bus_console_port_is_checked_like_the_metrics_port(tmp_path):
    data = {"bus": {"console_port": "eighty", "console_host": ""}}
    try:
        config_module.from_dict(data, base_dir=tmp_path)
    except Exception as exc:
        text = str(exc)
    assert "bus.console_port: expected a TCP port 0-65535" in text and "Hint: 8470" in text
    assert "bus.console_host: expected an address to listen on" in text


def test_lienthong_console_adduser_writes_a_hashed_account(tmp_path, users_file):
    project = ConsoleProject(tmp_path, users_file)
    result = CliRunner().invoke(
        cli, ["--config", str(project.path), "console", "adduser", "tam", "--role", "viewer"],
        input="mat-khau-cua-tam\nmat-khau-cua-tam\n",
    )
    assert result.exit_code == 0, result.output
    assert re.search(r"^tam:viewer:\$argon2id\$", (tmp_path / "users").read_text(), re.M)
    bad = CliRunner().invoke(
        cli, ["--config", str(project.path), "console", "adduser", "x:y", "--role", "viewer",
              "--password", "long enough pass"])
    assert bad.exit_code == 2 and "is not allowed" in bad.output
    project.close()


def test_lienthong_console_serves_until_interrupted(tmp_path, users_file):
    project = ConsoleProject(tmp_path, users_file)
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "lienthong"), "--config", str(project.path), "console",
         "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 30
        status = None
        while time.monotonic() < deadline and status is None:
            try:
                status, _page = get(f"http://127.0.0.1:{port}/login")
            except OSError:
                time.sleep(0.2)
        assert status == 200
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl-C
        output = process.communicate(timeout=30)[0]
        project.close()
    assert f"console at http://127.0.0.1:{port}/" in output
    assert process.returncode == 0, output


def test_every_text_has_its_vietnamese_and_keeps_its_placeholders():
    with (CONSOLE / "translations/vi/LC_MESSAGES/messages.po").open("rb") as handle:
        catalogue = read_po(handle, locale="vi")
    method_map = [("**.py", "python"), ("**/templates/**.html", "jinja2")]
    found = {message[2] for message in extract_from_dir(str(CONSOLE), method_map)}
    ids = {m if isinstance(m, str) else m[0] for m in found}
    missing = []
    for msgid in sorted(ids):
        entry = catalogue.get(msgid)
        if entry is None or not entry.string or entry.fuzzy:
            missing.append(msgid)
            continue
        translated = entry.string if isinstance(entry.string, str) else entry.string[0]
        assert set(re.findall(r"%\(\w+\)[sd]", msgid)) <= set(
            re.findall(r"%\(\w+\)[sd]", translated) + ["%(num)s"]
        ), msgid
    assert not missing, f"texts without Vietnamese (run pybabel extract/update): {missing}"
