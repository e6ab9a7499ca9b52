"""The demo's OpenTelemetry pipeline: a TracerProvider feeding an in-memory copy (for the terminal
tree), the OTLP JSON lines file, OTLP when configured and the sinks; a MeterProvider whose
metrics the demo reads back for its summary."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_bridge.langchain_views import FinishedTrace

__all__ = [
    "DEMO_SERVICE_NAME",
    "DemoPipeline",
    "OTLPDestination",
    "build_pipeline",
    "otlp_destination",
]

DEMO_SERVICE_NAME = "otel-bridge-demo"

# The variables the OTLP exporter reads (OpenTelemetry specification, "OTLP Exporter").
_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
_PROTOCOL_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
# The specification's default protocol for OTLP exporters.
_DEFAULT_PROTOCOL = "http/protobuf"


@dataclass(frozen=True, slots=True)
class OTLPDestination:
    endpoint: str
    protocol: str


@dataclass(frozen=True, slots=True)
class DemoPipeline:
    """Providers the handler writes to, and the readers the demo's summary comes from."""

    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    metric_reader: InMemoryMetricReader
    spans: InMemorySpanExporter

    def finished_traces(self) -> list[FinishedTrace]:
        """Every trace the app produced so far, in the order their first span started."""
        by_trace = defaultdict(list)
        for span in self.spans.get_finished_spans():
            if span.context is not None:
                by_trace[span.context.trace_id].append(span)
        traces = [FinishedTrace.from_spans(spans) for spans in by_trace.values()]
        return sorted(traces, key=lambda t: t.spans[0].start_time_ns)

    def add_exporters(self, exporters: Sequence[SpanExporter]) -> None:
        """Send spans to `exporters` too, each behind its own BatchSpanProcessor."""
        for exporter in exporters:
            self.tracer_provider.add_span_processor(BatchSpanProcessor(exporter))

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


def otlp_destination(environ: Mapping[str, str]) -> OTLPDestination | None:
    """Where OTLP goes per the standard variables, or None when no endpoint is set."""
    endpoint = next((environ[v] for v in _ENDPOINT_VARIABLES if environ.get(v)), None)
    if endpoint is None:
        return None
    protocol = next((environ[v] for v in _PROTOCOL_VARIABLES if environ.get(v)), _DEFAULT_PROTOCOL)
    return OTLPDestination(endpoint=endpoint, protocol=protocol)


def build_pipeline(otlp: OTLPDestination | None) -> DemoPipeline:
    """A provider pair for the service `otel-bridge-demo` (OTEL_SERVICE_NAME and
    OTEL_RESOURCE_ATTRIBUTES still apply), exporting OTLP to `otlp` when given, as an app's own
    setup would."""
    resource = Resource.create({SERVICE_NAME: DEMO_SERVICE_NAME})
    tracer_provider = TracerProvider(resource=resource)
    spans = InMemorySpanExporter()
    # Synchronous on purpose: the terminal tree must hold every span once the app returns.
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    metric_reader = InMemoryMetricReader()
    meter_provider = MeterProvider(resource=resource, metric_readers=[metric_reader])
    pipeline = DemoPipeline(tracer_provider, meter_provider, metric_reader, spans)
    if otlp is not None:
        pipeline.add_exporters([_otlp_exporter(otlp)])
    return pipeline


def _otlp_exporter(destination: OTLPDestination) -> SpanExporter:
    # The exporters read the endpoint, headers, TLS and timeout variables themselves.
    if destination.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HTTPSpanExporter,
    )

    return HTTPSpanExporter()
