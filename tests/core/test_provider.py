"""Which TracerProvider the handler uses: the user's global SDK provider, one built from the
`OTEL_*` variables plus the given exporters, or none (with one warning).

These tests are about the *global* provider, which the OTel API lets a process set only once;
an autouse fixture saves and restores it around each test. The OTLP test exports over real
OTLP/HTTP to a loopback receiver that decodes the protobuf request.
"""

from __future__ import annotations

import gzip
import logging
import random
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import otel_bridge
from otel_bridge import _provider
from otel_bridge.handler import OTelCallbackHandler
from otel_bridge.testing import FakeChatModel
from tests.support.recording import recording_provider

_OTEL_VARIABLES = (
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
)


@pytest.fixture(autouse=True)
def fresh_global_provider(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in _OTEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    saved = (trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE._done)
    trace._TRACER_PROVIDER = None
    trace._TRACER_PROVIDER_SET_ONCE._done = False
    monkeypatch.setattr(_provider, "_warned_no_provider", False)
    yield
    installed = trace._TRACER_PROVIDER
    if isinstance(installed, TracerProvider):
        installed.shutdown()
    trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE._done = saved


def test_uses_the_global_sdk_provider_and_adds_exporters_to_it() -> None:
    users_provider, users_exporter = recording_provider()
    trace.set_tracer_provider(users_provider)
    sink = InMemorySpanExporter()
    handler = OTelCallbackHandler(exporters=[sink])
    # A second handler with the same exporter does not wire it twice.
    OTelCallbackHandler(exporters=[sink])
    FakeChatModel().invoke("x", {"callbacks": [handler]})
    assert users_provider.force_flush()
    assert [s.name for s in users_exporter.get_finished_spans()] == ["chat fake-chat-model"]
    assert [s.name for s in sink.get_finished_spans()] == ["chat fake-chat-model"]
    assert trace.get_tracer_provider() is users_provider


def test_builds_a_provider_from_env_when_exporters_are_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "checkout")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test,team=ml")
    sink = InMemorySpanExporter()
    handler = OTelCallbackHandler(exporters=[sink])
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    FakeChatModel().invoke("x", {"callbacks": [handler]})
    assert provider.force_flush()
    (span,) = sink.get_finished_spans()
    assert span.resource.attributes["service.name"] == "checkout"
    assert span.resource.attributes["deployment.environment"] == "test"
    assert span.resource.attributes["team"] == "ml"


def test_sampler_comes_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    sink = InMemorySpanExporter()
    handler = OTelCallbackHandler(exporters=[sink])
    FakeChatModel().invoke("x", {"callbacks": [handler]})
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider) and provider.force_flush()
    assert sink.get_finished_spans() == ()
    assert handler.open_runs == 0


class _OTLPReceiver(BaseHTTPRequestHandler):
    received: list[ExportTraceServiceRequest]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        encoding = self.headers.get("Content-Encoding")
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        type(self).received.append(request)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_otlp_exporter_when_the_endpoint_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    class Receiver(_OTLPReceiver):
        received: list[ExportTraceServiceRequest] = []

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
        # No exporters at all: the endpoint alone is enough to build a provider.
        provider = otel_bridge.configure_tracer_provider()
        assert trace.get_tracer_provider() is provider
        callback = OTelCallbackHandler()
        FakeChatModel().invoke("x", {"callbacks": [callback]})
        assert provider.force_flush()
    finally:
        server.shutdown()
        server.server_close()
    names = [
        span.name
        for request in Receiver.received
        for resource_spans in request.resource_spans
        for scope_spans in resource_spans.scope_spans
        for span in scope_spans.spans
    ]
    assert names == ["chat fake-chat-model"]


def test_without_provider_or_exporters_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="otel_bridge"):
        first = OTelCallbackHandler()
        OTelCallbackHandler()
        FakeChatModel().invoke("x", {"callbacks": [first]})
    warnings = [r.getMessage() for r in caplog.records if r.name == "otel_bridge"]
    assert len(warnings) == 1
    assert "spans go nowhere" in warnings[0] and "exporters=[...]" in warnings[0]
    assert first.open_runs == 0


def test_exporters_need_an_sdk_provider() -> None:
    with pytest.raises(TypeError, match="SDK TracerProvider"):
        OTelCallbackHandler(
            tracer_provider=trace.NoOpTracerProvider(), exporters=[InMemorySpanExporter()]
        )


def test_an_explicit_provider_wins_over_the_global_one() -> None:
    global_provider, global_exporter = recording_provider()
    trace.set_tracer_provider(global_provider)
    own_provider, own_exporter = recording_provider()
    handler = OTelCallbackHandler(tracer_provider=own_provider)
    FakeChatModel().invoke("x", {"callbacks": [handler]})
    assert len(own_exporter.get_finished_spans()) == 1
    assert global_exporter.get_finished_spans() == ()


def test_a_built_provider_keeps_trace_ids_unique_when_random_is_reseeded() -> None:
    memory = InMemorySpanExporter()
    handler = OTelCallbackHandler(exporters=[memory])
    for _ in range(2):
        random.seed(1337)  # what ClearML's Task.init does by default
        FakeChatModel().invoke("x", {"callbacks": [handler]})
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider) and provider.force_flush()
    assert len({span.context.trace_id for span in memory.get_finished_spans()}) == 2
