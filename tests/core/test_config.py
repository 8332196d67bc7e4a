"""Configuration: every problem at once, each with its line, and secrets never shown."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from lienthong import config
from lienthong.cli import cli
from lienthong.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]

BROKEN = """\
bus:
  store: sqlite:///var/x.db
  pol_interval: 2
endpoints:
  inbox:
    adapter: foldr
    path: in
  outbox:
    adapter: folder
    pth: out
routes:
  - name: r
    from: inbx
    when: "//a["
    to:
      - endpoint: outbox
        mapping: nowhere.xsl
"""


def test_every_problem_is_reported_at_once_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "lienthong.yaml"
    path.write_text(BROKEN)
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    text = str(caught.value)
    assert "lienthong.yaml:3 bus.pol_interval: unknown key. Did you mean 'poll_interval'?" in text
    assert (
        "lienthong.yaml:6 endpoints.inbox.adapter: Unknown adapter 'foldr'. Did you mean 'folder'?"
        in text
    )
    assert (
        "lienthong.yaml:10 endpoints.outbox.pth: unknown option for adapter 'folder'. Did you mean 'path'?"
        in text
    )
    assert "lienthong.yaml:8 endpoints.outbox.path: required" in text
    assert (
        "lienthong.yaml:13 routes.0.from: no endpoint named 'inbx'. Did you mean 'inbox'?" in text
    )
    assert "routes.0.when: XPath '//a[' does not compile" in text
    assert "mapping 'nowhere.xsl' not found" in text
    assert len(caught.value.problems) == 7


def test_the_shipped_configs_check_clean() -> None:
    cfg = config.load(REPO / "config/lienthong.yaml")
    assert cfg.bus.embedded and "sqlite" in cfg.bus.store.reveal()
    # config/production.example.yaml and reference-flows.yaml: tests/flows/test_configs.py


def test_secrets_come_from_env_or_files_and_never_show(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_file = tmp_path / "store-url"
    secret_file.write_text("sqlite:///" + str(tmp_path / "s.db") + "\n")
    (tmp_path / "c.yaml").write_text(
        "bus:\n  store: {file: store-url}\n  broker: {env: BROKER_URL}\n"
        "  mappings: " + str(REPO / "mappings") + "\n"
        "endpoints:\n  in: {adapter: memory}\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BROKER_URL", "amqp://lienthong:hunter2-s3cret@127.0.0.1:5672//")
    cfg = config.load(tmp_path / "c.yaml")
    assert cfg.bus.broker.reveal().endswith("@127.0.0.1:5672//")
    assert "hunter2" not in repr(cfg.bus) and "hunter2" not in str(cfg.bus.broker)
    result = CliRunner().invoke(cli, ["--config", str(tmp_path / "c.yaml"), "config", "check"])
    assert result.exit_code == 0, result.output
    assert "hunter2" not in result.output

    monkeypatch.delenv("BROKER_URL")
    result = CliRunner().invoke(cli, ["--config", str(tmp_path / "c.yaml"), "config", "check"])
    assert result.exit_code == 1
    assert "environment variable BROKER_URL is not set" in result.output


def test_a_relative_secret_file_is_under_the_config_folder_not_the_working_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "etc"
    (folder / "secrets").mkdir(parents=True)
    (folder / "secrets" / "store-url").write_text(f"sqlite:///{tmp_path / 's.db'}\n")
    (folder / "c.yaml").write_text(
        "bus:\n  store: {file: secrets/store-url}\n"
        "  mappings: " + str(REPO / "mappings") + "\n"
        "endpoints:\n  in: {adapter: memory}\n"
    )
    monkeypatch.chdir(tmp_path)  # where secrets/store-url does not exist
    cfg = config.load(folder / "c.yaml")
    assert cfg.bus.store.reveal() == f"sqlite:///{tmp_path / 's.db'}"
    (folder / "secrets" / "store-url").unlink()
    with pytest.raises(ConfigError, match=r"secret file '.*etc/secrets/store-url' cannot be read"):
        config.load(folder / "c.yaml")


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("bus:\n  store: [unclosed\n")
    with pytest.raises(ConfigError, match=r"c.yaml:\d+: not valid YAML"):
        config.load(tmp_path / "c.yaml")


def test_a_missing_file_says_how_to_point_at_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--config or set LIENTHONG_CONFIG"):
        config.load(tmp_path / "nope.yaml")


BAD_BUS = """\
bus:
  batch_size: 2.5
  poll_interval: "5"
  breaker_failures: true
  retry:
    max_attemps: 3
    jitter: -0.1
  metrics_port: 70000
  console_host: "  "
  broker: http://rabbit
  store: sqlite:///var/here.db
  var_dir: data
