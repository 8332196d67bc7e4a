"""'lienthong demo' without --once serves the console and prints a sandbox login that works."""

from __future__ import annotations

import http.cookiejar
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.flows.flowconfig import free_port, write_config

pytestmark = [pytest.mark.server, pytest.mark.slow]


def test_the_demo_serves_the_console_with_a_sandbox_login(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    port = free_port()
    data["bus"]["console_port"] = port
    config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "lienthong"), "--config", str(config), "demo"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    seen: list[str] = []
    login = None
    deadline = time.monotonic() + 120
    try:
        for line in process.stdout:
            seen.append(line)
            found = re.search(r"Console \(SANDBOX data\): (\S+) - log in as demo / (\S+) ", line)
            if found:
                login = found.groups()
            if "press Ctrl-C to stop" in line or time.monotonic() > deadline:
                break
        assert login is not None, "".join(seen)
        url, password = login
        assert url == f"http://127.0.0.1:{port}/"

        opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )
        page = opener.open(url + "login", timeout=10).read().decode()
        token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        form = urllib.parse.urlencode(
            {"username": "demo", "password": password, "csrf": token, "next": "/dead-letters"}
        ).encode()
        answer = opener.open(url + "login", data=form, timeout=10)
        dead_letters = answer.read().decode()
        assert answer.url == url + "dead-letters"
        assert "demo · quản trị viên" in dead_letters
        assert "signature" in dead_letters.lower()  # the demo's unsigned document, parked
    finally:
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
    assert process.returncode == 0, "".join(seen) + rest
