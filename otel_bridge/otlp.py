"""The OTLP trace codec: protobuf and OTLP JSON to SDK spans and back, and finished traces as
OTLP JSON lines in the OpenTelemetry Collector file exporter format.

Pure functions only (no I/O besides `read_traces`), shared by the receiver, the `file` sink and
`otel-bridge tree`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    KeyValue,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope as SdkScope
from opentelemetry.trace import Link, SpanContext, SpanKind, TraceFlags, TraceState
from opentelemetry.trace.status import Status as SdkStatus
from opentelemetry.trace.status import StatusCode

from otel_bridge.langchain_views import FinishedTrace
from otel_bridge.otlp_json import traces_data_json
from otel_bridge.otlp_wire import (
    encode_record,
    resource_part,
    scope_part,
    span_field,
    traces_data,
)
from otel_bridge.trace_tree import AttributeValue, EventRecord, LinkRecord, SpanRecord

__all__ = [
    "DEFAULT_FILE_NAME",
    "OTLPDecodeError",
    "RejectedSpans",
    "accepted_spans",
    "decode_json",
    "decode_protobuf",
    "encode_json",
    "export_response",
    "invalid_ids",
    "read_traces",
    "records_from_request",
    "request_from_spans",
    "span_count",
    "spans_from_request",
    "trace_from_traces_data",
    "trace_to_json_line",
    "traces_data_of",
    "traces_from_json_lines",
]

DEFAULT_FILE_NAME = "otel-bridge-traces.jsonl"

# Bits of Span.flags defined by the OTLP proto (trace.proto, SpanFlags).
_FLAGS_TRACE_FLAGS_MASK = 0x000000FF
_FLAGS_HAS_IS_REMOTE = 0x00000100
_FLAGS_IS_REMOTE = 0x00000200

_PROTO_KIND_TO_SDK = {
    Span.SPAN_KIND_UNSPECIFIED: SpanKind.INTERNAL,
    Span.SPAN_KIND_INTERNAL: SpanKind.INTERNAL,
    Span.SPAN_KIND_SERVER: SpanKind.SERVER,
    Span.SPAN_KIND_CLIENT: SpanKind.CLIENT,
    Span.SPAN_KIND_PRODUCER: SpanKind.PRODUCER,
    Span.SPAN_KIND_CONSUMER: SpanKind.CONSUMER,
}
_PROTO_STATUS_TO_SDK = {
    Status.STATUS_CODE_UNSET: StatusCode.UNSET,
    Status.STATUS_CODE_OK: StatusCode.OK,
    Status.STATUS_CODE_ERROR: StatusCode.ERROR,
}
_KIND_NAMES = {proto: sdk.name for proto, sdk in _PROTO_KIND_TO_SDK.items()}
_STATUS_NAMES = {proto: sdk.name for proto, sdk in _PROTO_STATUS_TO_SDK.items()}

_SCALAR_KINDS = frozenset({"string_value", "bool_value", "int_value", "double_value"})

# OTLP JSON writes these bytes fields as hex, where proto3's JSON mapping would use base64.
_HEX_ID_FIELDS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")


class OTLPDecodeError(ValueError):
    """The bytes are not a valid OTLP ExportTraceServiceRequest in the claimed encoding."""


@dataclass(frozen=True, slots=True)
class RejectedSpans:
    """Spans of an otherwise valid request that cannot be accepted (sent as partial_success)."""

    count: int
    reason: str


# --- wire formats ------------------------------------------------------------------------------


def decode_protobuf(body: bytes) -> ExportTraceServiceRequest:
    """Parse a binary protobuf ExportTraceServiceRequest; an empty body is an empty request."""
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except (DecodeError, RuntimeError) as exc:
        raise OTLPDecodeError(f"invalid protobuf ExportTraceServiceRequest: {exc}") from exc
    return request


def decode_json(body: bytes | str) -> ExportTraceServiceRequest:
    """Parse OTLP JSON (hex ids, integer or named enums); unknown fields are ignored per spec."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise OTLPDecodeError(f"invalid JSON: {exc!r}") from exc
    if not isinstance(document, dict):
        raise OTLPDecodeError("invalid OTLP JSON: the top level must be an object")
    try:
        _walk_span_ids(document, _hex_to_base64)
        return json_format.ParseDict(
            document, ExportTraceServiceRequest(), ignore_unknown_fields=True
        )
    except (json_format.ParseError, ValueError, TypeError, AttributeError) as exc:
        raise OTLPDecodeError(f"invalid OTLP JSON: {exc}") from exc


