"""The base of every sink's drop-in callback handler: its runs, and only its runs, feed one sink."""

from __future__ import annotations

from typing import Any

from opentelemetry import context, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider

from otel_bridge.exporter import TraceExporter
from otel_bridge.handler import OTelCallbackHandler
from otel_bridge.ids import SeedProofIdGenerator

__all__ = ["SinkCallbackHandler"]


class _AlsoToGlobalProvider(SpanProcessor):
    """Hands every span to the processors of the app's global SDK TracerProvider, if any.

    Looked up per span, so a provider the app installs after the handler was built still
    receives them.
    """

    def __init__(self, own: TracerProvider) -> None:
        self._own = own

    def _global(self) -> SpanProcessor | None:
        provider = trace.get_tracer_provider()
        if provider is self._own or not isinstance(provider, TracerProvider):
            return None
        processor: SpanProcessor | None = getattr(provider, "_active_span_processor", None)
        return processor

    def on_start(self, span: Span, parent_context: context.Context | None = None) -> None:
        processor = self._global()
        if processor is not None:
            processor.on_start(span, parent_context=parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        processor = self._global()
        if processor is not None:
            processor.on_end(span)


def _own_provider() -> TracerProvider:
    provider = TracerProvider(resource=Resource.create(), id_generator=SeedProofIdGenerator())
    provider.add_span_processor(_AlsoToGlobalProvider(provider))
    return provider


class SinkCallbackHandler(OTelCallbackHandler):
    """An `OTelCallbackHandler` whose spans feed `exporter`, for the sinks' drop-in handlers.

    Like the langchain_community handlers these replace, the sink receives exactly the runs the
    handler was passed: it traces through a TracerProvider of its own, whose spans also reach
    the processors of the app's global SDK TracerProvider when one is installed, so the app's
    own pipeline (OTLP, a Collector) still sees them. With `tracer_provider` given, the exporter
    is attached to that provider instead and receives everything it traces.
    """

    def __init__(
        self,
        exporter: TraceExporter,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        **handler_options: Any,
    ) -> None:
        self.exporter = exporter
        self._own: TracerProvider | None = _own_provider() if tracer_provider is None else None
        self._provider = self._own or tracer_provider
        try:
            super().__init__(
                tracer_provider=self._provider,
                exporters=[exporter],
                **handler_options,
            )
        except BaseException:
            # Nothing will feed the exporter: stop its delivery thread and release its spool.
            exporter.shutdown()
            raise
        if not self.capture_content:
            exporter.warn_without_content()

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Deliver everything traced so far; True when nothing is left pending in time."""
        timeout_ms = int(timeout_s * 1000)
        spans_handed_over = True
        if isinstance(self._provider, TracerProvider):
            spans_handed_over = self._provider.force_flush(timeout_ms)
        return spans_handed_over and self.exporter.force_flush(timeout_ms)

    def shutdown(self) -> None:
        """Deliver what is pending (within the exporter's shutdown timeout) and stop."""
        if self._own is not None:
            self._own.shutdown()
        else:
            self.exporter.shutdown()
