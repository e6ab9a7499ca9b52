"""OTLP JSON text written straight from a decoded `TracesData` / `ExportTraceServiceRequest`:
the file sink's lines, without building `SpanRecord`s or dicts first.

The text is what `otlp.encode_json` makes of the same message (the proto3 JSON mapping with
OTLP's exceptions: hex ids, integer enums, 64-bit integers as strings, default values left
out), at a fraction of its cost; the tests compare the two field by field.

Spans, nearly all of a line, are read from their scope's protobuf bytes (`_spans`): every field
read from a upb message object builds a Python object and costs about as much as writing it.
The walk is in C when the optional `otel_bridge_speedups` distribution (native/ of a checkout)
is installed, in Python otherwise: the same text, byte for byte. Spans the byte walk does not
take, and every other message, are read from the message: spans and attributes by writers of
their own, the rest from a table of their fields by one loop, `_message`.
"""

from __future__ import annotations

import base64
import json
import math
import struct
from collections.abc import Callable, Iterable
from typing import Any

try:
    from otel_bridge_speedups import spans_json as _native_spans_json
except ImportError:  # the Python walk below writes the same text
    _native_spans_json = None

__all__ = ["spans_walk", "traces_data_json"]

# What `spans_walk` says of each walk.
WALK_C = "C (otel-bridge-speedups)"
WALK_PYTHON = "Python (install otel-bridge-speedups, native/ of a checkout, to write it in C)"

# json's own C string encoder (quotes and escapes; non-ASCII kept, as ensure_ascii=False).
_quote: Callable[[str], str] = json.encoder.encode_basestring


def spans_walk() -> str:
    """Which byte walk writes spans' JSON here: `WALK_C` or `WALK_PYTHON`."""
    return WALK_PYTHON if _native_spans_json is None else WALK_C


def traces_data_json(message: Any) -> str:
    """One line of OTLP JSON for a `TracesData` or `ExportTraceServiceRequest` message."""
    resources = message.resource_spans
    if not resources:
        return "{}"
    return '{"resourceSpans":' + _resource_spans_list(resources) + "}"


# --- spans and attributes ----------------------------------------------------------------------


def _span(span: Any) -> str:
    """A span's JSON from the message (see `_spans` for the usual way, from its bytes)."""
    events = span.events
    links = span.links
    return _span_text(
        span.trace_id,
        span.span_id,
        span.trace_state,
        span.parent_span_id,
        span.name,
        span.kind,
        span.start_time_unix_nano,
        span.end_time_unix_nano,
        _key_values(span.attributes),
        span.dropped_attributes_count,
        _events(events) if events else "",
        span.dropped_events_count,
        _links(links) if links else "",
        span.dropped_links_count,
        _status(span.status) if span.HasField("status") else "",
        span.flags,
    )


def _span_text(
    trace_id: bytes,
    span_id: bytes,
    trace_state: str,
    parent: bytes,
    name: str,
    kind: int,
    start: int,
    end: int,
    attributes: str,
    dropped_attributes: int,
    events: str,
    dropped_events: int,
    links: str,
    dropped_links: int,
    status: str,
    flags: int,
) -> str:
    """A span's JSON from its fields, the lists and the status already written ("" when
    absent; attributes "[]" when there are none). Each optional field's text or "" goes into
    one f-string: the pieces are joined once, not pairwise."""
    return (
        f'{{"traceId":"{trace_id.hex()}","spanId":"{span_id.hex()}"'
        f"{_TRACE_STATE + _quote(trace_state) if trace_state else ''}"
        f"{_PARENT + parent.hex() + _QUOTE if parent else ''}"
        f"{_NAME + _quote(name) if name else ''}"
        f"{_KIND + str(kind) if kind else ''}"
        f"{_START + str(start) + _QUOTE if start else ''}"
        f"{_END + str(end) + _QUOTE if end else ''}"
        f"{_SPAN_ATTRIBUTES + attributes if len(attributes) > 2 else ''}"
        f"{_DROPPED_ATTRIBUTES + str(dropped_attributes) if dropped_attributes else ''}"
        f"{_EVENTS + events if events else ''}"
        f"{_DROPPED_EVENTS + str(dropped_events) if dropped_events else ''}"
        f"{_LINKS + links if links else ''}"
        f"{_DROPPED_LINKS + str(dropped_links) if dropped_links else ''}"
        f"{_STATUS + status if status else ''}"
        f"{_FLAGS + str(flags) if flags else ''}}}"
    )


