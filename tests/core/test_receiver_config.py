"""`otel-bridge serve` configuration: defaults, `${env:VAR}` substitution, errors naming the key,
and sinks built from their entry points."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from otel_bridge.file_sink import FileSpanExporter
from otel_bridge.receiver import BridgeConfig, ConfigError, build_sinks, load_config, parse_config
from otel_bridge.receiver.config import (
    DEFAULT_MAX_REQUEST_BYTES,
    Endpoint,
    SinkConfig,
    substitute_env,
)


def test_no_config_means_loopback_default_ports_and_the_file_sink() -> None:
    config = parse_config(None)
    assert config == BridgeConfig()
    assert config.receiver.http is not None and config.receiver.grpc is not None
    assert config.receiver.http.endpoint == Endpoint("127.0.0.1", 4318)
    assert config.receiver.grpc.endpoint == Endpoint("127.0.0.1", 4317)
    assert config.receiver.max_request_bytes == DEFAULT_MAX_REQUEST_BYTES
    assert config.sinks == (SinkConfig("file", "file", {}),)


def test_full_file(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    key = tmp_path / "key.pem"
    cert.write_text("x")
    key.write_text("x")
    path = tmp_path / "bridge.yaml"
    path.write_text(
        f"""
receiver:
  http: {{endpoint: "0.0.0.0:14318"}}
  grpc: {{enabled: false}}
  max_request_bytes: 1024
  max_concurrent_requests: 3
  retry_after_seconds: 2
  auth:
    bearer_token: ${{env:TOKEN}}
    tls: {{cert_file: {cert}, key_file: {key}}}
spool_dir: ${{env:SPOOL:-/var/spool/bridge}}
telemetry: {{metrics_endpoint: "http://127.0.0.1:4318/v1/metrics"}}
sinks:
  file: {{path: a.jsonl}}
  file/archive: {{path: b.jsonl}}
