"""End to end through a real collector: app (OTel SDK OTLP exporters) -> rotel -> `otel-bridge
serve` (a subprocess) -> the file sink; plus crash-after-acknowledgement and SIGTERM shutdown.

rotel (PyPI `rotel`, a Rust OpenTelemetry collector) stands in for otelcol-contrib, which has no
installable build here; it is started by the tests on free loopback ports.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import rotel
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GRPCExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HTTPExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from otel_bridge.langchain_views import FinishedTrace
from otel_bridge.otlp import read_traces
from tests.support.collector import accepts_connections, free_port, wait_for
from tests.support.recording import recording_provider
from tests.support.serve import start_serve

ROTEL_BINARY = Path(rotel.__file__).parent / "rotel-agent"
DEADLINE_S = 30.0


def _wait_for_port(port: int, process: subprocess.Popen[str]) -> None:
    def listening() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"process exited early with {process.returncode}")
        return accepts_connections("127.0.0.1", port)

    wait_for(listening, f"a listener on port {port}", timeout=DEADLINE_S, interval=0.05)


@dataclass
class Bridge:
    process: subprocess.Popen[str]
    http_port: int
    grpc_port: int
    output: Path

    def traces(self) -> list[FinishedTrace]:
        return read_traces(self.output) if self.output.exists() else []

    def wait_for_trace(self, trace_id: int, spans: int = 1) -> FinishedTrace:
        """The trace once the file holds `spans` of its spans (a trace rotel sends in several
        requests lands in as many lines, as with the Collector's file exporter)."""
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            for trace in self.traces():
                if trace.trace_id == trace_id and len(trace.spans) >= spans:
                    return trace
            time.sleep(0.05)
        raise AssertionError(f"trace {trace_id:032x} did not reach {self.output}")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=DEADLINE_S)


def start_bridge(
    directory: Path, *, grace_period: float = 0.05, max_spool_bytes: int = 10**8
) -> Bridge:
    """`otel-bridge serve` with the file sink, a spool in `directory`, on free ports."""
    config = directory / "bridge.yaml"
    config.write_text(
        f"""
receiver:
  http: {{endpoint: "127.0.0.1:0"}}
  grpc: {{endpoint: "127.0.0.1:0"}}
  retry_after_seconds: 1
spool_dir: {directory / "spool"}
sinks:
  file:
    path: {directory / "traces.jsonl"}
    grace_period: {grace_period}
    max_trace_age: {max(grace_period, 60.0)}
    max_spool_bytes: {max_spool_bytes}
""",
        encoding="utf-8",
    )
    process, ports = start_serve(
        config, cwd=directory, stderr=subprocess.STDOUT, transports=("HTTP", "gRPC")
    )
    return Bridge(process, ports["HTTP"], ports["gRPC"], directory / "traces.jsonl")


@pytest.fixture
def bridge(tmp_path: Path) -> Iterator[Bridge]:
    started = start_bridge(tmp_path)
    yield started
    started.stop(signal.SIGKILL)


@dataclass
class Rotel:
    grpc_port: int
    http_port: int