_TRACE_STATE = ',"traceState":'
_PARENT = ',"parentSpanId":"'
_QUOTE = '"'
_NAME = ',"name":'
_KIND = ',"kind":'
_START = ',"startTimeUnixNano":"'
_END = ',"endTimeUnixNano":"'
_SPAN_ATTRIBUTES = ',"attributes":'
_DROPPED_ATTRIBUTES = ',"droppedAttributesCount":'
_EVENTS = ',"events":'
_DROPPED_EVENTS = ',"droppedEventsCount":'
_LINKS = ',"links":'
_DROPPED_LINKS = ',"droppedLinksCount":'
_STATUS = ',"status":'
_FLAGS = ',"flags":'


def _spans(scope_spans: Any) -> str:
    """The `spans` array of a `ScopeSpans`, read from its protobuf bytes (serialized once, in C)
    by the C walk when it is installed, by `_python_spans_json` otherwise. A span whose bytes
    hold anything the walk does not expect (events, links, a nested attribute value, a field it
    does not know) is written from the message instead."""
    walk = _native_spans_json or _python_spans_json
    texts = walk(scope_spans.SerializeToString())
    if texts is None:
        return _span_list(scope_spans.spans)
    if None in texts:
        spans = scope_spans.spans
        return "[" + ",".join([text or _span(spans[i]) for i, text in enumerate(texts)]) + "]"
    return "[" + ",".join(texts) + "]"  # type: ignore[arg-type]  # no None in it


def _python_spans_json(data: bytes) -> list[str | None] | None:
    """What `otel_bridge_speedups.spans_json` returns, in Python: the JSON text of each span of
    the `ScopeSpans` whose bytes are `data`, or None for a span the walk does not take; None
    when the `ScopeSpans` holds a field other than its scope, spans and schema URL, or is cut
    short. Walking the bytes in Python, with the text of small attributes kept by their bytes,
    costs about two thirds of reading the same fields from upb's message objects (5.4 against
    8.1 µs a span of bench/receiver.py's requests). With the C walk the whole line costs 1.6 µs
    a span against 7.6 with this one (bench/file_sink.py)."""
    texts: list[str | None] = []
    append = texts.append
    offset, end = 0, len(data)
    try:
        while offset < end:
            tag = data[offset]
            if tag & 0x87 != 2:  # every field of a ScopeSpans is length-delimited, numbered < 16
                return None
            size = data[offset + 1]
            offset += 2
            if size & 0x80:
                size, offset = _varint_rest(data, offset, size)
            if offset + size > end:
                return None
            if tag == 0x12:  # a span
                try:
                    append(_span_from_wire(data, offset, offset + size))
                except (IndexError, UnicodeDecodeError, struct.error):
                    append(None)
            offset += size
    except IndexError:
        return None
    return texts


def _length_at(data: bytes, offset: int) -> tuple[int, int]:
    """The varint at `offset` (a length) and the offset after it. The hot loops read their
    lengths inline: a call costs as much as the read."""
    size = data[offset]
    if size & 0x80:
        return _varint_rest(data, offset + 1, size)
    return size, offset + 1


def _varint_rest(data: bytes, offset: int, first: int) -> tuple[int, int]:
    """A varint whose first byte (`first`, at offset - 1) had its continuation bit set."""
    value = first & 0x7F
    shift = 7
    while True:
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, offset
        shift += 7


_fixed64 = struct.Struct("<Q").unpack_from
_fixed32 = struct.Struct("<I").unpack_from
_double_at = struct.Struct("<d").unpack_from


# The text of small attributes by their bytes: run types, operation and model names, token
# counts come back span after span (prompts and answers, larger, are written each time).
_SMALL_ATTRIBUTE = 64
_ATTRIBUTES_KEPT = 4096
_attribute_texts: dict[bytes, str | None] = {}


