"""A copy of config/reference-flows.yaml for tests: free ports, its own folders, other URLs."""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "config/reference-flows.yaml"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _endpoint_names(value: Any, rename: dict[str, str]) -> Any:
    if isinstance(value, list):
        return [_endpoint_names(v, rename) for v in value]
    return rename.get(value, value) if isinstance(value, str) else value


def write_config(
    root: Path,
    *,
    store: str = "sqlite:///var/lienthong.db",
    broker: str = "embedded",
    suffix: str = "",
    interval: float | None = None,
) -> Path:
    """The shipped flows with fresh loopback ports and everything under ``root``.

    ``suffix`` renames every endpoint (queues on a shared RabbitMQ are named
    after endpoints); ``interval`` turns the nightly jobs into jobs every
    ``interval`` seconds, for a scheduler to run while a test watches.
    """
    data = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))
    ports: dict[str, str] = {}

    def port_of(match: re.Match[str]) -> str:
        ports.setdefault(match.group(1), str(free_port()))
        return f"127.0.0.1:{ports[match.group(1)]}"

    data["bus"].update(store=store, broker=broker, var_dir="var", mappings=str(REPO / "mappings"))
    data["bus"]["poll_interval"] = 0.2
    data["bus"]["retry"] = {"max_attempts": 5, "initial_delay": 0.2, "max_delay": 1}
    rename = {name: f"{name}-{suffix}" if suffix else name for name in data["endpoints"]}
    endpoints = {}
    for name, settings in data["endpoints"].items():
        for key in ("url", "wsdl", "base_url", "login_path"):
            if key in settings:
                settings[key] = re.sub(r"127\.0\.0\.1:(\d+)", port_of, settings[key])
        for key, value in settings.items():  # secret files: under the shipped config's folder
            if isinstance(value, dict) and set(value) == {"file"}:
                settings[key] = {"file": str(SHIPPED.parent / value["file"])}
        if "smtp_port" in settings:
            old = str(settings["smtp_port"])
            settings["smtp_port"] = int(ports.setdefault(old, str(free_port())))
        if "path" in settings:
            settings["path"] = settings["path"].replace("../var/demo/", "var/")
        for option in ("signing_key", "signing_cert"):
            if option in settings:
                settings[option] = settings[option].replace("../var/demo/", "var/")
        for option in ("trust_anchors", "crl_files"):
            if option in settings:
                settings[option] = [c.replace("../var/demo/", "var/") for c in settings[option]]
        endpoints[rename[name]] = settings
    data["endpoints"] = endpoints
    for route in data["routes"]:
        route["from"] = _endpoint_names(route["from"], rename)
        route["to"] = [
            {**t, "endpoint": rename[t["endpoint"]]} if isinstance(t, dict) else rename[t]
            for t in route["to"]
        ]
    for job in data["jobs"].values():
        if "poll" in job:
            job["poll"] = rename[job["poll"]]
        else:
            job["sync"]["source"] = rename[job["sync"]["source"]]
            job["sync"]["target"] = rename[job["sync"]["target"]]
        if interval is not None:
            del job["cron"]
            job["interval"] = interval
    path = root / "flows.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path
