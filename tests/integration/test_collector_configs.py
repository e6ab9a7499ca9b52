"""collector-config/: each Collector file is internally consistent and points at the bridge's
default endpoints; bridge.yaml is a valid `otel-bridge serve` config."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from otel_bridge.receiver import parse_config
from otel_bridge.receiver.config import DEFAULT_GRPC_ENDPOINT, DEFAULT_HTTP_ENDPOINT

CONFIG_DIR = Path(__file__).resolve().parents[2] / "collector-config"
COLLECTOR_FILES = ["agent.yaml", "gateway-loadbalancing.yaml", "tail-sampling.yaml"]
BRIDGE_HTTP_PORT = int(DEFAULT_HTTP_ENDPOINT.rsplit(":", 1)[1])
BRIDGE_GRPC_PORT = int(DEFAULT_GRPC_ENDPOINT.rsplit(":", 1)[1])
SECTIONS = {"receivers", "processors", "exporters", "connectors", "extensions"}


def _load(name: str) -> dict[str, Any]:
    document = yaml.safe_load((CONFIG_DIR / name).read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def _type(component_id: str) -> str:
    return component_id.split("/", 1)[0]


def _bridge_exporters(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: settings or {}
        for name, settings in document["exporters"].items()
        if "bridge" in name or _type(name) == "loadbalancing"
    }


def _port(endpoint: str) -> int:
    # Collector endpoints are URLs (otlphttp) or host:port (otlp); env defaults are resolved
    # the way the Collector does: ${env:NAME:-default} -> default.
    resolved = endpoint.replace("${env:OTEL_BRIDGE_HOST:-otel-bridge}", "otel-bridge")
    if "://" not in resolved:
        resolved = "//" + resolved
    port = urlsplit(resolved).port
    assert port is not None, endpoint
    return port


@pytest.mark.parametrize("name", COLLECTOR_FILES)
def test_every_component_a_pipeline_uses_is_defined_and_every_defined_one_is_used(
    name: str,
) -> None:
    document = _load(name)
    assert set(document) <= SECTIONS | {"service"}
    service = document["service"]
    used: dict[str, set[str]] = {"receivers": set(), "processors": set(), "exporters": set()}
    assert service["pipelines"], "no pipelines"
    for pipeline_id, pipeline in service["pipelines"].items():
        assert _type(pipeline_id) in {"traces", "metrics", "logs"}, pipeline_id
        assert pipeline.get("receivers") and pipeline.get("exporters"), pipeline_id
        for section in used:
            for component in pipeline.get(section, []):
                assert component in (document.get(section) or {}), (
                    f"{name}: pipeline {pipeline_id} uses {section[:-1]} {component!r}, "
                    "which is not defined"
                )
                used[section].add(component)
        processors = pipeline.get("processors", [])
        if "memory_limiter" in processors:
            assert processors[0] == "memory_limiter", "memory_limiter must come first"
    for section, components in used.items():
        assert set(document.get(section) or {}) == components, f"{name}: unused {section}"
    for extension in service.get("extensions", []):
        assert extension in document.get("extensions", {}), extension
    assert set(document.get("extensions", {})) == set(service.get("extensions", []))


@pytest.mark.parametrize("name", COLLECTOR_FILES)
def test_the_bridge_is_reached_on_its_default_ports(name: str) -> None:
    bridge = _bridge_exporters(_load(name))
    assert bridge, f"{name} has no exporter to the bridge"
    for exporter_id, settings in bridge.items():
        kind = _type(exporter_id)
        if kind == "otlphttp":
            endpoint = settings["endpoint"]
            assert _port(endpoint) == BRIDGE_HTTP_PORT
            # otlphttp appends /v1/traces to `endpoint`; a path here would double it.
            assert urlsplit(endpoint.replace("${env:OTEL_BRIDGE_HOST:-otel-bridge}", "h")).path in (
                "",
                "/",
            )
        elif kind == "otlp":
            assert _port(settings["endpoint"]) == BRIDGE_GRPC_PORT
        elif kind == "loadbalancing":
            assert settings["routing_key"] == "traceID"
            assert "otlp" in settings["protocol"]
            hostnames = settings["resolver"]["static"]["hostnames"]
            assert len(hostnames) >= 2
            assert {_port(host) for host in hostnames} == {BRIDGE_GRPC_PORT}
        else:
            pytest.fail(f"unexpected bridge exporter type {exporter_id}")
        if kind != "loadbalancing":
            # Outages of the bridge are ridden out, never turned into dropped traces.
            assert settings["sending_queue"]["enabled"] is True
            assert settings["retry_on_failure"]["enabled"] is True


def test_agent_sends_to_the_backend_and_the_bridge_in_parallel() -> None:
    document = _load("agent.yaml")
    (pipeline,) = document["service"]["pipelines"].values()
    assert pipeline["processors"] == ["memory_limiter", "batch"]
    assert set(pipeline["exporters"]) == {"otlp/backend", "otlphttp/bridge"}
    for exporter in pipeline["exporters"]:
        settings = document["exporters"][exporter]
        assert settings["sending_queue"]["enabled"] and settings["retry_on_failure"]["enabled"]


def test_tail_sampling_keeps_errored_slow_and_tagged_traces_for_the_bridge_only() -> None:
    document = _load("tail-sampling.yaml")
    pipelines = document["service"]["pipelines"]
    to_bridge = [p for p in pipelines.values() if "otlp/bridge" in p["exporters"]]
    to_backend = [p for p in pipelines.values() if "otlp/backend" in p["exporters"]]
    assert len(to_bridge) == len(to_backend) == 1
    assert "tail_sampling" in to_bridge[0]["processors"]
    assert "tail_sampling" not in to_backend[0]["processors"]
    policies = {p["type"]: p for p in document["processors"]["tail_sampling"]["policies"]}
    assert policies["status_code"]["status_code"]["status_codes"] == ["ERROR"]
    assert policies["latency"]["latency"]["threshold_ms"] > 0
    assert policies["boolean_attribute"]["boolean_attribute"] == {
        "key": "langchain.run.metadata.review",
        "value": True,
    }


def test_bridge_yaml_is_a_valid_serve_config_with_the_default_endpoints() -> None:
    config = parse_config(_load("bridge.yaml"), environ={})
    assert str(config.receiver.http) == DEFAULT_HTTP_ENDPOINT
    assert str(config.receiver.grpc) == DEFAULT_GRPC_ENDPOINT
    assert [sink.type for sink in config.sinks] == ["file"]


def test_readme_has_a_section_per_file() -> None:
    readme = (CONFIG_DIR / "README.md").read_text(encoding="utf-8")
    for name in [*COLLECTOR_FILES, "bridge.yaml"]:
        assert f"## {name}" in readme