def encode_json(message: Message) -> str:
    """One compact line of OTLP JSON for a request or response message (hex ids, int enums)."""
    document = json_format.MessageToDict(message, use_integers_for_enums=True)
    _walk_span_ids(document, _base64_to_hex)
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)


def _walk_span_ids(document: dict[str, Any], convert: Callable[[str, str], str]) -> None:
    for resource_spans in _list(document, "resourceSpans", "resource_spans"):
        for scope_spans in _list(resource_spans, "scopeSpans", "scope_spans"):
            for span in _list(scope_spans, "spans"):
                _convert_ids(span, convert)
                for link in _list(span, "links"):
                    _convert_ids(link, convert)


def _list(parent: Any, *keys: str) -> list[Any]:
    if not isinstance(parent, dict):
        raise OTLPDecodeError("invalid OTLP JSON: expected an object")
    for key in keys:
        value = parent.get(key)
        if value is None:
            continue
        if not isinstance(value, list):
            raise OTLPDecodeError(f"invalid OTLP JSON: {key!r} must be an array")
        return value
    return []


def _convert_ids(item: Any, convert: Callable[[str, str], str]) -> None:
    if not isinstance(item, dict):
        raise OTLPDecodeError("invalid OTLP JSON: expected an object")
    for key in _HEX_ID_FIELDS:
        value = item.get(key)
        if value is not None:
            if not isinstance(value, str):
                raise OTLPDecodeError(f"invalid OTLP JSON: {key!r} must be a hex string")
            item[key] = convert(key, value)


def _hex_to_base64(key: str, value: str) -> str:
    try:
        return base64.b64encode(bytes.fromhex(value)).decode("ascii")
    except ValueError as exc:
        raise OTLPDecodeError(f"invalid OTLP JSON: {key!r} is not hex: {value!r}") from exc


def _base64_to_hex(key: str, value: str) -> str:
    try:
        return base64.b64decode(value, validate=True).hex()
    except binascii.Error as exc:  # only reachable from a corrupted message
        raise OTLPDecodeError(f"{key!r} is not base64") from exc


# --- protobuf <-> SDK ReadableSpan -------------------------------------------------------------


def span_count(request: ExportTraceServiceRequest) -> int:
    """How many spans the request holds."""
    return sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)


def request_from_spans(spans: Sequence[ReadableSpan]) -> ExportTraceServiceRequest:
    """The ExportTraceServiceRequest the SDK's own OTLP exporters would send for `spans`."""
    return encode_spans(spans)


def spans_from_request(request: ExportTraceServiceRequest) -> list[ReadableSpan]:
    """Every valid span of the request as an SDK ReadableSpan (see `accepted_spans`)."""
    return accepted_spans(request)[0]


def accepted_spans(
    request: ExportTraceServiceRequest,
) -> tuple[list[ReadableSpan], RejectedSpans | None]:
    """The valid spans as ReadableSpans, and what was rejected (ids of the wrong size or zero)."""
    spans: list[ReadableSpan] = []
    rejected = 0
    first_reason = ""
    for resource_spans in request.resource_spans:
        resource = Resource(
            _attributes(resource_spans.resource.attributes), resource_spans.schema_url or None
        )
        for scope_spans in resource_spans.scope_spans:
            scope = SdkScope(
                scope_spans.scope.name,
                scope_spans.scope.version,
                scope_spans.schema_url or None,
                _attributes(scope_spans.scope.attributes) or None,
            )
            for span in scope_spans.spans:
                reason = invalid_ids(span)
                if not reason:
                    try:
                        spans.append(_readable_span(span, resource, scope))
                        continue
                    except Exception as exc:  # untrusted input costs its span, not the request
                        reason = f"span {span.name!r} cannot be converted: {exc!r}"
                rejected += 1
                first_reason = first_reason or reason
    if rejected:
        return spans, RejectedSpans(rejected, f"{rejected} span(s) rejected: {first_reason}")
    return spans, None


def invalid_ids(span: Span) -> str:
    """Why the span's ids are not valid OTLP ids (wrong size, or zero), or "" when they are."""
    if len(span.trace_id) != 16 or not any(span.trace_id):
        return f"span {span.name!r} has an invalid trace id {span.trace_id.hex()!r}"
    if len(span.span_id) != 8 or not any(span.span_id):
        return f"span {span.name!r} has an invalid span id {span.span_id.hex()!r}"
    if span.parent_span_id and len(span.parent_span_id) != 8:
        return f"span {span.name!r} has an invalid parent span id {span.parent_span_id.hex()!r}"
    return ""


