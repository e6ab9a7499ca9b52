"""LangChain to OpenTelemetry: a callback handler, finished traces and durable sink delivery."""

from __future__ import annotations

from typing import TYPE_CHECKING

from otel_bridge._lazy import lazy_exports

if TYPE_CHECKING:
    from otel_bridge._provider import configure_tracer_provider
    from otel_bridge.exporter import TraceExporter
    from otel_bridge.handler import OTelCallbackHandler
    from otel_bridge.ids import SeedProofIdGenerator
    from otel_bridge.instrumentation import LangChainBridgeInstrumentor, instrument, uninstrument
    from otel_bridge.langchain_views import FinishedTrace, RunEvent, TracedRun
    from otel_bridge.sink import DeliveryReport, PermanentError, RetryableError
    from otel_bridge.sink_handler import SinkCallbackHandler
    from otel_bridge.trace_tree import SpanRecord

__all__ = [
    "DeliveryReport",
    "FinishedTrace",
    "LangChainBridgeInstrumentor",
    "OTelCallbackHandler",
    "PermanentError",
    "RetryableError",
    "RunEvent",
    "SeedProofIdGenerator",
    "SinkCallbackHandler",
    "SpanRecord",
    "TraceExporter",
    "TracedRun",
    "configure_tracer_provider",
    "instrument",
    "uninstrument",
]

# Imported on first use so that `import otel_bridge` stays cheap for apps that only trace.
_LAZY = {
    "OTelCallbackHandler": "otel_bridge.handler",
    "instrument": "otel_bridge.instrumentation",
    "uninstrument": "otel_bridge.instrumentation",
    "LangChainBridgeInstrumentor": "otel_bridge.instrumentation",
    "TraceExporter": "otel_bridge.exporter",
    "FinishedTrace": "otel_bridge.langchain_views",
    "SpanRecord": "otel_bridge.trace_tree",
    "DeliveryReport": "otel_bridge.sink",
    "PermanentError": "otel_bridge.sink",
    "RetryableError": "otel_bridge.sink",
    "SeedProofIdGenerator": "otel_bridge.ids",
    "SinkCallbackHandler": "otel_bridge.sink_handler",
    "configure_tracer_provider": "otel_bridge._provider",
    "TracedRun": "otel_bridge.langchain_views",
    "RunEvent": "otel_bridge.langchain_views",
}

__getattr__ = lazy_exports(__name__, _LAZY)
