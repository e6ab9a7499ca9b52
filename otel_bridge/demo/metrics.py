"""Summarize the GenAI client metrics (operation duration, token usage) per operation and model,
from the SDK's collected `MetricsData`, and show the summary as a table."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from opentelemetry.sdk.metrics.export import (
    HistogramDataPoint,
    Metric,
    MetricsData,
    NumberDataPoint,
)
from rich.table import Table

from otel_bridge import semconv

__all__ = [
    "DeliveryCounts",
    "ModelUsage",
    "render_usage",
    "summarize_delivery",
    "summarize_genai_metrics",
]

# The exporters' health counters (otel_bridge.delivery), labelled with the sink's name.
_DELIVERY_PREFIX = "otel_bridge.delivery."
_SINK_ATTRIBUTE = "otel_bridge.sink"
_TOKEN_TYPE_INPUT = "input"
_TOKEN_TYPE_OUTPUT = "output"


@dataclass(frozen=True, slots=True)
class ModelUsage:
    """What one model did for one operation: calls, time spent, tokens, failures."""

    operation: str
    model: str
    calls: int = 0
    failed_calls: int = 0
    duration_s: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True, slots=True)
class DeliveryCounts:
    """What one sink exporter reported about its deliveries, in traces."""

    delivered: int = 0
    retried: int = 0
    dead_lettered: int = 0


def summarize_delivery(data: MetricsData | None) -> dict[str, DeliveryCounts]:
    """Per sink name, the `otel_bridge.delivery.*` counters the exporters recorded."""
    fields = {"delivered", "retried", "dead_lettered"}
    counts: dict[str, DeliveryCounts] = {}
    for metric in _metrics(data):
        field_name = metric.name.removeprefix(_DELIVERY_PREFIX)
        if not metric.name.startswith(_DELIVERY_PREFIX) or field_name not in fields:
            continue
        for point in metric.data.data_points:
            if not isinstance(point, NumberDataPoint):
                continue
            sink = str((point.attributes or {}).get(_SINK_ATTRIBUTE, ""))
            current = counts.get(sink, DeliveryCounts())
            total = getattr(current, field_name) + int(point.value)
            counts[sink] = replace(current, **{field_name: total})
    return counts


def summarize_genai_metrics(data: MetricsData | None) -> tuple[ModelUsage, ...]:
    """One row per (operation, model), from `gen_ai.client.operation.duration` and
    `gen_ai.client.token.usage`; other metrics are ignored."""
    rows: dict[tuple[str, str], ModelUsage] = {}
    for point, metric_name in _histogram_points(data):
        operation, model = _operation_and_model(point.attributes or {})
        row = rows.get((operation, model)) or ModelUsage(operation=operation, model=model)
        if metric_name == semconv.METRIC_OPERATION_DURATION:
            failed = point.count if (point.attributes or {}).get(semconv.ERROR_TYPE) else 0
            row = replace(
                row,
                calls=row.calls + point.count,
                failed_calls=row.failed_calls + failed,
                duration_s=row.duration_s + point.sum,
            )
        else:
            token_type = (point.attributes or {}).get(semconv.GEN_AI_TOKEN_TYPE)
            if token_type == _TOKEN_TYPE_INPUT:
                row = replace(row, input_tokens=row.input_tokens + int(point.sum))
            elif token_type == _TOKEN_TYPE_OUTPUT:
                row = replace(row, output_tokens=row.output_tokens + int(point.sum))
        rows[(operation, model)] = row
    return tuple(sorted(rows.values(), key=lambda r: (r.operation, r.model)))


def render_usage(rows: tuple[ModelUsage, ...]) -> Table:
    """The summary as a table, one line per operation and model."""
    table = Table(title="GenAI metrics", title_justify="left", title_style="bold")
    table.add_column("operation")
    table.add_column("model", style="magenta")
    table.add_column("calls", justify="right")
    table.add_column("failed", justify="right")
    table.add_column("total time", justify="right")
    table.add_column("mean time", justify="right")
    table.add_column("input tokens", justify="right", style="green")
    table.add_column("output tokens", justify="right", style="green")
    for row in rows:
        mean = row.duration_s / row.calls if row.calls else 0.0
        table.add_row(
            row.operation,
            row.model,
            str(row.calls),
            str(row.failed_calls),
            f"{row.duration_s:.3f} s",
            f"{mean:.3f} s",
            str(row.input_tokens),
            str(row.output_tokens),
        )
    return table


def _histogram_points(data: MetricsData | None) -> list[tuple[HistogramDataPoint, str]]:
    wanted = {semconv.METRIC_OPERATION_DURATION, semconv.METRIC_TOKEN_USAGE}
    return [
        (point, metric.name)
        for metric in _metrics(data)
        if metric.name in wanted
        for point in metric.data.data_points
        if isinstance(point, HistogramDataPoint)
    ]


def _metrics(data: MetricsData | None) -> list[Metric]:
    return [
        metric
        for resource_metrics in (data.resource_metrics if data else ())
        for scope_metrics in resource_metrics.scope_metrics
        for metric in scope_metrics.metrics
    ]


def _operation_and_model(attributes: Mapping[str, object]) -> tuple[str, str]:
    operation = attributes.get(semconv.GEN_AI_OPERATION_NAME)
    model = attributes.get(semconv.GEN_AI_RESPONSE_MODEL) or attributes.get(
        semconv.GEN_AI_REQUEST_MODEL
    )
    return str(operation or "-"), str(model or "-")