def _readable_span(span: Span, resource: Resource, scope: SdkScope) -> ReadableSpan:
    trace_id = int.from_bytes(span.trace_id, "big")
    trace_state = TraceState.from_header([span.trace_state]) if span.trace_state else None
    context = SpanContext(
        trace_id,
        int.from_bytes(span.span_id, "big"),
        is_remote=False,
        trace_flags=TraceFlags(span.flags & _FLAGS_TRACE_FLAGS_MASK),
        trace_state=trace_state,
    )
    parent = None
    if span.parent_span_id and any(span.parent_span_id):
        parent = SpanContext(
            trace_id,
            int.from_bytes(span.parent_span_id, "big"),
            is_remote=bool(span.flags & _FLAGS_IS_REMOTE),
        )
    return ReadableSpan(
        name=span.name,
        context=context,
        parent=parent,
        resource=resource,
        attributes=_attributes(span.attributes),
        events=[
            Event(e.name, _attributes(e.attributes), e.time_unix_nano, limit=None)
            for e in span.events
        ],
        links=[_link(link) for link in span.links],
        kind=_PROTO_KIND_TO_SDK.get(span.kind, SpanKind.INTERNAL),
        status=SdkStatus(
            _PROTO_STATUS_TO_SDK.get(span.status.code, StatusCode.UNSET),
            span.status.message or None,
        ),
        start_time=span.start_time_unix_nano,
        end_time=span.end_time_unix_nano,
        instrumentation_scope=scope,
    )


def _link(link: Span.Link) -> Link:
    trace_state = TraceState.from_header([link.trace_state]) if link.trace_state else None
    context = SpanContext(
        int.from_bytes(link.trace_id, "big"),
        int.from_bytes(link.span_id, "big"),
        is_remote=bool(link.flags & _FLAGS_IS_REMOTE),
        trace_flags=TraceFlags(link.flags & _FLAGS_TRACE_FLAGS_MASK),
        trace_state=trace_state,
    )
    return Link(context, _attributes(link.attributes))


def _attributes(key_values: Iterable[KeyValue]) -> dict[str, AttributeValue]:
    return {kv.key: _attribute_value(kv.value) for kv in key_values}


def _attribute_value(value: AnyValue) -> AttributeValue:
    kind = value.WhichOneof("value")
    if kind in _SCALAR_KINDS:  # the common case first: this runs for every attribute received
        return getattr(value, kind)
    if kind == "array_value":
        items = [_plain_value(v) for v in value.array_value.values]
        if len({type(i) for i in items}) <= 1 and all(
            isinstance(i, str | bool | int | float) for i in items
        ):
            return tuple(items)
        # SDK attributes must be homogeneous primitive arrays; keep the content as JSON.
        return json.dumps(items, ensure_ascii=False)
    plain = _plain_value(value)
    if isinstance(plain, str | bool | int | float):
        return plain
    return json.dumps(plain, ensure_ascii=False)


