"""Hostile WSDLs: a service description that makes the bus read a local file or another server.

The SOAP adapter loads a WSDL and whatever it imports. A WSDL fetched from a
service (or a copy the vendor sent) could import ``file:///etc/...`` or a
schema on any server; the bus loads imports only from the WSDL's own origin:
the same scheme, host and port, or, for a WSDL file, its own folder.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from lienthong.adapter import Services, resolve_options
from lienthong.errors import ConfigError
from lienthong.plugins.accounting_soap.adapter import AccountingSoapAdapter
from tests.hostile.cases import CORPUS

TEMPLATE = (CORPUS / "wsdl/imports-a-schema.wsdl").read_text(encoding="utf-8")
OUTSIDE = """<?xml version="1.0"?>
<xsd:schema xmlns:xsd="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:hostile:outside"
            elementFormDefault="qualified">
  <xsd:element name="secret" type="xsd:string"/>
</xsd:schema>
"""


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Quiet."""


@pytest.fixture
def serve() -> Iterator[Callable[[Path], str]]:
    """``serve(folder)`` serves the folder's files over HTTP; returns its base URL."""
    servers: list[ThreadingHTTPServer] = []

    def start(folder: Path) -> str:
        handler = functools.partial(_Quiet, directory=str(folder))
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _start(tmp_path: Path, wsdl: str) -> AccountingSoapAdapter:
    settings, problems = resolve_options(AccountingSoapAdapter, {"wsdl": wsdl}, "endpoints.hostile")
    assert not problems
    adapter = AccountingSoapAdapter(
        "hostile", settings, Services(base_dir=tmp_path, var_dir=tmp_path / "var")
    )
    adapter.start()
    return adapter


def _wsdl(folder: Path, schema: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "service.wsdl"
    path.write_text(TEMPLATE.replace("{SCHEMA}", schema), encoding="utf-8")
    return path


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A valid schema outside every WSDL's folder, as a file an attacker wants read."""
    path = tmp_path / "etc" / "outside.xsd"
    path.parent.mkdir()
    path.write_text(OUTSIDE, encoding="utf-8")
    return path


def test_a_served_wsdl_cannot_import_a_local_file(tmp_path, serve, outside: Path) -> None:
    _wsdl(tmp_path / "site", outside.as_uri())
    base = serve(tmp_path / "site")
    with pytest.raises(ConfigError) as caught:
        _start(tmp_path, f"{base}/service.wsdl")
    text = str(caught.value)
    assert f"refers to '{outside.as_uri()}', which the bus does not load" in text
    assert f"it is not on {base}" in text


def test_a_served_wsdl_cannot_import_from_another_server(tmp_path, serve) -> None:
    (tmp_path / "other").mkdir()
    (tmp_path / "other/outside.xsd").write_text(OUTSIDE, encoding="utf-8")
    other = serve(tmp_path / "other")
    _wsdl(tmp_path / "site", f"{other}/outside.xsd")
    base = serve(tmp_path / "site")
    with pytest.raises(ConfigError, match=f"refers to '{other}/outside.xsd'.*not on {base}"):
        _start(tmp_path, f"{base}/service.wsdl")


def test_a_served_wsdl_imports_its_own_schemas(tmp_path, serve) -> None:
    (tmp_path / "site").mkdir()
    (tmp_path / "site/types.xsd").write_text(OUTSIDE, encoding="utf-8")
    _wsdl(tmp_path / "site", "types.xsd")
    base = serve(tmp_path / "site")
    adapter = _start(tmp_path, f"{base}/service.wsdl")
    assert adapter.client.get_element("{urn:hostile:outside}secret") is not None


@pytest.mark.parametrize("how", ["file-uri", "absolute-path", "parent-folder"])
def test_a_wsdl_file_cannot_import_outside_its_folder(tmp_path, outside: Path, how: str) -> None:
    schema = {
        "file-uri": outside.as_uri(),
        "absolute-path": str(outside),
        "parent-folder": "../etc/outside.xsd",
    }[how]
    wsdl = _wsdl(tmp_path / "wsdl", schema)
    with pytest.raises(ConfigError, match="which the bus does not load: ") as caught:
        _start(tmp_path, str(wsdl))
    if how != "file-uri":  # zeep turns that one into https:///..., refused as not a file
        assert f"it is outside the folder {tmp_path / 'wsdl'}" in str(caught.value)


def test_a_wsdl_file_imports_a_schema_beside_it(tmp_path: Path) -> None:
    wsdl = _wsdl(tmp_path / "wsdl", "types.xsd")
    (tmp_path / "wsdl/types.xsd").write_text(OUTSIDE, encoding="utf-8")
    adapter = _start(tmp_path, str(wsdl))
    assert adapter.client.get_element("{urn:hostile:outside}secret") is not None


def test_a_served_wsdl_naming_a_broken_url_is_refused_clearly(tmp_path, serve) -> None:
    _wsdl(tmp_path / "site", "http://127.0.0.1:99999/outside.xsd")
    base = serve(tmp_path / "site")
    with pytest.raises(ConfigError, match="which the bus does not load: it is not a valid URL"):
        _start(tmp_path, f"{base}/service.wsdl")
