"""`otel-bridge serve --config`: a bad file stops the command with a message naming the key;
the telemetry section sends the receiver's own metrics over OTLP."""

from __future__ import annotations

import gzip
import signal
import socket
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.sdk.trace.export import SpanExportResult

from otel_bridge.receiver.telemetry import (
    METRIC_REQUESTS,
    METRIC_SPANS_ACCEPTED,
    METRIC_SPOOL_BYTES,
)
from tests.contract import make_spans
from tests.support.serve import SERVE, loopback_config, start_serve


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("receiver:\n  htttp: {}\n", "receiver.htttp: unknown key"),
        (
            "receiver:\n  http: {endpoint: 'localhost'}\n",
            "receiver.http.endpoint: expected host:port",
        ),
        ("sinks:\n  nosuchsink: {}\n", "sinks.nosuchsink: no exporter named 'nosuchsink'"),
        (
            "receiver:\n  auth: {bearer_token: '${env:OTEL_BRIDGE_TEST_UNSET_TOKEN}'}\n",
            "receiver.auth.bearer_token: environment variable OTEL_BRIDGE_TEST_UNSET_TOKEN is not set",
        ),
        ("receiver: [\n", "invalid YAML"),
    ],
)
def test_a_bad_config_exits_2_naming_the_key(tmp_path: Path, content: str, message: str) -> None:
    config = tmp_path / "bridge.yaml"
    config.write_text(content, encoding="utf-8")
    result = _serve(tmp_path, "--config", str(config))
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


class _MetricsCollector(ThreadingHTTPServer):
    """A minimal OTLP/HTTP metrics endpoint recording the metric names it receives."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _MetricsHandler)
        self.names: set[str] = set()


class _MetricsHandler(BaseHTTPRequestHandler):
    server: _MetricsCollector

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        request = ExportMetricsServiceRequest.FromString(body)
        for resource_metrics in request.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                self.server.names.update(metric.name for metric in scope_metrics.metrics)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_own_metrics_go_to_the_configured_otlp_endpoint(tmp_path: Path) -> None:
    collector = _MetricsCollector()
    threading.Thread(target=collector.serve_forever, daemon=True).start()
    config = loopback_config(
        tmp_path,
        f"""telemetry:
  metrics_endpoint: http://127.0.0.1:{collector.server_address[1]}/v1/metrics
sinks:
  file: {{path: {tmp_path / "out.jsonl"}}}
""",
    )
    process, ports = start_serve(config, cwd=tmp_path, stderr=None)
    try:
        spans = make_spans()
        exporter = OTLPSpanExporter(endpoint=f"http://127.0.0.1:{ports['HTTP']}/v1/traces")
        assert exporter.export(spans) is SpanExportResult.SUCCESS
        exporter.shutdown()
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
        collector.shutdown()
    # The meter provider is flushed on shutdown, so no export interval needs to pass.
    assert {METRIC_REQUESTS, METRIC_SPANS_ACCEPTED, METRIC_SPOOL_BYTES} <= collector.names


def test_serve_says_which_walk_writes_the_file_sinks_json(tmp_path: Path) -> None:
    config = loopback_config(tmp_path, f"sinks:\n  file: {{path: {tmp_path / 'out.jsonl'}}}\n")
    process, _ = start_serve(config, cwd=tmp_path, stderr=None)
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "otel-bridge serve: sinks: file\n"
        # make install builds the C walk: this environment has it.
        walk = process.stdout.readline()
        assert (
            walk
            == "otel-bridge serve: file sink: OTLP JSON lines written in C (otel-bridge-speedups)\n"
        )
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)
    assert process.returncode == 0


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_a_busy_port_is_reported_without_a_traceback(tmp_path: Path, transport: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        other = "grpc" if transport == "http" else "http"
        config = tmp_path / "bridge.yaml"
        config.write_text(
            f"receiver:\n  {transport}: {{endpoint: '127.0.0.1:{busy.getsockname()[1]}'}}\n"
            f"  {other}: false\nspool_dir: {tmp_path / 'spool'}\n",
            encoding="utf-8",
        )
        result = _serve(tmp_path, "--config", str(config))
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()  # one line, no gRPC core log
    assert line.startswith("otel-bridge serve: cannot listen: cannot bind the OTLP/")
    assert line.endswith("Address already in use")


def _serve(tmp_path: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SERVE, *arguments],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_a_network_bind_without_token_or_tls_is_refused(tmp_path: Path, transport: str) -> None:
    config = tmp_path / "bridge.yaml"
    config.write_text(f"receiver:\n  {transport}: {{endpoint: '0.0.0.0:0'}}\n", encoding="utf-8")
    refused = _serve(tmp_path, "--config", str(config))
    assert refused.returncode == 2
    assert f"{transport}.endpoint 0.0.0.0:0 is reachable from the network" in refused.stderr
    for fix in ("auth.bearer_token", "auth.tls", "insecure: true", "--insecure"):
        assert fix in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    # Either fix makes the same file valid.
    assert _serve(tmp_path, "--config", str(config), "--insecure", "--check-config").returncode == 0
    config.write_text(
        f"receiver:\n  {transport}: {{endpoint: '0.0.0.0:0'}}\n  auth: {{bearer_token: t}}\n",
        encoding="utf-8",
    )
    assert _serve(tmp_path, "--config", str(config), "--check-config").returncode == 0


def test_check_config_validates_and_exits(tmp_path: Path) -> None:
    config = tmp_path / "bridge.yaml"
    config.write_text(
        f"receiver:\n  http: {{endpoint: '127.0.0.1:0', idle_timeout_seconds: 5}}\n"
        f"spool_dir: {tmp_path / 'spool'}\nsinks:\n  file: {{path: out.jsonl}}\n",
        encoding="utf-8",
    )
    valid = _serve(tmp_path, "--config", str(config), "--check-config")
    assert valid.returncode == 0
    assert "valid" in valid.stdout
    assert not (tmp_path / "spool").exists()  # nothing was built or started
    config.write_text("receiver:\n  http: {idle_timeout_seconds: fast}\n", encoding="utf-8")
    invalid = _serve(tmp_path, "--config", str(config), "--check-config")
    assert invalid.returncode == 2
    assert "receiver.http.idle_timeout_seconds: input should be a valid number" in invalid.stderr
    missing = _serve(tmp_path, "--config", str(tmp_path / "nope.yaml"), "--check-config")
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [
        f"otel-bridge serve: {tmp_path / 'nope.yaml'}: cannot read config file: "
        "No such file or directory"
    ]


def test_usage_errors_exit_2_and_log_levels_take_any_case(tmp_path: Path) -> None:
    assert _serve(tmp_path, "--no-such-option").returncode == 2
    assert _serve(tmp_path, "--log-level", "debug", "--check-config").returncode == 0
