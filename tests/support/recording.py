"""A real SDK tracer provider whose spans land in memory, and the points a metric reader holds."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


def recording_provider(
    exporter: InMemorySpanExporter | None = None,
) -> tuple[TracerProvider, InMemorySpanExporter]:
    """A `TracerProvider` handing each span to `exporter` (a new one if not given) as it ends."""
    if exporter is None:
        exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def metric_points(reader: InMemoryMetricReader, name: str) -> list[Any]:
    """Every data point of the metric called `name`, over all resources and scopes."""
    data = reader.get_metrics_data()
    assert data is not None
    return [
        point
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == name
        for point in metric.data.data_points
    ]