def _span_from_wire(data: bytes, offset: int, end: int) -> str | None:
    """A `Span`'s JSON from its bytes, data[offset:end], as upb writes them (each field once, in
    field-number order); None for anything else."""
    trace_id = span_id = parent = b""
    trace_state = name = ""
    kind = start = stop = flags = dropped = 0
    attributes: list[str] = []
    status = None
    while offset < end:
        tag = data[offset]
        offset += 1
        if tag & 7 == 2:  # length-delimited
            size = data[offset]
            offset += 1
            if size & 0x80:
                size, offset = _varint_rest(data, offset, size)
            field_end = offset + size
            if tag == 0x4A:  # an attribute
                if size > _SMALL_ATTRIBUTE:
                    text = _key_value_from_wire(data, offset, field_end)
                else:
                    piece = data[offset:field_end]
                    text = _attribute_texts.get(piece)
                    if text is None:
                        text = _key_value_from_wire(data, offset, field_end)
                        if len(_attribute_texts) >= _ATTRIBUTES_KEPT:
                            _attribute_texts.clear()
                        _attribute_texts[piece] = text
                if text is None:
                    return None
                attributes.append(text)
            elif tag == 0x0A:
                trace_id = data[offset:field_end]
            elif tag == 0x12:
                span_id = data[offset:field_end]
            elif tag == 0x1A:
                trace_state = data[offset:field_end].decode()
            elif tag == 0x22:
                parent = data[offset:field_end]
            elif tag == 0x2A:
                name = data[offset:field_end].decode()
            elif tag == 0x7A:
                status = _status_from_wire(data, offset, field_end)
                if status is None:
                    return None
            else:  # events, links, fields not known here
                return None
            offset = field_end
        elif tag == 0x39:
            (start,) = _fixed64(data, offset)
            offset += 8
        elif tag == 0x41:
            (stop,) = _fixed64(data, offset)
            offset += 8
        elif tag == 0x30:
            kind = data[offset]
            offset += 1
            if kind & 0x80:
                return None
        elif tag == 0x50:
            dropped = data[offset]
            offset += 1
            if dropped & 0x80:
                dropped, offset = _varint_rest(data, offset, dropped)
        elif tag == 0x85 and data[offset] == 0x01:
            (flags,) = _fixed32(data, offset + 1)
            offset += 5
        else:
            return None
    return _span_text(
        trace_id,
        span_id,
        trace_state,
        parent,
        name,
        kind,
        start,
        stop,
        "[" + ",".join(attributes) + "]",
        dropped,
        "",
        0,
        "",
        0,
        "" if status is None else status,
        flags,
    )


def _status_from_wire(data: bytes, offset: int, end: int) -> str | None:
    message = ""
    code = 0
    while offset < end:
        tag = data[offset]
        offset += 1
        if tag == 0x12:
            size, offset = _length_at(data, offset)
            message = data[offset : offset + size].decode()
            offset += size
        elif tag == 0x18:
            code = data[offset]
            offset += 1
            if code & 0x80:
                return None
        else:
            return None
    if message:
        return '{"message":' + _quote(message) + (f',"code":{code}}}' if code else "}")
    return f'{{"code":{code}}}' if code else "{}"


def _key_value_from_wire(data: bytes, offset: int, end: int) -> str | None:
    """A `KeyValue`'s JSON from its bytes when its value is a string, bool, int or double."""
    key = ""
    value = None
    while offset < end:
        tag = data[offset]
        size = data[offset + 1]
        offset += 2
        if size & 0x80:
            size, offset = _varint_rest(data, offset, size)
        if tag == 0x0A:
            key = data[offset : offset + size].decode()
        elif tag == 0x12:
            value = _any_value_from_wire(data, offset, offset + size)
            if value is None:
                return None
        else:
            return None
        offset += size
    head = _key_heads.get(key) or _key_head(key)
    if value is None:  # no value at all
        return '{"key":' + _quote(key) + "}" if key else "{}"
    return head + value + "}"


def _any_value_from_wire(data: bytes, offset: int, end: int) -> str | None:
    if offset == end:
        return "{}"
    tag = data[offset]
    offset += 1
    if tag == 0x0A:
        size, offset = _length_at(data, offset)
        if offset + size != end:
            return None
        return '{"stringValue":' + _quote(data[offset:end].decode()) + "}"
    if tag == 0x10 and offset + 1 == end:
        return '{"boolValue":true}' if data[offset] else '{"boolValue":false}'
    if tag == 0x18:
        value = data[offset]
        offset += 1
        if value & 0x80:
            value, offset = _varint_rest(data, offset, value)
        if offset != end:
            return None
        if value >= 1 << 63:
            value -= 1 << 64
        return f'{{"intValue":"{value}"}}'
    if tag == 0x21 and offset + 8 == end:
        return '{"doubleValue":' + _double(_double_at(data, offset)[0]) + "}"
    return None


# An attribute's text up to its value, by key: the same few dozen keys come back on every span.
_KEY_HEADS_KEPT = 4096
_key_heads: dict[str, str] = {}


def _key_head(key: str) -> str:
    head = '{"key":' + _quote(key) + ',"value":' if key else '{"value":'
    if len(_key_heads) < _KEY_HEADS_KEPT:
        _key_heads[key] = head
    return head


