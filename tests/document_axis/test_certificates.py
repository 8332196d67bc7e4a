"""The signing certificates the axis adapter meets: listed by ``edxml certs``, and a gauge.

A receiving bus trusts a SANDBOX CA; two senders sign with certificates from
it, one of which expires in a few days. What the adapter recorded when it
verified their documents is what ``lienthong edxml certs`` lists and what the
bus's ``/metrics`` serves as the soonest expiry.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from lienthong import cli as cli_module
from lienthong.hookspecs import hookimpl
from lienthong.plugins.document_axis.certificates import GAUGE
from lienthong.plugins.document_axis.sandbox_ca import SandboxCA
from lienthong.plugins.document_axis.signature import sign


def _endpoints(axis, samples, organ: str, **options) -> dict:
    system = samples.system_of[organ]
    return {
        "axis": {
            "adapter": "axis",
            "url": axis.url,
            "system_id": system,
            "secret": samples.systems[system],
            "organ_id": organ,
            "sandbox": True,
            **options,
        },
        "dms-in": {"adapter": "folder", "path": "dms-in", "direction": "out"},
    }


ROUTES = [{"name": "in", "from": "axis", "to": ["dms-in"]}]


def test_certificates_met_are_listed_with_their_agency_and_last_document(
    lienthong_bus, axis, samples, tmp_path: Path
):
    ca = SandboxCA()
    files = ca.write(tmp_path / "pki")
    lasting = ca.issue("CN=Văn thư,O=Agency A,C=VN", days=365)
    expiring = ca.issue("CN=Văn thư,O=Agency C,C=VN", days=10)
    endpoints = _endpoints(axis, samples, samples.B, trust_anchors=[str(files["root"])])
    bus = lienthong_bus(endpoints=endpoints, routes=ROUTES)
    first = sign(samples.document(samples.A, [samples.B], number="1"), lasting)
    second = sign(samples.document(samples.A, [samples.B], number="2"), lasting)
    third = sign(samples.document(samples.C, [samples.B], number="3"), expiring)
    for sender, body in ((samples.A, first), (samples.A, second), (samples.C, third)):
        axis.deliver(sender, [samples.B], body)
    assert bus.run(once=True).delivered == 3

    config = tmp_path / "b.yaml"
    config.write_text(
        json.dumps({"bus": {"store": "sqlite:///var/bus.db"}, "endpoints": endpoints}),
        encoding="utf-8",
    )

    def certs(*args: str):
        result = CliRunner().invoke(
            cli_module.build(), ["--config", str(config), "edxml", "certs", *args]
        )
        assert result.exit_code == 0, result.output
        return result.output

    listed = json.loads(certs("--json"))
    assert [(c["subject"], c["agency"]) for c in listed] == [
        ("CN=Văn thư,O=Agency C,C=VN", samples.C),  # soonest expiry first
        ("CN=Văn thư,O=Agency A,C=VN", samples.A),
    ]
    soon, later = listed
    assert soon["serial"] == f"{expiring.certificate.serial_number:x}"
    assert soon["issuer"] == expiring.certificate.issuer.rfc4514_string()
    assert soon["not_valid_after"] == expiring.certificate.not_valid_after_utc.isoformat()
    assert soon["trusted"] is True
    assert soon["last_document"] == samples.document_id_of(third)
    assert later["last_document"] == samples.document_id_of(second)  # its last, not its first

    only_soon = json.loads(certs("--expiring", "30", "--json"))
    assert [c["subject"] for c in only_soon] == ["CN=Văn thư,O=Agency C,C=VN"]
    text = certs("--expiring", "30")
    assert text.startswith("1 signing certificate(s) expiring within 30 day(s)")
    assert f"agency {samples.C}; issuer {soon['issuer']}; serial {soon['serial']}" in text
    assert f"{expiring.certificate.not_valid_after_utc:%Y-%m-%d}  CN=Văn thư,O=Agency C" in text

    families = {
        f.name: f for f in text_string_to_metric_families(bus.metrics.exposition().decode())
    }
    [sample] = families[GAUGE].samples
    assert sample.value == expiring.certificate.not_valid_after_utc.timestamp()


def test_no_certificate_met_no_gauge_and_an_empty_list(lienthong_bus, axis, samples, tmp_path):
    bus = lienthong_bus(endpoints=_endpoints(axis, samples, samples.B), routes=ROUTES)
    assert GAUGE not in bus.metrics.exposition().decode()
    from lienthong.plugins.document_axis import certificates

    assert certificates.listed(bus.store.engine) == []
    assert certificates.soonest_expiry(bus.store.engine, datetime.now(UTC)) is None


def test_the_bus_hands_plugins_its_registry_and_store_once(lienthong_host, lienthong_bus):
    """``lienthong_prepare_metrics``: what a plugin registers is served on /metrics."""
    from prometheus_client.core import GaugeMetricFamily

    calls = []

    class Plugin:
        @hookimpl
        def lienthong_prepare_metrics(self, registry, engine):
            calls.append(engine)

            class Collector:
                def collect(self):
                    gauge = GaugeMetricFamily("test_plugin_gauge", "A plugin's own metric.")
                    gauge.add_metric([], 42.0)
                    yield gauge

            registry.register(Collector())

    lienthong_host.add(Plugin(), "test-metrics")
    lienthong_host.refresh()
    bus = lienthong_bus()
    assert calls == [bus.store.engine]
    assert "test_plugin_gauge 42.0" in bus.metrics.exposition().decode()
