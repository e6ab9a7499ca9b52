"""Choosing the TracerProvider spans go to: the user's SDK provider, or one built from `OTEL_*`."""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from otel_bridge.ids import SeedProofIdGenerator

__all__ = ["configure_tracer_provider", "resolve_tracer_provider"]

logger = logging.getLogger("otel_bridge")

_lock = threading.Lock()
# Exporters already wired to a provider, so building two handlers with one exporter (or calling
# instrument() twice) does not export every span twice.
_wired: weakref.WeakKeyDictionary[TracerProvider, set[int]] = weakref.WeakKeyDictionary()
_warned_no_provider = False

NO_PROVIDER_WARNING = (
    "otel-bridge: no OpenTelemetry SDK TracerProvider is configured and no exporters were "
    "given, so LangChain spans go nowhere. Pass exporters=[...] to OTelCallbackHandler / "
    "instrument(), set OTEL_EXPORTER_OTLP_ENDPOINT and call otel_bridge.configure_tracer_provider(), "
    "or install your own with opentelemetry.trace.set_tracer_provider(...)."
)


def _otlp_endpoint_set() -> bool:
    return bool(
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    )


def _otlp_exporter() -> SpanExporter | None:
    """The OTLP span exporter the standard env vars ask for, if any endpoint is set."""
    if not _otlp_endpoint_set():
        return None
    protocol = (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    )
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcSpanExporter,
        )

        return GrpcSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def _wire(provider: TracerProvider, exporters: Sequence[SpanExporter]) -> None:
    with _lock:
        wired = _wired.setdefault(provider, set())
        for exporter in exporters:
            if id(exporter) in wired:
                continue
            wired.add(id(exporter))
            provider.add_span_processor(BatchSpanProcessor(exporter))


def configure_tracer_provider(
    exporters: Sequence[SpanExporter] = (), *, set_global: bool = True
) -> TracerProvider:
    """An SDK TracerProvider from the standard `OTEL_*` variables plus `exporters`.

    If an SDK provider is already installed globally it is reused and `exporters` are added to
    it. Otherwise a new one is built: resource from `OTEL_SERVICE_NAME` /
    `OTEL_RESOURCE_ATTRIBUTES`, sampler from `OTEL_TRACES_SAMPLER(_ARG)`, an OTLP exporter when
    `OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT` is set, and each of `exporters`, all behind
    BatchSpanProcessors; with `set_global` it becomes the global provider so other
    instrumentation (HTTP clients, web frameworks) reports into the same traces.
    """
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        _wire(current, exporters)
        return current
    # The SDK reads the sampler and resource variables itself. Ids come from os.urandom:
    # libraries that reseed `random` (ClearML) must not make trace ids repeat across runs.
    provider = TracerProvider(resource=Resource.create(), id_generator=SeedProofIdGenerator())
    otlp = _otlp_exporter()
    _wire(provider, [*([otlp] if otlp is not None else []), *exporters])
    if set_global:
        trace.set_tracer_provider(provider)
    return provider


def resolve_tracer_provider(
    tracer_provider: trace.TracerProvider | None, exporters: Sequence[SpanExporter]
) -> trace.TracerProvider:
    """The provider a handler uses: the given one, else the global SDK one, else a new one."""
    global _warned_no_provider
    if tracer_provider is not None:
        if exporters:
            if not isinstance(tracer_provider, TracerProvider):
                raise TypeError(
                    "exporters=[...] needs an SDK TracerProvider to attach them to, got "
                    f"{type(tracer_provider).__name__}"
                )
            _wire(tracer_provider, exporters)
        return tracer_provider
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider) or exporters or _otlp_endpoint_set():
        return configure_tracer_provider(exporters)
    with _lock:
        if not _warned_no_provider:
            _warned_no_provider = True
            logger.warning(NO_PROVIDER_WARNING)
    # The global proxy: if the app installs a provider later, spans start flowing to it.
    return current