def _key_values(key_values: Iterable[Any]) -> str:
    items: list[str] = []
    append = items.append
    heads = _key_heads
    for key_value in key_values:
        key = key_value.key
        value = key_value.value
        # Most attributes hold a non-empty string: one read tells, no WhichOneof.
        string = value.string_value
        if string:
            append(f'{heads.get(key) or _key_head(key)}{{"stringValue":{_quote(string)}}}}}')
            continue
        kind = value.WhichOneof("value")
        if kind is not None:
            append((heads.get(key) or _key_head(key)) + _any_value(value, kind) + "}")
        elif key_value.HasField("value"):  # an empty AnyValue
            append((heads.get(key) or _key_head(key)) + "{}}")
        else:  # no value at all
            append('{"key":' + _quote(key) + "}" if key else "{}")
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


# --- every other message, from a table of its fields ---------------------------------------------

# A field: (attribute name, its JSON name and colon, how its value is written, whether it is a
# message field). A message field is written when present, even if empty; any other when it is
# not its default (0, "", b"", an empty list).
_Field = tuple[str, str, Callable[[Any], str], bool]


def _message(message: Any, fields: tuple[_Field, ...]) -> str:
    parts = []
    for name, head, write, is_message in fields:
        if is_message:
            if not message.HasField(name):
                continue
        elif not getattr(message, name):
            continue
        parts.append(head + write(getattr(message, name)))
    return "{" + ",".join(parts) + "}"


def _writer(fields: Iterable[_Field]) -> Callable[[Any], str]:
    table = tuple(fields)
    return lambda message: _message(message, table)


def _list(write: Callable[[Any], str]) -> Callable[[Iterable[Any]], str]:
    return lambda items: "[" + ",".join([write(item) for item in items]) + "]"


def _int64(value: int) -> str:
    return f'"{value}"'


def _hex(value: bytes) -> str:
    return '"' + value.hex() + '"'


def _field(name: str, json_name: str, write: Callable[[Any], str]) -> _Field:
    return (name, f'"{json_name}":', write, False)


def _message_field(name: str, json_name: str, write: Callable[[Any], str]) -> _Field:
    return (name, f'"{json_name}":', write, True)


_ATTRIBUTES = (
    _field("attributes", "attributes", _key_values),
    _field("dropped_attributes_count", "droppedAttributesCount", str),
)


# The JSON of the resources and scopes written last, by their protobuf bytes: every trace of a
# process repeats one resource (a dozen attributes) and a few scopes, and the spool's traces are
# small, so these were a third of a line's cost.
_PARTS_KEPT = 64


def _cached(write: Callable[[Any], str]) -> Callable[[Any], str]:
    texts: dict[bytes, str] = {}

    def cached(message: Any) -> str:
        key = message.SerializeToString()
        text = texts.get(key)
        if text is None:
            text = write(message)
            if len(texts) >= _PARTS_KEPT:
                texts.clear()
            texts[key] = text
        return text

    return cached


_status = _writer((_field("message", "message", _quote), _field("code", "code", str)))
_events = _list(
    _writer(
        (
            _field("time_unix_nano", "timeUnixNano", _int64),
            _field("name", "name", _quote),
            *_ATTRIBUTES,
        )
    )
)
_links = _list(
    _writer(
        (
            _field("trace_id", "traceId", _hex),
            _field("span_id", "spanId", _hex),
            _field("trace_state", "traceState", _quote),
            *_ATTRIBUTES,
            _field("flags", "flags", str),
        )
    )
)
_resource = _cached(_writer(_ATTRIBUTES))
_scope = _cached(
    _writer((_field("name", "name", _quote), _field("version", "version", _quote), *_ATTRIBUTES))
)
_span_list = _list(_span)


def _scope_spans(scope_spans: Any) -> str:
    parts = []
    if scope_spans.HasField("scope"):
        parts.append('"scope":' + _scope(scope_spans.scope))
    if scope_spans.spans:
        parts.append('"spans":' + _spans(scope_spans))
    if scope_spans.schema_url:
        parts.append('"schemaUrl":' + _quote(scope_spans.schema_url))
    return "{" + ",".join(parts) + "}"


_scope_spans_list = _list(_scope_spans)
_resource_spans_list = _list(
    _writer(
        (
            _message_field("resource", "resource", _resource),
            _field("scope_spans", "scopeSpans", _scope_spans_list),
            _field("schema_url", "schemaUrl", _quote),
        )
    )
)