@contextmanager
def running_rotel(bridge: Bridge, protocol: str, directory: Path) -> Iterator[Rotel]:
    """rotel forwarding to the bridge over OTLP/HTTP or OTLP/gRPC, retrying quickly."""
    grpc_port, http_port = free_port(), free_port()
    bridge_port = bridge.http_port if protocol == "http" else bridge.grpc_port
    arguments = {
        "--otlp-grpc-endpoint": f"127.0.0.1:{grpc_port}",
        "--otlp-http-endpoint": f"127.0.0.1:{http_port}",
        "--exporter": "otlp",
        "--otlp-exporter-endpoint": f"http://127.0.0.1:{bridge_port}",
        "--otlp-exporter-protocol": protocol,
        "--batch-timeout": "50ms",
        "--otlp-exporter-retry-initial-backoff": "200ms",
        "--otlp-exporter-retry-max-backoff": "1s",
        "--pid-file": str(directory / "rotel.pid"),
        "--log-file": str(directory / "rotel.log"),
    }
    process = subprocess.Popen(
        [str(ROTEL_BINARY), "start", *(item for pair in arguments.items() for item in pair)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(grpc_port, process)
        _wait_for_port(http_port, process)
        yield Rotel(grpc_port, http_port)
    finally:
        process.terminate()
        process.wait(timeout=DEADLINE_S)


@pytest.fixture(params=["http", "grpc"])
def rotel_to_bridge(
    request: pytest.FixtureRequest, bridge: Bridge, tmp_path: Path
) -> Iterator[tuple[Rotel, Bridge]]:
    with running_rotel(bridge, request.param, tmp_path) as collector:
        yield collector, bridge


def _app_trace(exporter: SpanExporter) -> list[ReadableSpan]:
    """An app's trace, exported through `exporter`: a chain with an LLM call and a failed tool."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "rotel-e2e"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("e2e", "1.0")
    with tracer.start_as_current_span("chain", attributes={"langchain.run.type": "chain"}):
        with tracer.start_as_current_span("llm", attributes={"gen_ai.usage.input_tokens": 12}):
            pass
        with tracer.start_as_current_span("tool") as tool:
            tool.set_status(Status(StatusCode.ERROR, "tool failed"))
    provider.shutdown()
    return list(memory.get_finished_spans())


@pytest.mark.parametrize("app_protocol", ["http", "grpc"])
def test_app_to_rotel_to_bridge_delivers_the_whole_trace(
    rotel_to_bridge: tuple[Rotel, Bridge], app_protocol: str
) -> None:
    collector, bridge = rotel_to_bridge
    exporter = (
        HTTPExporter(endpoint=f"http://127.0.0.1:{collector.http_port}/v1/traces")
        if app_protocol == "http"
        else GRPCExporter(endpoint=f"127.0.0.1:{collector.grpc_port}", insecure=True)
    )
    sent = _app_trace(exporter)
    assert sent[0].context is not None
    trace = bridge.wait_for_trace(sent[0].context.trace_id, spans=3)
    by_name = {span.name: span for span in trace.spans}
    assert sorted(by_name) == ["chain", "llm", "tool"]
    assert by_name["llm"].parent_span_id == by_name["chain"].span_id
    assert by_name["tool"].parent_span_id == by_name["chain"].span_id
    assert by_name["chain"].parent_span_id is None
    assert by_name["llm"].attributes["gen_ai.usage.input_tokens"] == 12
    assert by_name["tool"].status_code == "ERROR"
    assert by_name["tool"].status_description == "tool failed"
    assert by_name["chain"].resource["service.name"] == "rotel-e2e"
    assert not trace.partial


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_a_file_that_cannot_be_written_pushes_back_on_the_collector_and_nothing_is_lost(
    tmp_path: Path, protocol: str
) -> None:
    """The file sink writes each request before acknowledging it. While its file cannot be
    written (a directory stands where it goes) the bridge answers 503 (or UNAVAILABLE), rotel
    keeps retrying, and once the file can be written rotel's retry gets the trace in, once."""
    blocker = tmp_path / "traces.jsonl"
    blocker.mkdir()
    bridge = start_bridge(tmp_path)
    try:
        with running_rotel(bridge, protocol, tmp_path) as collector:
            sent = _app_trace(
                HTTPExporter(endpoint=f"http://127.0.0.1:{collector.http_port}/v1/traces")
            )
            time.sleep(2.0)  # rotel's first attempts meet the directory (checked below)
            blocker.rmdir()
            assert sent[0].context is not None
            trace = bridge.wait_for_trace(sent[0].context.trace_id, spans=3)
            assert sorted(span.name for span in trace.spans) == ["chain", "llm", "tool"]
    finally:
        bridge.stop(signal.SIGTERM)
    assert len(bridge.traces()) == 1
    assert bridge.process.stdout is not None
    assert "file not writable" in bridge.process.stdout.read()  # refused at first


def test_a_crash_after_acknowledgement_loses_nothing(tmp_path: Path) -> None:
    """SIGKILL right after a 200: the request is in the file already (written before the
    answer); a client resending it to the restarted bridge (its acknowledgement lost) does not
    get its spans written twice."""
    first = start_bridge(tmp_path, grace_period=3600.0)
    exporter = HTTPExporter(endpoint=f"http://127.0.0.1:{first.http_port}/v1/traces")
    provider, memory = recording_provider()
    tracer = provider.get_tracer("crash")
    with tracer.start_as_current_span("root"), tracer.start_as_current_span("child"):
        pass
    spans = list(memory.get_finished_spans())
    assert exporter.export(spans) is SpanExportResult.SUCCESS  # the bridge answered 200
    exporter.shutdown()
    assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    assert spans[0].context is not None
    assert [t.trace_id for t in first.traces()] == [spans[0].context.trace_id]

    second = start_bridge(tmp_path, grace_period=0.05)
    try:
        resend = HTTPExporter(endpoint=f"http://127.0.0.1:{second.http_port}/v1/traces")
        assert resend.export(spans) is SpanExportResult.SUCCESS
        resend.shutdown()
        (trace,) = second.traces()
        assert sorted(span.name for span in trace.spans) == ["child", "root"]
    finally:
        second.stop(signal.SIGKILL)


def test_sigterm_stops_accepting_flushes_and_exits_cleanly(tmp_path: Path) -> None:
    bridge = start_bridge(tmp_path, grace_period=3600.0)
    exporter = HTTPExporter(endpoint=f"http://127.0.0.1:{bridge.http_port}/v1/traces")
    provider, memory = recording_provider()
    with provider.get_tracer("term").start_as_current_span("root"):
        pass
    spans = list(memory.get_finished_spans())
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    exporter.shutdown()
    assert bridge.stop(signal.SIGTERM) == 0
    assert bridge.process.stdout is not None
    assert "otel-bridge serve: stopped" in bridge.process.stdout.read()
    # Shutdown flushes: the trace whose root arrived is delivered despite the long grace period.
    assert spans[0].context is not None
    assert [t.trace_id for t in bridge.traces()] == [spans[0].context.trace_id]
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", bridge.http_port), timeout=1).close()
