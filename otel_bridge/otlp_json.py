"""OTLP JSON text written straight from a decoded `TracesData` / `ExportTraceServiceRequest`:
the file sink's lines, without building `SpanRecord`s or dicts first.

The text is what `otlp.encode_json` makes of the same message (the proto3 JSON mapping with
OTLP's exceptions: hex ids, integer enums, 64-bit integers as strings, default values left
out), at a fraction of its cost; the tests compare the two field by field.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterable
from typing import Any

__all__ = ["traces_data_json"]

# json's own C string encoder (quotes and escapes; non-ASCII kept, as ensure_ascii=False).
_quote: Any = json.encoder.encode_basestring


def traces_data_json(message: Any) -> str:
    """One line of OTLP JSON for a `TracesData` or `ExportTraceServiceRequest` message."""
    resources = [_resource_spans(resource_spans) for resource_spans in message.resource_spans]
    return '{"resourceSpans":[' + ",".join(resources) + "]}" if resources else "{}"


# The JSON of the resources and scopes written last, by their protobuf bytes: every trace of a
# process repeats one resource (a dozen attributes) and a few scopes, and the spool's traces are
# small, so these were a third of a line's cost.
_PARTS_KEPT = 64
_resource_texts: dict[bytes, str] = {}
_scope_texts: dict[bytes, str] = {}


def _cached(cache: dict[bytes, str], message: Any, write: Any) -> str:
    key = message.SerializeToString()
    text = cache.get(key)
    if text is None:
        text = write(message)
        if len(cache) >= _PARTS_KEPT:
            cache.clear()
        cache[key] = text
    return text


def _resource_spans(resource_spans: Any) -> str:
    parts = []
    if resource_spans.HasField("resource"):
        parts.append('"resource":' + _cached(_resource_texts, resource_spans.resource, _resource))
    scopes = [_scope_spans(scope_spans) for scope_spans in resource_spans.scope_spans]
    if scopes:
        parts.append('"scopeSpans":[' + ",".join(scopes) + "]")
    if resource_spans.schema_url:
        parts.append('"schemaUrl":' + _quote(resource_spans.schema_url))
    return "{" + ",".join(parts) + "}"


def _resource(resource: Any) -> str:
    parts = []
    if resource.attributes:
        parts.append('"attributes":' + _key_values(resource.attributes))
    if resource.dropped_attributes_count:
        parts.append(f'"droppedAttributesCount":{resource.dropped_attributes_count}')
    return "{" + ",".join(parts) + "}"


def _scope_spans(scope_spans: Any) -> str:
    parts = []
    if scope_spans.HasField("scope"):
        parts.append('"scope":' + _cached(_scope_texts, scope_spans.scope, _scope))
    spans = [_span(span) for span in scope_spans.spans]
    if spans:
        parts.append('"spans":[' + ",".join(spans) + "]")
    if scope_spans.schema_url:
        parts.append('"schemaUrl":' + _quote(scope_spans.schema_url))
    return "{" + ",".join(parts) + "}"


def _scope(scope: Any) -> str:
    parts = []
    if scope.name:
        parts.append('"name":' + _quote(scope.name))
    if scope.version:
        parts.append('"version":' + _quote(scope.version))
    if scope.attributes:
        parts.append('"attributes":' + _key_values(scope.attributes))
    if scope.dropped_attributes_count:
        parts.append(f'"droppedAttributesCount":{scope.dropped_attributes_count}')
    return "{" + ",".join(parts) + "}"


def _span(span: Any) -> str:
    parts = ['"traceId":"' + span.trace_id.hex() + '","spanId":"' + span.span_id.hex() + '"']
    if span.trace_state:
        parts.append('"traceState":' + _quote(span.trace_state))
    parent = span.parent_span_id
    if parent:
        parts.append('"parentSpanId":"' + parent.hex() + '"')
    if span.name:
        parts.append('"name":' + _quote(span.name))
    if span.kind:
        parts.append(f'"kind":{span.kind}')
    if span.start_time_unix_nano:
        parts.append(f'"startTimeUnixNano":"{span.start_time_unix_nano}"')
    if span.end_time_unix_nano:
        parts.append(f'"endTimeUnixNano":"{span.end_time_unix_nano}"')
    attributes = span.attributes
    if attributes:
        parts.append('"attributes":' + _key_values(attributes))
    if span.dropped_attributes_count:
        parts.append(f'"droppedAttributesCount":{span.dropped_attributes_count}')
    events = span.events
    if events:
        parts.append('"events":[' + ",".join(_event(event) for event in events) + "]")
    if span.dropped_events_count:
        parts.append(f'"droppedEventsCount":{span.dropped_events_count}')
    links = span.links
    if links:
        parts.append('"links":[' + ",".join(_link(link) for link in links) + "]")
    if span.dropped_links_count:
        parts.append(f'"droppedLinksCount":{span.dropped_links_count}')
    if span.HasField("status"):
        parts.append('"status":' + _status(span.status))
    if span.flags:
        parts.append(f'"flags":{span.flags}')
    return "{" + ",".join(parts) + "}"


def _status(status: Any) -> str:
    parts = []
    if status.message:
        parts.append('"message":' + _quote(status.message))
    if status.code:
        parts.append(f'"code":{status.code}')
    return "{" + ",".join(parts) + "}"


def _event(event: Any) -> str:
    parts = []
    if event.time_unix_nano:
        parts.append(f'"timeUnixNano":"{event.time_unix_nano}"')
    if event.name:
        parts.append('"name":' + _quote(event.name))
    if event.attributes:
        parts.append('"attributes":' + _key_values(event.attributes))
    if event.dropped_attributes_count:
        parts.append(f'"droppedAttributesCount":{event.dropped_attributes_count}')
    return "{" + ",".join(parts) + "}"


def _link(link: Any) -> str:
    parts = []
    if link.trace_id:
        parts.append('"traceId":"' + link.trace_id.hex() + '"')
    if link.span_id:
        parts.append('"spanId":"' + link.span_id.hex() + '"')
    if link.trace_state:
        parts.append('"traceState":' + _quote(link.trace_state))
    if link.attributes:
        parts.append('"attributes":' + _key_values(link.attributes))
    if link.dropped_attributes_count:
        parts.append(f'"droppedAttributesCount":{link.dropped_attributes_count}')
    if link.flags:
        parts.append(f'"flags":{link.flags}')
    return "{" + ",".join(parts) + "}"


def _key_values(key_values: Iterable[Any]) -> str:
    items = []
    for key_value in key_values:
        value = key_value.value
        kind = value.WhichOneof("value")
        if kind == "string_value":  # most attributes: one step, no nested call
            text = '{"stringValue":' + _quote(value.string_value) + "}"
        elif kind is not None:
            text = _any_value(value, kind)
        else:  # an empty AnyValue, or none at all
            text = "{}" if key_value.HasField("value") else ""
        key = key_value.key
        head = '{"key":' + _quote(key) if key else "{"
        if text:
            items.append(head + (',"value":' if key else '"value":') + text + "}")
        else:
            items.append(head + "}")
    return "[" + ",".join(items) + "]"


def _any_value(value: Any, kind: str | None) -> str:
    if kind == "string_value":
        return '{"stringValue":' + _quote(value.string_value) + "}"
    if kind == "bool_value":
        return '{"boolValue":true}' if value.bool_value else '{"boolValue":false}'
    if kind == "int_value":
        return f'{{"intValue":"{value.int_value}"}}'
    if kind == "double_value":
        return '{"doubleValue":' + _double(value.double_value) + "}"
    if kind == "array_value":
        items = [_any_value(item, item.WhichOneof("value")) for item in value.array_value.values]
        return '{"arrayValue":{' + ('"values":[' + ",".join(items) + "]" if items else "") + "}}"
    if kind == "kvlist_value":
        pairs = value.kvlist_value.values
        return '{"kvlistValue":{' + ('"values":' + _key_values(pairs) if pairs else "") + "}}"
    if kind == "bytes_value":
        return '{"bytesValue":"' + base64.b64encode(value.bytes_value).decode("ascii") + '"}'
    return "{}"


def _double(number: float) -> str:
    if math.isnan(number):
        return '"NaN"'
    if math.isinf(number):
        return '"Infinity"' if number > 0 else '"-Infinity"'
    return json.dumps(number)
