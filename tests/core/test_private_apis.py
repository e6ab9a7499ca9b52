"""The private attributes of the SDK and LangChain that otel_bridge._private relies on still exist
with the shape and behaviour it uses; when an upgrade changes one, this file fails, naming it."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler, CallbackManager
from langchain_core.tracers import context as tracer_context
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_bridge import _private


def test_tracer_provider_has_an_active_span_processor_that_reaches_every_added_processor() -> None:
    provider = TracerProvider()
    assert hasattr(provider, "_active_span_processor"), (
        "opentelemetry-sdk's TracerProvider lost _active_span_processor: "
        "otel_bridge._private.provider_span_processor needs another way"
    )
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    processor = _private.provider_span_processor(provider)
    assert isinstance(processor, SpanProcessor)

    # What the drop-in handler does: spans of another provider handed to this one's processors.
    other = TracerProvider()
    span = other.get_tracer("test").start_span("handed over")
    processor.on_start(span)  # type: ignore[arg-type]
    span.end()
    assert isinstance(span, ReadableSpan)
    processor.on_end(span)
    assert [s.name for s in exporter.get_finished_spans()] == ["handed over"]


class _Marker(BaseCallbackHandler):
    pass


def test_langchain_configure_hooks_is_the_list_register_configure_hook_appends_to() -> None:
    hooks = getattr(tracer_context, "_configure_hooks", None)
    assert isinstance(hooks, list), (
        "langchain_core.tracers.context._configure_hooks is gone or no longer a list: "
        "otel_bridge._private.unregister_configure_hook needs another way"
    )
    marker = _Marker()
    var: ContextVar[Any] = ContextVar("otel_bridge_private_api_test", default=None)
    var.set(marker)
    tracer_context.register_configure_hook(var, True, _Marker, None)
    hook = (var, True, _Marker, None)
    try:
        assert hooks[-1] == hook, "a registered hook is no longer the 4-tuple we remove"
        assert _private.configure_hook_registered(hook)
        assert marker in CallbackManager.configure().handlers
    finally:
        _private.unregister_configure_hook(hook)
    assert not _private.configure_hook_registered(hook)
    # Removed from the list, the hook no longer adds its handler to new callback managers.
    assert marker not in CallbackManager.configure().handlers
