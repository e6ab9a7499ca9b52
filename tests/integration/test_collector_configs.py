"""collector-config/: each Collector file is internally consistent, uses today's component names
and points at the bridge's default endpoints with its token; bridge.yaml is a valid
`otel-bridge serve` config. (test_collector_validate.py runs the files in the real Collector.)"""

from __future__ import annotations

import re
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
# Exporters renamed in Collector v0.161.0 (the old names still load, with a deprecation warning
# at start; the `otlp` receiver keeps its name).
RENAMED_EXPORTERS = {
    "otlp": "otlp_grpc",
    "otlphttp": "otlp_http",
    "loadbalancing": "load_balancing",
}
BRIDGE_AUTH = {"authenticator": "bearertokenauth/bridge"}


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
        if "bridge" in name or _type(name) == "load_balancing"
    }


def _default(value: str) -> str:
    """`value` with ${env:NAME:-default} resolved the way the Collector does when NAME is unset."""
    return re.sub(r"\$\{env:[A-Z0-9_]+:-([^}]*)\}", r"\1", value)


def _port(endpoint: str) -> int:
    # Collector endpoints are URLs (otlp_http) or host:port (otlp_grpc, load_balancing).
    resolved = _default(endpoint)
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
def test_exporters_have_their_current_names(name: str) -> None:
    for component_id in _load(name)["exporters"]:
        assert _type(component_id) not in RENAMED_EXPORTERS, (
            f"{name}: {component_id} has the pre-v0.161.0 name; "
            f"use {RENAMED_EXPORTERS[_type(component_id)]}"
        )


@pytest.mark.parametrize("name", COLLECTOR_FILES)
def test_the_bridge_is_reached_on_its_default_ports_with_the_token(name: str) -> None:
    document = _load(name)
    bridge = _bridge_exporters(document)
    assert bridge, f"{name} has no exporter to the bridge"
    # The bridge's token (collector-config/bridge.yaml reads the same variable).
    token = document["extensions"]["bearertokenauth/bridge"]["token"]
    assert token == "${env:OTEL_BRIDGE_TOKEN}"
    for exporter_id, settings in bridge.items():
        kind = _type(exporter_id)
        if kind == "otlp_http":
            endpoint = _default(settings["endpoint"])
            assert _port(endpoint) == BRIDGE_HTTP_PORT
            # otlp_http appends /v1/traces to `endpoint`; a path here would double it.
            assert urlsplit(endpoint).path in ("", "/")
            queue = settings["sending_queue"]
        elif kind == "load_balancing":
            assert settings["routing_key"] == "traceID"
            hostnames = yaml.safe_load(_default(settings["resolver"]["static"]["hostnames"]))
            settings = settings["protocol"]["otlp"]
            # gRPC sends a bearer token only over TLS: no `insecure` here.
            assert "insecure" not in settings["tls"]
            assert len(hostnames) >= 2
            assert {_port(host) for host in hostnames} == {BRIDGE_GRPC_PORT}
            queue = settings["sending_queue"]
        else:
            pytest.fail(f"unexpected bridge exporter type {exporter_id}")
        assert settings["auth"] == BRIDGE_AUTH
        # Outages of the bridge are ridden out, never turned into dropped traces, and one
        # request at a time keeps a trace's spans in order.
        assert settings["retry_on_failure"]["enabled"] is True
        assert settings["retry_on_failure"]["max_elapsed_time"] == "0s"
        assert queue["num_consumers"] == 1


def test_agent_sends_to_the_backend_and_the_bridge_in_parallel_from_disk_queues() -> None:
    document = _load("agent.yaml")
    (pipeline,) = document["service"]["pipelines"].values()
    # No batch processor: it would acknowledge data the on-disk queues do not hold yet.
    assert pipeline["processors"] == ["memory_limiter"]
    assert set(pipeline["exporters"]) == {"otlp_grpc/backend", "otlp_http/bridge"}
    for exporter in pipeline["exporters"]:
        settings = document["exporters"][exporter]
        assert settings["sending_queue"]["storage"] == "file_storage"
        assert settings["sending_queue"]["batch"]["flush_timeout"]
        assert settings["retry_on_failure"]["enabled"]
    assert "file_storage" in document["service"]["extensions"]


def test_tail_sampling_keeps_errored_slow_and_tagged_traces_for_the_bridge_only() -> None:
    document = _load("tail-sampling.yaml")
    pipelines = document["service"]["pipelines"]
    to_bridge = [p for p in pipelines.values() if "otlp_http/bridge" in p["exporters"]]
    to_backend = [p for p in pipelines.values() if "otlp_grpc/backend" in p["exporters"]]
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
    config = parse_config(_load("bridge.yaml"), environ={"OTEL_BRIDGE_TOKEN": "t0ken"})
    assert config.receiver.http is not None and config.receiver.grpc is not None
    assert str(config.receiver.http.endpoint) == DEFAULT_HTTP_ENDPOINT
    assert str(config.receiver.grpc.endpoint) == DEFAULT_GRPC_ENDPOINT
    assert [sink.type for sink in config.sinks] == ["file"]
    assert config.receiver.auth.bearer_token == "t0ken"


def test_readme_has_a_section_per_file() -> None:
    readme = (CONFIG_DIR / "README.md").read_text(encoding="utf-8")
    for name in [*COLLECTOR_FILES, "bridge.yaml"]:
        assert f"## {name}" in readme
