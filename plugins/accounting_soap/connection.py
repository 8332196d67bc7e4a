"""One endpoint's connection settings made into a zeep client, bound to its service's port.

The WSDL is found (a URL, or a file relative to the config's folder), TLS is set
up from ``verify_tls``, ``ca_file`` and ``client_cert``/``client_key``, WS-Security
from ``username``/``password``; the client runs over the hardened transport.
Each failure says which option fixes it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import requests
import zeep
import zeep.cache
import zeep.exceptions
from lxml import etree
from zeep.wsse.username import UsernameToken

from lienthong import xml
from lienthong.adapter import Secret, Services
from lienthong.errors import ConfigError, TransientError

from . import wsdl as wsdl_doc
from .transport import AnswerTooLarge, HardenedTransport, Session

# The adapter's logger, as before this module was split from it: log filters keep matching.
log = logging.getLogger(f"{__package__}.adapter")


class Connection:
    """How one endpoint reaches its service: the zeep client, its transport and TLS."""

    def __init__(self, endpoint: str, settings: Mapping[str, Any], services: Services) -> None:
        self.endpoint = endpoint
        self.settings = settings
        self.services = services
        self.transport: HardenedTransport | None = None

    def open(self) -> zeep.Client:
        """Load the WSDL (cached) into a client; a problem the bus cannot retry is a ConfigError."""
        s = self.settings
        wsdl = str(s["wsdl"])
        if "://" not in wsdl:
            path = Path(wsdl) if Path(wsdl).is_absolute() else self.services.base_dir / wsdl
            if not path.is_file():
                raise ConfigError(
                    [
                        f"endpoint '{self.endpoint}': wsdl file '{path}' does not exist. "
                        "Hint: give a URL ending in ?wsdl or a path relative to the config file"
                    ]
                )
            wsdl = str(path)
        session = Session()
        session.verify = self._verify()
        cert, key = self._file("client_cert"), self._file("client_key")
        if key and not cert:
            raise ConfigError(
                [
                    f"endpoint '{self.endpoint}': client_key '{key}' is set without "
                    "client_cert. Hint: set client_cert to the PEM certificate of that key"
                ]
            )
        if cert:
            session.cert = (cert, key) if key else cert
        self.services.var_dir.mkdir(parents=True, exist_ok=True)
        cache = zeep.cache.SqliteCache(path=str(self.services.var_dir / "zeep-cache.sqlite"))
        if s["max_answer_bytes"] <= 0:
            raise ConfigError(
                [
                    f"endpoint '{self.endpoint}': max_answer_bytes must be positive, got "
                    f"{s['max_answer_bytes']}. Hint: leave it out for "
                    f"{xml.DEFAULT_MAX_BYTES:,} bytes"
                ]
            )
        self.transport = HardenedTransport(
            wsdl,
            f"endpoint '{self.endpoint}'",
            s["max_answer_bytes"],
            session=session,
            cache=cache,
            timeout=s["timeout"],
            operation_timeout=s["timeout"],
        )
        # Imports are allowed, from the WSDL's own origin only: the transport checks each.
        settings = zeep.Settings(
            strict=True,
            forbid_dtd=True,
            forbid_entities=True,
            forbid_external=False,
            xml_huge_tree=False,
            raw_response=True,
        )
        wsse = None
        if s["username"]:
            password = s["password"].reveal() if isinstance(s["password"], Secret) else ""
            wsse = UsernameToken(s["username"], password, use_digest=s["password_digest"])
        try:
            return zeep.Client(wsdl, transport=self.transport, settings=settings, wsse=wsse)
        except requests.exceptions.SSLError as exc:
            raise ConfigError([self.tls_problem(f"wsdl '{wsdl}'", exc)]) from exc
        except AnswerTooLarge as exc:
            raise ConfigError(
                [
                    f"endpoint '{self.endpoint}': wsdl '{wsdl}': {exc}. Hint: check that it "
                    "is the service's WSDL, or raise max_answer_bytes"
                ]
            ) from exc
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise TransientError(
                f"endpoint '{self.endpoint}': wsdl '{wsdl}' did not answer: {exc}. "
                "Hint: check the service is up and the URL, or use an offline WSDL file "
                "with address"
            ) from exc
        except (
            xml.XmlRejected,
            zeep.exceptions.Error,
            etree.XMLSyntaxError,
            requests.RequestException,
        ) as exc:
            raise ConfigError(
                [
                    f"endpoint '{self.endpoint}': wsdl '{wsdl}' cannot be used: {exc}. "
                    "Hint: check that the URL or file is the service's WSDL"
                ]
            ) from exc

    def close(self) -> None:
        """Close the HTTP session (its pooled connections)."""
        if self.transport is not None:
            self.transport.session.close()

    def _file(self, option: str) -> str:
        """The option's file, relative to the config's folder; '' when unset."""
        value = str(self.settings[option] or "")
        if not value:
            return ""
        path = Path(value) if Path(value).is_absolute() else self.services.base_dir / value
        if not path.is_file():
            raise ConfigError(
                [
                    f"endpoint '{self.endpoint}': {option} file '{path}' does not exist. "
                    "Hint: give a PEM file, absolute or relative to the config file"
                ]
            )
        return str(path)

    def _verify(self) -> bool | str:
        """What the server's certificate is checked with: the CA file, the system's, nothing."""
        ca_file = self._file("ca_file")
        if self.settings["verify_tls"]:
            return ca_file or True
        if ca_file:
            raise ConfigError(
                [
                    f"endpoint '{self.endpoint}': ca_file '{ca_file}' is set but verify_tls "
                    "is false, so it would be ignored. Hint: drop verify_tls: false"
                ]
            )
        log.warning(
            "endpoint '%s': TLS verification is off (verify_tls: false): the service's "
            "certificate is not checked, so anyone on the path can read and change the "
            "traffic. Hint: set ca_file to the service's CA instead",
            self.endpoint,
        )
        return False

    def tls_problem(self, what: str, exc: requests.exceptions.SSLError) -> str:
        """Say why the TLS handshake failed and which option fixes it."""
        text = str(exc)
        where = f"endpoint '{self.endpoint}': {what}"
        if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
            return (
                f"{where}: the service's TLS certificate cannot be verified: {text}. "
                "Hint: set ca_file to the PEM file of the CA that signed it (a private or "
                "government CA), or fix the address if it is not the service's; "
                "verify_tls: false only for a test service"
            )
        if not self.settings["client_cert"]:
            return (
                f"{where}: the TLS handshake failed: {text}. Hint: if the service requires "
                "a client certificate, set client_cert (and client_key) to the PEM files "
                "it was issued"
            )
        return (
            f"{where}: the TLS handshake failed: {text}. Hint: check that client_cert/"
            "client_key are the certificate the service expects, signed by a CA it trusts, "
            "and not expired"
        )

    def bind(self, client: zeep.Client) -> tuple[Any, str]:
        """The binding of the configured service and port, and the address to call it at."""
        s = self.settings
        services = client.wsdl.services
        name = s["service"] or next(iter(services), "")
        if name not in services:
            raise ConfigError(
                [
                    f"endpoint '{self.endpoint}': service '{name}' is not in the WSDL. "
                    f"Hint: one of {', '.join(services) or 'none'}"
                ]
            )
        ports = services[name].ports
        port_name = s["port"] or next(iter(ports), "")
        if port_name not in ports:
            raise ConfigError(
                [
                    f"endpoint '{self.endpoint}': port '{port_name}' is not in service '{name}'. "
                    f"Hint: one of {', '.join(ports) or 'none'}"
                ]
            )
        port = ports[port_name]
        return port.binding, s["address"] or port.binding_options["address"]

    def exact_schema(self) -> etree.XMLSchema | None:
        """The lxml schema of the WSDL's embedded types; None when zeep alone checks them."""
        # The exact schema catches what zeep's lax parsing lets through (patterns, bad numbers).
        # A WSDL whose types span several schemas or imports is checked by zeep alone.
        assert self.transport is not None, "open() first"
        for data in self.transport.documents.values():
            tree = xml.parse(data)
            if tree.getroot().tag == f"{{{wsdl_doc.WSDL_NS}}}definitions":
                try:
                    return wsdl_doc.embedded_schema(tree)
                except ConfigError:
                    return None
        return None
