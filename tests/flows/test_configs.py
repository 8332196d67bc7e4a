"""The shipped flow configs check clean; production takes every secret from the environment."""

from __future__ import annotations

import re

import pytest

from lienthong import config
from lienthong.errors import ConfigError
from tests.flows.flowconfig import REPO

PRODUCTION = REPO / "config/production.example.yaml"
SECRETS = [
    "LIENTHONG_STORE",
    "LIENTHONG_BROKER",
    "LIENTHONG_AUDIT_KEY",
    "AXIS_SECRET_SYT",
    "AXIS_SECRET_SGD",
    "ACCT_SYT_PASSWORD",
    "ACCT_SGD_PASSWORD",
    "LDAP_PASSWORD",
    "SMTP_PASSWORD",
    "SIGNING_PASSWORD_SYT",
    "SIGNING_PASSWORD_SGD",
    "ONESTOP_CLIENT_SECRET",
    "PORTAL_PASSWORD",
]
ENVIRON = {
    **{name: f"value-of-{name}" for name in SECRETS},
    "LIENTHONG_STORE": "postgresql+psycopg://lienthong@db/lienthong",
    "LIENTHONG_BROKER": "amqp://lienthong:pw@mq:5672/lienthong",
    "LIENTHONG_AUDIT_KEY": "k" * 40,
}


def test_reference_flows_check_clean_and_stay_on_loopback_sandboxes() -> None:
    cfg = config.load(REPO / "config/reference-flows.yaml")
    assert cfg.bus.embedded
    for name, ep in cfg.endpoints.items():
        for key in ("url", "wsdl", "base_url"):
            if key in ep.settings:
                assert "127.0.0.1:48" in ep.settings[key], name
        if ep.adapter == "rest_json":  # its secrets: the sandboxes' files beside the config
            secrets = [ep.settings[o] for o in ("client_secret", "password") if ep.settings[o]]
            assert secrets and all("sandbox-secrets" in s.origin for s in secrets), name
        if ep.adapter == "axis":
            assert ep.settings["sandbox"] is True
            assert ep.settings["signature_policy"] == "require"


def test_production_example_takes_every_secret_from_the_environment() -> None:
    cfg = config.load(PRODUCTION, environ=ENVIRON)
    assert not cfg.bus.embedded
    assert {r.name for r in cfg.routes} >= {
        "onestop-receipts",
        "documents-in-syt",
        "budget-decisions-syt",
        "reports-syt",
        "statuses-in-syt",
        "dossiers-to-portal",
        "steps-to-portal",
        "opinions-asked-sgd",
        "opinions-answered-sgd",
        "results-mailed",
    }
    for name, ep in cfg.endpoints.items():
        assert not ep.settings.get("sandbox"), name
        for key in ("url", "wsdl", "smtp_host", "base_url", "login_path"):
            value = str(ep.settings.get(key) or "")
            assert "127.0.0.1" not in value and "localhost" not in value, name
    text = PRODUCTION.read_text(encoding="utf-8")
    assert sorted(set(re.findall(r"\{env: (\w+)\}", text))) == sorted(SECRETS)
    header = text.split("\nbus:")[0]
    assert all(name in header for name in SECRETS), "each variable is named at the top"


@pytest.mark.parametrize("path", [REPO / "config/reference-flows.yaml", PRODUCTION])
def test_a_dossier_gets_one_letter_and_one_result_mail_whatever_its_versions(path) -> None:
    routes = {r.name: r for r in config.load(path, environ=ENVIRON).routes}
    for name in ("opinions-asked-sgd", "results-mailed"):
        [target] = routes[name].targets
        assert target.once_per is not None, name
        assert target.once_per.value.path == "string(//*[@key='dossierNo'])", name


@pytest.mark.parametrize("missing", ["AXIS_SECRET_SYT", "SMTP_PASSWORD"])
def test_a_missing_secret_stops_the_start_naming_it(missing: str) -> None:
    environ = {k: v for k, v in ENVIRON.items() if k != missing}
    with pytest.raises(ConfigError, match=f"environment variable {missing} is not set"):
        config.load(PRODUCTION, environ=environ)
