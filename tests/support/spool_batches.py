"""Spans for `Spool.add` in tests: detached `SpanRecord`s (comparable, reusable) encoded as the
OTLP protobuf the spool stores, and the bytes each one counts for against the spool's limit."""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otel_bridge.otlp_wire import encode_record, resource_part, scope_part, span_field, traces_data
from otel_bridge.spool import SpanBatch
from otel_bridge.trace_tree import SpanRecord


def batch(records: Iterable[SpanRecord]) -> SpanBatch:
    """The records as one batch, each with its own resource and scope."""
    spans = SpanBatch()
    scopes: dict[tuple[bytes, bytes], int] = {}
    for record in records:
        pair = (resource_part(record.resource), scope_part(record.scope_name, record.scope_version))
        index = scopes.setdefault(pair, len(scopes))
        if index == len(spans.scopes):
            spans.scopes.append(pair)
        spans.spans.append(
            (
                record.trace_id.to_bytes(16, "big"),
                record.span_id.to_bytes(8, "big"),
                record.is_local_root,
                index,
                encode_record(record),
            )
        )
    return spans


def stored_size(record: SpanRecord) -> int:
    """What the span counts for in the spool's byte count."""
    return len(encode_record(record))


def request_of(records: Iterable[SpanRecord]) -> ExportTraceServiceRequest:
    """The records as one OTLP request, grouped by resource and scope, as the spool stores them."""
    groups: dict[bytes, dict[bytes, list[bytes]]] = {}
    for record in records:
        resource = resource_part(record.resource)
        scope = scope_part(record.scope_name, record.scope_version)
        groups.setdefault(resource, {}).setdefault(scope, []).append(
            span_field(encode_record(record))
        )
    data = traces_data(
        (resource, [(scope, b"".join(spans)) for scope, spans in scopes.items()])
        for resource, scopes in groups.items()
    )
    return ExportTraceServiceRequest.FromString(data)