def _plain_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return ""
    if kind == "array_value":
        return [_plain_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _plain_value(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    return getattr(value, kind)


# --- protobuf <-> SpanRecord / FinishedTrace ---------------------------------------------------


def trace_from_traces_data(
    payload: bytes, *, partial: bool = False, trace_id: int | None = None
) -> FinishedTrace:
    """The finished trace held by one OTLP `TracesData` message (as the spool queues it; the
    same bytes as an `ExportTraceServiceRequest`). The bytes are parsed here (raising on bytes
    that do not decode); its spans become `SpanRecord`s only when a sink reads them (raising
    then if they hold more than one trace). `trace_id`, when the caller knows it, saves looking
    it up in the message."""
    request = ExportTraceServiceRequest.FromString(payload)
    if trace_id is None:
        first = next(
            (s for r in request.resource_spans for ss in r.scope_spans for s in ss.spans), None
        )
        if first is None:
            raise ValueError("a finished trace needs spans of exactly one trace id, got 0")
        trace_id = int.from_bytes(first.trace_id, "big")
    return FinishedTrace.from_otlp(
        trace_id,
        (payload, request),
        lambda: records_from_request(request, checked=True),
        partial,
    )


def records_from_request(
    request: ExportTraceServiceRequest, *, checked: bool = False
) -> list[SpanRecord]:
    """Every span of the request as a detached `SpanRecord` (spans with invalid ids skipped,
    unless `checked`: their ids were checked when they came in)."""
    records: list[SpanRecord] = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope
            scope_name, scope_version = scope.name, scope.version
            for span in scope_spans.spans:
                if not checked and invalid_ids(span):
                    continue
                records.append(_record(span, resource, scope_name, scope_version))
    return records


def _record(
    span: Span, resource: Mapping[str, AttributeValue], scope_name: str, scope_version: str
) -> SpanRecord:
    parent_bytes = span.parent_span_id
    parent = int.from_bytes(parent_bytes, "big") if parent_bytes else None
    start = span.start_time_unix_nano
    status = span.status
    events = span.events
    links = span.links
    return SpanRecord(
        trace_id=int.from_bytes(span.trace_id, "big"),
        span_id=int.from_bytes(span.span_id, "big"),
        parent_span_id=parent or None,
        name=span.name,
        kind=_KIND_NAMES.get(span.kind, "INTERNAL"),
        start_time_ns=start,
        # As SpanRecord.from_readable does: a span without an end ends where it starts.
        end_time_ns=span.end_time_unix_nano or start,
        attributes=_attributes(span.attributes),
        status_code=_STATUS_NAMES.get(status.code, "UNSET"),
        status_description=status.message or None,
        events=tuple(
            EventRecord(e.name, e.time_unix_nano, _attributes(e.attributes)) for e in events
        )
        if events
        else (),
        links=tuple(
            LinkRecord(
                int.from_bytes(link.trace_id, "big"),
                int.from_bytes(link.span_id, "big"),
                _attributes(link.attributes),
            )
            for link in links
        )
        if links
        else (),
        resource=resource,
        scope_name=scope_name,
        scope_version=scope_version,
        parent_is_remote=bool(parent and span.flags & _FLAGS_IS_REMOTE),
    )


_Scopes = dict[tuple[str, str], list[SpanRecord]]


def _by_resource_and_scope(
    records: Iterable[SpanRecord],
) -> list[tuple[Mapping[str, AttributeValue], _Scopes]]:
    """`records` grouped by resource, then by scope (name, version), as OTLP nests them."""
    groups: dict[str, tuple[Mapping[str, AttributeValue], _Scopes]] = {}
    last_resource: Mapping[str, AttributeValue] | None = None
    last_key = ""
    for record in records:
        # The spans of one trace share a resource: its key is computed once per change.
        if record.resource is not last_resource and record.resource != last_resource:
            last_resource = record.resource
            last_key = json.dumps(dict(record.resource), sort_keys=True, default=str)
        scopes = groups.setdefault(last_key, (record.resource, {}))[1]
        scopes.setdefault((record.scope_name, record.scope_version or ""), []).append(record)
    return list(groups.values())


def traces_data_of(trace: FinishedTrace) -> tuple[bytes, ExportTraceServiceRequest]:
    """The `TracesData` of a trace (the same bytes as an `ExportTraceServiceRequest`) and the
    message parsed from them: the ones it was read from the spool as, else encoded from its
    spans."""
    if trace.otlp is not None:
        payload, message = trace.otlp
        return payload, message
    groups = [
        (
            resource_part(resource),
            [
                (
                    scope_part(name, version or None),
                    b"".join(span_field(encode_record(r)) for r in records),
                )
                for (name, version), records in scopes.items()
            ],
        )
        for resource, scopes in _by_resource_and_scope(trace.spans)
    ]
    payload = traces_data(groups)
    return payload, ExportTraceServiceRequest.FromString(payload)


def trace_to_json_line(trace: FinishedTrace) -> str:
    """One line of the Collector file exporter format holding every span of `trace`."""
    return traces_data_json(traces_data_of(trace)[1])


def traces_from_json_lines(lines: Iterable[str]) -> list[FinishedTrace]:
    """Finished traces from file exporter lines, grouped by trace id in first-seen order.

    A Collector's file exporter may split one trace over several lines or mix traces in one
    line; both are regrouped. Blank lines are skipped; a bad line raises `OTLPDecodeError`
    naming its line number.
    """
    by_trace: dict[int, list[SpanRecord]] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            request = decode_json(line)
        except OTLPDecodeError as exc:
            raise OTLPDecodeError(f"line {number}: {exc}") from exc
        for record in records_from_request(request):
            by_trace.setdefault(record.trace_id, []).append(record)
    return [FinishedTrace(trace_id, tuple(spans)) for trace_id, spans in by_trace.items()]


def read_traces(path: str | Path) -> list[FinishedTrace]:
    """Every finished trace in an OTLP JSON lines file (ours or a Collector file exporter's)."""
    with Path(path).open(encoding="utf-8") as lines:
        return traces_from_json_lines(lines)


def export_response(rejected: RejectedSpans | None = None) -> ExportTraceServiceResponse:
    """The success response, with partial_success filled when some spans were rejected."""
    response = ExportTraceServiceResponse()
    if rejected is not None:
        response.partial_success.rejected_spans = rejected.count
        response.partial_success.error_message = rejected.reason
    return response