"""


def test_each_bad_bus_setting_is_named_with_its_line_and_what_fits(tmp_path: Path) -> None:
    path = tmp_path / "lienthong.yaml"
    path.write_text(BAD_BUS)
    with pytest.raises(ConfigError) as caught:
        config.load(path, environ={})
    found = [f"{p.location}: {p.message}" for p in caught.value.problems]
    assert found == [
        f"{path}:2 bus.batch_size: expected a positive whole number, got 2.5",
        f"{path}:3 bus.poll_interval: expected a positive number, got '5'",
        f"{path}:4 bus.breaker_failures: expected a positive whole number, got True",
        f"{path}:6 bus.retry.max_attemps: unknown key. Did you mean 'max_attempts'? "
        "Known: max_attempts, initial_delay, max_delay, multiplier, jitter",
        f"{path}:7 bus.retry.jitter: expected a number ≥ 0, got -0.1",
        f"{path}:8 bus.metrics_port: expected a TCP port 0-65535 (0: any free port), "
        "got 70000. Hint: 9464",
        f"{path}:9 bus.console_host: expected an address to listen on, got '  '",
        f"{path}:10 bus.broker: expected 'embedded' or an amqp:// URL",
    ]


def test_bus_settings_take_their_defaults_and_paths_relative_to_the_config(
    tmp_path: Path,
) -> None:
    data = {
        "bus": {
            "store": "sqlite:///var/here.db",
            "var_dir": "data",
            "retry": None,
            "console_host": " 0.0.0.0 ",
            "audit_anchor": "anchors/head",
        }
    }
    bus = config.from_dict(data, base_dir=tmp_path, environ={}).bus
    assert bus.store.reveal() == f"sqlite:///{tmp_path / 'var' / 'here.db'}"
    assert (bus.var_dir, bus.mappings) == (tmp_path / "data", tmp_path / "mappings")
    assert bus.anchor_path == tmp_path / "anchors" / "head"
    assert bus.console_host == "0.0.0.0" and bus.retry == config.RetryPolicy()
    assert (bus.batch_size, bus.poll_interval, bus.metrics_port) == (200, 1.0, None)
    assert config.from_dict({}, base_dir=tmp_path).bus.embedded


SHAPES = """\
endpoints:
  inbox: {adapter: memory}
  outbox: {adapter: memory}
routes:
  - name: receipts
    from: inbx
    knd: receipt
    to:
      - endpoint: outbox
        mapin: x.xsl
      - endpoint: outbox
        order_by: "//dossier"
      - endpoint_from: {map: {H41: outbox}}
      - 5
jobs:
  nightly:
    cron: "0 2 * * *"
    sync: {source: inbox, target: outbox, entity: agency, mode: detla}
  poll-inbox:
    interval: 5m
    poll: inbox
    coalesce: "no"
console:
  ldap: ldaps://ldap/
"""


def test_routes_jobs_and_console_are_checked_like_the_bus(tmp_path: Path) -> None:
    """Each key named with its line, misspelt ones with a suggestion; a route whose only
    mistake in shape is a misspelt key is still checked for the endpoints it names."""
    path = tmp_path / "lienthong.yaml"
    path.write_text(SHAPES)
    with pytest.raises(ConfigError) as caught:
        config.load(path, environ={})
    found = [f"{p.location}: {p.message}" for p in caught.value.problems]
    assert found == [
        f"{path}:7 routes.0.knd: unknown key. Did you mean 'kind'? "
        "Known: name, from, kind, headers, when, senders, namespaces, to",
        f"{path}:6 routes.0.from: no endpoint named 'inbx'. Did you mean 'inbox'?",
        f"{path}:10 routes.0.to.0.mapin: unknown key. Did you mean 'mapping'? "
        "Known: endpoint, endpoint_from, mapping, params, validate, kind, order_by, once_per",
        f"{path}:12 routes.0.to.1.order_by: order_by needs 'group': an XPath on the message "
        "naming what must stay in order (e.g. a dossier number), and may have 'sequence': "
        "an XPath giving its place, got '//dossier'",
        f"{path}:13 routes.0.to.2.endpoint_from.xpath: required",
        f"{path}:14 routes.0.to.3: a target is an endpoint name or a mapping with 'endpoint', "
        "got 5",
        f"{path}:18 jobs.nightly.sync.mode: expected one of 'full', 'delta', got 'detla'. "
        "Did you mean 'delta'?",
        f"{path}:22 jobs.poll-inbox.coalesce: expected true or false, got 'no'",
        f"{path}:24 console.ldap: expected a mapping, got 'ldaps://ldap/'",
    ]


ONCE_PER = """\
endpoints:
  inbox: {adapter: memory}
  outbox: {adapter: memory}
