"""The receiver's own metrics: requests by status, spans accepted/rejected, spool state."""

from __future__ import annotations

import http.client
from pathlib import Path
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otel_bridge import otlp
from otel_bridge.file_sink import FileSpanExporter
from otel_bridge.receiver import Receiver, Sink, parse_config
from otel_bridge.receiver.telemetry import (
    METRIC_REQUESTS,
    METRIC_SPANS_ACCEPTED,
    METRIC_SPANS_REJECTED,
    METRIC_SPOOL_BYTES,
    METRIC_SPOOL_FULL,
)
from tests.contract import make_spans


def _points(reader: InMemoryMetricReader) -> dict[str, list[tuple[dict[str, Any], float]]]:
    data = reader.get_metrics_data()
    assert data is not None
    points: dict[str, list[tuple[dict[str, Any], float]]] = {}
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                points[metric.name] = [
                    (dict(point.attributes or {}), point.value)  # type: ignore[union-attr]
                    for point in metric.data.data_points
                ]
    return points


def test_requests_spans_and_spool_are_measured(tmp_path: Path) -> None:
    reader = InMemoryMetricReader()
    sink = FileSpanExporter(  # lines="trace": requests spooled, as to every remote sink
        tmp_path / "out.jsonl",
        lines="trace",
        spool_dir=tmp_path,
        grace_period=3600.0,
        max_trace_age=3600.0,
    )
    config = parse_config({"receiver": {"http": {"endpoint": "127.0.0.1:0"}, "grpc": False}})
    receiver = Receiver(config, [Sink("file", sink)], meter_provider=MeterProvider([reader]))
    receiver.start()
    try:
        request = otlp.request_from_spans(make_spans())
        request.resource_spans[0].scope_spans[0].spans[0].span_id = b""
        for body in (request.SerializeToString(), b"\xff\xff"):
            connection = http.client.HTTPConnection("127.0.0.1", receiver.http_port or 0)
            connection.request(
                "POST", "/v1/traces", body, {"Content-Type": "application/x-protobuf"}
            )
            connection.getresponse().read()
            connection.close()
        points = _points(reader)
    finally:
        receiver.stop()
    assert sorted((p["status"], v) for p, v in points[METRIC_REQUESTS]) == [("200", 1), ("400", 1)]
    assert points[METRIC_SPANS_ACCEPTED] == [({"transport": "http"}, 2)]
    assert points[METRIC_SPANS_REJECTED] == [({"transport": "http"}, 1)]
    assert points[METRIC_SPOOL_FULL] == [({"sink": "file"}, 0)]
    ((attributes, spool_bytes),) = points[METRIC_SPOOL_BYTES]
    assert attributes == {"sink": "file"}
    assert spool_bytes > 0