""",
        encoding="utf-8",
    )
    config = load_config(path, {"TOKEN": "t0ken"})
    assert config.receiver.http is not None
    assert config.receiver.http.endpoint == Endpoint("0.0.0.0", 14318)
    assert config.receiver.grpc is None
    assert config.receiver.max_request_bytes == 1024
    assert config.receiver.max_concurrent_requests == 3
    assert config.receiver.retry_after_seconds == 2.0
    assert config.receiver.auth.bearer_token == "t0ken"
    assert config.receiver.auth.tls is not None
    assert config.receiver.auth.tls.client_ca_file is None
    assert config.spool_dir == "/var/spool/bridge"
    assert config.metrics_endpoint == "http://127.0.0.1:4318/v1/metrics"
    assert config.sinks == (
        SinkConfig("file", "file", {"path": "a.jsonl"}),
        SinkConfig("file/archive", "file", {"path": "b.jsonl"}),
    )


@pytest.mark.parametrize(
    ("value", "environ", "expected"),
    [
        ("${env:PORT}", {"PORT": "4318"}, 4318),  # a whole reference takes the YAML type
        ("${env:FLAG}", {"FLAG": "true"}, True),
        ("host:${env:PORT}", {"PORT": "4318"}, "host:4318"),
        ("${env:MISSING:-fallback}", {}, "fallback"),
        ("${env:MISSING:-}", {}, ""),
        ("$${env:LITERAL}", {"LITERAL": "no"}, "${env:LITERAL}"),
        ("plain $ sign", {}, "plain $ sign"),
    ],
)
def test_env_substitution(value: str, environ: dict[str, str], expected: Any) -> None:
    assert substitute_env({"key": value}, environ, "") == {"key": expected}


def test_unset_variable_names_the_key_and_the_variable() -> None:
    with pytest.raises(
        ConfigError, match=r"receiver\.auth\.bearer_token: .*BRIDGE_TOKEN is not set"
    ):
        parse_config({"receiver": {"auth": {"bearer_token": "${env:BRIDGE_TOKEN}"}}}, {})


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"recevier": {}}, r"^recevier: unknown key \(expected one of: receiver, sinks"),
        ({"receiver": {"htp": {}}}, r"^receiver\.htp: unknown key"),
        (
            {"receiver": {"http": {"endpoint": "nohost"}}},
            r"^receiver\.http\.endpoint: expected host:port",
        ),
        (
            {"receiver": {"grpc": {"endpoint": "h:99999"}}},
            r"^receiver\.grpc\.endpoint: expected host:port",
        ),
        (
            {"receiver": {"http": {"enabled": "yes"}}},
            r"^receiver\.http\.enabled: input should be a valid boolean, got str",
        ),
        (
            {"receiver": {"http": False, "grpc": False}},
            r"^receiver: both http and grpc are disabled",
        ),
        (
            {"receiver": {"max_request_bytes": -1}},
            r"^receiver\.max_request_bytes: input should be greater than 0, got -1",
        ),
        ({"receiver": {"max_request_bytes": "big"}}, r"^receiver\.max_request_bytes"),
        ({"receiver": {"max_concurrent_requests": 0}}, r"^receiver\.max_concurrent_requests"),
        ({"receiver": {"retry_after_seconds": -2}}, r"^receiver\.retry_after_seconds"),
        (
            {"receiver": {"auth": {"bearer_token": ""}}},
            r"^receiver\.auth\.bearer_token: string should have at least 1 character",
        ),
        (
            {"receiver": {"auth": {"tls": {"cert_file": "c"}}}},
            r"^receiver\.auth\.tls\.key_file: required",
        ),
        (
            {"receiver": {"auth": {"tls": {"cert_file": "/nope.pem", "key_file": "/nope.pem"}}}},
            r"^receiver\.auth\.tls\.cert_file: no such file",
        ),
        ({"receiver": {"auth": {"tls": {"ca": 1}}}}, r"^receiver\.auth\.tls\.ca: unknown key"),
        ({"sinks": []}, r"^sinks: expected a mapping"),
        ({"sinks": {}}, r"^sinks: at least one sink"),
        ({"sinks": {"file": "x"}}, r"^sinks: sink 'file': expected a mapping"),
        ({"spool_dir": ["a"]}, r"^spool_dir: input should be a valid string, got list"),
        ({"telemetry": {"metrics": 1}}, r"^telemetry\.metrics: unknown key"),
        ("just text", r"^<root>: expected a mapping"),
    ],
)
def test_errors_name_the_bad_key(document: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(document, {})


def test_invalid_yaml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("receiver: [unclosed", encoding="utf-8")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.yaml")


def test_sinks_are_built_from_entry_points_with_options(tmp_path: Path) -> None:
    config = parse_config(
        {
            "spool_dir": str(tmp_path / "spool"),
            "sinks": {
                "file": {"path": str(tmp_path / "a.jsonl")},
                "file/second": {"path": str(tmp_path / "b.jsonl"), "grace_period": 0.5},
            },
        }
    )
    sinks = build_sinks(config)
    try:
        assert [sink.id for sink in sinks] == ["file", "file/second"]
        first, second = (sink.exporter for sink in sinks)
        assert isinstance(first, FileSpanExporter)
        assert isinstance(second, FileSpanExporter)
        assert first.path == tmp_path / "a.jsonl"
        assert second.grace_period == 0.5
        # Both spools live in the configured directory, each in its own file.
        assert first.spool.path.parent == second.spool.path.parent == tmp_path / "spool"
        assert first.spool.path != second.spool.path
    finally:
        for sink in sinks:
            sink.exporter.shutdown()


def test_unknown_sink_names_the_group_and_what_is_installed() -> None:
    with pytest.raises(ConfigError) as error:
        build_sinks(parse_config({"sinks": {"labelstudo": {}}}))
    message = str(error.value)
    assert message.startswith("sinks.labelstudo: no exporter named 'labelstudo'")
    assert "opentelemetry_traces_exporter" in message
    assert "file" in message


def test_bad_sink_options_name_the_sink(tmp_path: Path) -> None:
    config = parse_config({"spool_dir": str(tmp_path), "sinks": {"file": {"colour": "red"}}})
    with pytest.raises(ConfigError, match=r"^sinks\.file: invalid options: .*colour"):
        build_sinks(config)
    config = parse_config({"spool_dir": str(tmp_path), "sinks": {"file": {"when_full": "panic"}}})
    with pytest.raises(ConfigError, match=r"^sinks\.file: when_full must be"):
        build_sinks(config)


def test_the_default_sink_writes_into_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OTEL_BRIDGE_SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.delenv("OTEL_BRIDGE_FILE_PATH", raising=False)
    (sink,) = build_sinks(BridgeConfig())
    sink.exporter.shutdown()
    assert isinstance(sink.exporter, FileSpanExporter)
    assert sink.exporter.path == tmp_path / "otel-bridge-traces.jsonl"