routes:
  - name: letters
    from: inbox
    to:
      - endpoint: outbox
        once_per: "//a["
      - endpoint: outbox
        once_per: {group: "//dossier"}
      - endpoint: outbox
        onceper: "//dossier"
"""


def test_once_per_is_an_xpath_checked_like_order_by(tmp_path: Path) -> None:
    path = tmp_path / "lienthong.yaml"
    path.write_text(ONCE_PER)
    with pytest.raises(ConfigError) as caught:
        config.load(path, environ={})
    found = [f"{p.location}: {p.message}" for p in caught.value.problems]
    assert found == [
        f"{path}:9 routes.0.to.0.once_per: XPath '//a[' does not compile: Invalid expression",
        f"{path}:11 routes.0.to.1.once_per: expected an XPath (text), got {{'group': "
        "'//dossier'}. Hint: what is sent once per value, e.g. "
        "\"string(//*[@key='dossierNo'])\"",
        f"{path}:13 routes.0.to.2.onceper: unknown key. Did you mean 'once_per'? "
        "Known: endpoint, endpoint_from, mapping, params, validate, kind, order_by, once_per",
    ]
    # Right, it compiles with the route's namespaces.
    data = {
        "endpoints": {"inbox": {"adapter": "memory"}, "outbox": {"adapter": "memory"}},
        "routes": [{"from": "inbox", "namespaces": {"ed": "urn:edxml"},
                    "to": [{"endpoint": "outbox", "once_per": "string(//ed:dossier/@no)"}]}],
    }
    [route] = config.from_dict(data, base_dir=tmp_path).routes
    once = route.targets[0].once_per
    assert once is not None and once.value.path == "string(//ed:dossier/@no)"


def test_route_values_written_as_numbers_are_text(tmp_path: Path) -> None:
    data = {
        "endpoints": {"in": {"adapter": "memory"}, "2026": {"adapter": "memory"}},
        "routes": [
            {
                "from": "in",
                "headers": {"year": 2026},
                "to": [{"endpoint": 2026, "params": {"rate": 1.5}}],
            }
        ],
    }
    [route] = config.from_dict(data, base_dir=tmp_path).routes
    assert route.headers == {"year": "2026"} and route.name == "route-1"
    assert (route.targets[0].endpoint, route.targets[0].params) == ("2026", {"rate": "1.5"})


def test_the_console_signing_key_file_is_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "console.key").write_text("k" * 40)
    data = {"console": {"secret_key": {"file": "console.key"}}}
    console = config.from_dict(data, base_dir=tmp_path, environ={}).console
    assert console.secret_key is not None and console.secret_key.reveal() == "k" * 40


def test_an_endpoints_concurrency_is_a_whole_number_up_to_32(tmp_path: Path) -> None:
    path = tmp_path / "lienthong.yaml"
    path.write_text(
        "endpoints:\n"
        "  a: {adapter: memory, concurrency: 4}\n"
        "  b: {adapter: memory, concurrency: 0}\n"
        "  c: {adapter: memory, concurrency: '4'}\n"
        "  d: {adapter: memory, concurrency: true}\n"
        "  e: {adapter: memory, concurrency: 33}\n"
    )
    with pytest.raises(ConfigError) as caught:
        config.load(path, environ={})
    found = [f"{p.location}: {p.message}" for p in caught.value.problems]
    fits = "expected a whole number from 1 to 32, got"
    assert found == [
        f"{path}:3 endpoints.b.concurrency: {fits} 0",
        f"{path}:4 endpoints.c.concurrency: {fits} '4'",
        f"{path}:5 endpoints.d.concurrency: {fits} True",
        f"{path}:6 endpoints.e.concurrency: {fits} 33",
    ]
    path.write_text("endpoints:\n  a: {adapter: memory, concurrency: 4}\n  b: {adapter: memory}\n")
    endpoints = config.load(path, environ={}).endpoints
    assert (endpoints["a"].concurrency, endpoints["b"].concurrency) == (4, 1)


def test_a_misspelt_concurrency_is_suggested_like_an_adapter_option(tmp_path: Path) -> None:
    path = tmp_path / "lienthong.yaml"
    path.write_text("endpoints:\n  portal: {adapter: memory, concurency: 4}\n")
    with pytest.raises(ConfigError) as caught:
        config.load(path, environ={})
    [problem] = caught.value.problems
    assert problem.location == f"{path}:2 endpoints.portal.concurency"
    assert "Did you mean 'concurrency'?" in problem.message
