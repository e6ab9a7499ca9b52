"""OTLP protobuf written directly: finished spans to `opentelemetry.proto.trace.v1.Span` bytes,
their resource and scope to the fields of `ResourceSpans` / `ScopeSpans`, and spans grouped by
resource and scope joined into one `TracesData` message, all without building protobuf objects.

This is the spool's one span format (see spool.py): `export()` encodes each SDK span once on the
processor thread, the receiver stores the bytes it decoded, and a trace's bytes are decoded only
when the sink's `deliver()` needs them. Protobuf lets a message be assembled from its encoded
fields in any order, and a repeated field from pieces encoded apart, which is what makes joining
stored pieces a concatenation.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    from otel_bridge.trace_tree import SpanRecord

__all__ = [
    "FLAGS_HAS_IS_REMOTE",
    "FLAGS_IS_REMOTE",
    "ScopeGroup",
    "encode_readable",
    "encode_readable_with_ids",
    "encode_record",
    "length_delimited",
    "resource_part",
    "resource_part_of",
    "scope_part",
    "scope_part_of",
    "span_field",
    "split_span_fields",
    "traces_data",
]

# Span.flags bits (trace.proto): whether the parent's "remote" state is known, and its value.
FLAGS_HAS_IS_REMOTE = 0x100
FLAGS_IS_REMOTE = 0x200

# Wire types: 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32. A tag is (field << 3) | type.
_pack_double = struct.Struct("<d").pack
_pack_fixed64 = struct.Struct("<Q").pack
_pack_fixed32 = struct.Struct("<I").pack
# A span's start and end: tag, fixed64, tag, fixed64 (fields 7 and 8).
_pack_times = struct.Struct("<BQBQ").pack

# Tags as bytes, per message (field numbers from opentelemetry/proto/*.proto).
_SPAN_TRACE_ID = b"\x0a\x10"  # field 1, 16 bytes
_SPAN_SPAN_ID = b"\x12\x08"  # field 2, 8 bytes
_SPAN_TRACE_STATE = b"\x1a"
_SPAN_PARENT_ID = b"\x22\x08"  # field 4, 8 bytes
_SPAN_NAME = b"\x2a"
_SPAN_KIND = b"\x30"
_SPAN_START = b"\x39"  # field 7, fixed64
_SPAN_END = b"\x41"  # field 8, fixed64
_SPAN_ATTRIBUTE = b"\x4a"
_SPAN_EVENT = b"\x5a"
_SPAN_LINK = b"\x6a"
_SPAN_STATUS = b"\x7a"
_SPAN_FLAGS = b"\x85\x01"  # field 16, fixed32
_EVENT_TIME = b"\x09"  # field 1, fixed64
_EVENT_NAME = b"\x12"
_EVENT_ATTRIBUTE = b"\x1a"
_LINK_TRACE_ID = b"\x0a\x10"
_LINK_SPAN_ID = b"\x12\x08"
_LINK_TRACE_STATE = b"\x1a"
_LINK_ATTRIBUTE = b"\x22"
_LINK_FLAGS = b"\x35"  # field 6, fixed32
_STATUS_MESSAGE = b"\x12"
_STATUS_CODE = b"\x18"
_KV_KEY = b"\x0a"
_KV_VALUE = b"\x12"
_ANY_STRING = b"\x0a"
_ANY_BOOL_TRUE = b"\x10\x01"
_ANY_BOOL_FALSE = b"\x10\x00"
_ANY_INT = b"\x18"
_ANY_DOUBLE = b"\x21"
_ANY_ARRAY = b"\x2a"
_ANY_KVLIST = b"\x32"
_ANY_BYTES = b"\x3a"
_KVLIST_VALUE = b"\x0a"
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_ARRAY_VALUE = b"\x0a"
_SCOPE_NAME = b"\x0a"
_SCOPE_VERSION = b"\x12"
_RESOURCE_ATTRIBUTE = b"\x0a"
_RESOURCE_SPANS_RESOURCE = b"\x0a"
_RESOURCE_SPANS_SCOPE_SPANS = b"\x12"
_RESOURCE_SPANS_SCHEMA_URL = b"\x1a"
_SCOPE_SPANS_SCOPE = b"\x0a"
_SCOPE_SPANS_SPAN = b"\x12"
_SCOPE_SPANS_SCHEMA_URL = b"\x1a"
_TRACES_DATA_RESOURCE_SPANS = b"\x0a"

# SDK SpanKind / StatusCode names -> the proto enums (Span.SpanKind counts from UNSPECIFIED=0).
_KIND_BY_NAME = {"INTERNAL": 1, "SERVER": 2, "CLIENT": 3, "PRODUCER": 4, "CONSUMER": 5}
_STATUS_BY_NAME = {"UNSET": 0, "OK": 1, "ERROR": 2}

# (resource part, [(scope part, span fields), ...]): one ResourceSpans, where the span fields are
# the scope's spans each as `span_field` wrote it, joined.
ScopeGroup = tuple[bytes, Sequence[tuple[bytes, bytes]]]


def _varint(value: int) -> bytes:
    if value < 0x80:
        return _SMALL[value]
    if value < 0x4000:  # most lengths past 127: two bytes, without the loop
        return bytes(((value & 0x7F) | 0x80, value >> 7))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_SMALL = [bytes((n,)) for n in range(0x80)]


def _two_bytes(value: int) -> bytes:
    """The varint of 0x80 <= value < 0x4000."""
    return bytes(((value & 0x7F) | 0x80, value >> 7))


def length_delimited(tag: bytes, payload: bytes) -> bytes:
    """`tag` followed by the length of `payload` and `payload`."""
    size = len(payload)
    return tag + (_SMALL[size] if size < 0x80 else _varint(size)) + payload


def _string(tag: bytes, text: str) -> bytes:
    return length_delimited(tag, _utf8(text))


def _utf8(text: str) -> bytes:
    """`text` as UTF-8. A Python str may hold surrogates, which UTF-8 cannot: a pair (two code
    points, as some decoders leave them) becomes the character it stands for, a lone one U+FFFD.
    Writing them through ("surrogatepass") made bytes no protobuf decoder takes: the whole
    trace failed at delivery for one attribute."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        joined = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
        return joined.encode("utf-8")


# Encoded attribute keys: the same few dozen keys come back on every span.
_KEY_CACHE: dict[str, bytes] = {}
_KEY_CACHE_MAX = 4096


def _key(key: str) -> bytes:
    encoded = _KEY_CACHE.get(key)
    if encoded is None:
        encoded = _string(_KV_KEY, key)
        if len(_KEY_CACHE) < _KEY_CACHE_MAX:
            _KEY_CACHE[key] = encoded
    return encoded


def _any_value(value: Any) -> bytes:
    """An AnyValue's fields for an attribute value (what OTLP's JSON writer in otlp.py writes
    for the same value: ints past int64 as text, mappings as key-value lists)."""
    kind = type(value)
    if kind is str:
        return _string(_ANY_STRING, value)
    if kind is bool:
        return _ANY_BOOL_TRUE if value else _ANY_BOOL_FALSE
    if kind is int and _INT64_MIN <= value <= _INT64_MAX:
        return _ANY_INT + _varint(value & 0xFFFFFFFFFFFFFFFF)
    if kind is float:
        return _ANY_DOUBLE + _pack_double(value)
    if isinstance(value, str):  # a str subclass (an enum's value, for one)
        return _string(_ANY_STRING, str(value))
    if isinstance(value, bool):
        return _ANY_BOOL_TRUE if value else _ANY_BOOL_FALSE
    if isinstance(value, int):
        if _INT64_MIN <= value <= _INT64_MAX:
            return _ANY_INT + _varint(int(value) & 0xFFFFFFFFFFFFFFFF)
        return _string(_ANY_STRING, str(int(value)))
    if isinstance(value, float):
        return _ANY_DOUBLE + _pack_double(float(value))
    if isinstance(value, bytes | bytearray | memoryview):
        return length_delimited(_ANY_BYTES, bytes(value))
    if isinstance(value, Mapping):
        return length_delimited(_ANY_KVLIST, _attributes(_KVLIST_VALUE, value))
    if isinstance(value, Sequence):
        items = b"".join(length_delimited(_ARRAY_VALUE, _any_value(item)) for item in value)
        return length_delimited(_ANY_ARRAY, items)
    return _string(_ANY_STRING, str(value))


def _attributes(tag: bytes, attributes: Mapping[str, Any] | None) -> bytes:
    # The SDK's BoundedAttributes iterates (and tells its length) through Python methods: its
    # dict is quicker.
    attributes = getattr(attributes, "_dict", attributes)
    if not attributes:
        return b""
    items = attributes.items()
    parts: list[bytes] = []
    append = parts.append
    for key, value in items:
        encoded_key = _KEY_CACHE.get(key) or _key(key)
        if type(value) is str:
            text = _utf8(value)
            size = len(text)
            if size < 0x7E:  # the value, its AnyValue and the pair each fit a 1-byte length
                any_value = b"\x0a" + _SMALL[size] + text
                pair = encoded_key + b"\x12" + _SMALL[size + 2] + any_value
            elif 0x7F < size < 0x3FFC:  # the value and its AnyValue each take a 2-byte length
                pair = b"".join(
                    (
                        encoded_key,
                        b"\x12",
                        _two_bytes(size + 3),
                        b"\x0a",
                        _two_bytes(size),
                        text,
                    )
                )
            else:
                pair = encoded_key + length_delimited(
                    _KV_VALUE, length_delimited(_ANY_STRING, text)
                )
        else:
            pair = encoded_key + length_delimited(_KV_VALUE, _any_value(value))
        size = len(pair)
        append(tag + (_SMALL[size] if size < 0x80 else _varint(size)) + pair)
    return b"".join(parts)


# The span's kind and status looked up by the enum member's plain `_value_` attribute: hashing
# an Enum member (or reading `.value`) runs Python code, twice a span on the processor thread.
def _kind_fields() -> dict[int, bytes]:
    from opentelemetry.trace import SpanKind

    return {kind._value_: _SPAN_KIND + _SMALL[kind._value_ + 1] for kind in SpanKind}


def _status_fields() -> dict[int, bytes]:
    from opentelemetry.trace import StatusCode

    return {code._value_: _status(code._value_, None) for code in StatusCode}


def _status(code: int, message: str | None) -> bytes:
    # Written even when empty, as the SDK's exporter and our JSON writer do.
    fields = (_string(_STATUS_MESSAGE, message) if message else b"") + (
        _STATUS_CODE + _SMALL[code] if code else b""
    )
    return length_delimited(_SPAN_STATUS, fields)


def _span(
    trace_id: int,
    span_id: int,
    parent_span_id: int | None,
    parent_is_remote: bool | None,
    trace_flags: int,
    trace_state: str,
    name: str,
    kind: int,
    start_ns: int,
    end_ns: int,
    attributes: bytes,
    events: bytes,
    links: bytes,
    status: bytes,
) -> bytes:
    flags = trace_flags & 0xFF
    if parent_is_remote is not None:
        flags |= FLAGS_HAS_IS_REMOTE | (FLAGS_IS_REMOTE if parent_is_remote else 0)
    return b"".join(
        (
            _SPAN_TRACE_ID,
            trace_id.to_bytes(16, "big"),
            _SPAN_SPAN_ID,
            span_id.to_bytes(8, "big"),
            _string(_SPAN_TRACE_STATE, trace_state) if trace_state else b"",
            _SPAN_PARENT_ID + parent_span_id.to_bytes(8, "big") if parent_span_id else b"",
            _string(_SPAN_NAME, name),
            _SPAN_KIND + _SMALL[kind] if kind else b"",
            _SPAN_START,
            _pack_fixed64(start_ns),
            _SPAN_END,
            _pack_fixed64(end_ns),
            attributes,
            events,
            links,
            status,
            _SPAN_FLAGS + _pack_fixed32(flags) if flags else b"",
        )
    )


def encode_readable(span: ReadableSpan) -> bytes:
    """The `Span` message of a finished SDK span (resource and scope apart: see
    `resource_part_of`, `scope_part_of`). Raises ValueError for a span without a context."""
    return encode_readable_with_ids(span)[3]


def encode_readable_with_ids(span: ReadableSpan) -> tuple[bytes, bytes, bool, bytes]:
    """(trace id, span id, is a local root, `Span` message) of a finished SDK span: what the
    spool stores, read from the span once. This runs for every span on the processor thread."""
    context = span.context
    if context is None:
        raise ValueError(f"span {span.name!r} has no span context")
    trace_id = context.trace_id.to_bytes(16, "big")
    span_id = context.span_id.to_bytes(8, "big")
    parent = span.parent
    flags = context.trace_flags & 0xFF
    if parent is None or not parent.span_id:
        parent_field = b""
        is_root = True
        flags |= FLAGS_HAS_IS_REMOTE
    else:
        parent_field = _SPAN_PARENT_ID + parent.span_id.to_bytes(8, "big")
        is_root = parent.is_remote
        flags |= FLAGS_HAS_IS_REMOTE | FLAGS_IS_REMOTE if is_root else FLAGS_HAS_IS_REMOTE
    trace_state = context.trace_state
    # TraceState and the SDK's bounded lists tell their length through Python methods: their
    # own containers are asked instead, when they have them.
    has_trace_state = getattr(trace_state, "_dict", trace_state)
    start = span.start_time or 0
    # ReadableSpan's properties copy: `attributes` wraps its BoundedAttributes in a mapping proxy
    # (iterated through the generic Mapping views, under the attributes' lock), `events` and
    # `links` build tuples. Its own fields are read when it has them (3 of ~9 us a span).
    attributes = getattr(span, "_attributes", None)
    if attributes is None or not hasattr(attributes, "items"):
        attributes = span.attributes
    events = getattr(span, "_events", None)
    if events is None:
        events = span.events
    has_events = getattr(events, "_dq", events)
    links = getattr(span, "_links", None)
    if links is None:
        links = span.links
    has_links = getattr(links, "_dq", links)
    status = span.status
    description = status.description
    status_field = None if description else _STATUS_FIELDS.get(status.status_code._value_)
    if status_field is None:
        status_field = _status(status.status_code.value, status.description)
    name = _utf8(span.name)
    size = len(name)
    message = b"".join(
        (
            _SPAN_TRACE_ID,
            trace_id,
            _SPAN_SPAN_ID,
            span_id,
            _string(_SPAN_TRACE_STATE, trace_state.to_header()) if has_trace_state else b"",
            parent_field,
            _SPAN_NAME,
            _SMALL[size] if size < 0x80 else _varint(size),
            name,
            _KIND_FIELDS.get(span.kind._value_) or _SPAN_KIND + _SMALL[span.kind.value + 1],
            _pack_times(0x39, start, 0x41, span.end_time or start),
            _attributes(_SPAN_ATTRIBUTE, attributes),
            _events(events) if has_events else b"",
            _links(links) if has_links else b"",
            status_field,
            _SPAN_FLAGS,
            _pack_fixed32(flags),
        )
    )
    return trace_id, span_id, is_root, message


def _events(events: Sequence[Any]) -> bytes:
    return b"".join(
        length_delimited(
            _SPAN_EVENT,
            _EVENT_TIME
            + _pack_fixed64(event.timestamp or 0)
            + _string(_EVENT_NAME, event.name)
            + _attributes(_EVENT_ATTRIBUTE, event.attributes),
        )
        for event in events
    )


def _links(links: Sequence[Any]) -> bytes:
    return b"".join(
        length_delimited(
            _SPAN_LINK,
            _LINK_TRACE_ID
            + link.context.trace_id.to_bytes(16, "big")
            + _LINK_SPAN_ID
            + link.context.span_id.to_bytes(8, "big")
            + _attributes(_LINK_ATTRIBUTE, link.attributes)
            + _LINK_FLAGS
            + _pack_fixed32(
                (link.context.trace_flags & 0xFF)
                | FLAGS_HAS_IS_REMOTE
                | (FLAGS_IS_REMOTE if link.context.is_remote else 0)
            ),
        )
        for link in links
    )


def encode_record(record: SpanRecord) -> bytes:
    """The `Span` message of a `SpanRecord` (a span stored by an earlier spool format)."""
    return _span(
        record.trace_id,
        record.span_id,
        record.parent_span_id,
        record.parent_is_remote,
        0,
        "",
        record.name,
        _KIND_BY_NAME.get(record.kind, 1),
        record.start_time_ns,
        record.end_time_ns,
        _attributes(_SPAN_ATTRIBUTE, record.attributes),
        b"".join(
            length_delimited(
                _SPAN_EVENT,
                _EVENT_TIME
                + _pack_fixed64(event.timestamp_ns)
                + _string(_EVENT_NAME, event.name)
                + _attributes(_EVENT_ATTRIBUTE, event.attributes),
            )
            for event in record.events
        ),
        b"".join(
            length_delimited(
                _SPAN_LINK,
                _LINK_TRACE_ID
                + link.trace_id.to_bytes(16, "big")
                + _LINK_SPAN_ID
                + link.span_id.to_bytes(8, "big")
                + _attributes(_LINK_ATTRIBUTE, link.attributes),
            )
            for link in record.links
        ),
        _status(_STATUS_BY_NAME.get(record.status_code, 0), record.status_description),
    )


def resource_part(attributes: Mapping[str, Any], schema_url: str | None = None) -> bytes:
    """The fields of a `ResourceSpans` other than its scope spans: the resource and its schema."""
    resource = _attributes(_RESOURCE_ATTRIBUTE, attributes)
    return length_delimited(_RESOURCE_SPANS_RESOURCE, resource) + (
        _string(_RESOURCE_SPANS_SCHEMA_URL, schema_url) if schema_url else b""
    )


def scope_part(name: str, version: str | None, schema_url: str | None = None) -> bytes:
    """The fields of a `ScopeSpans` other than its spans: the scope and its schema."""
    scope = (_string(_SCOPE_NAME, name) if name else b"") + (
        _string(_SCOPE_VERSION, version) if version else b""
    )
    return length_delimited(_SCOPE_SPANS_SCOPE, scope) + (
        _string(_SCOPE_SPANS_SCHEMA_URL, schema_url) if schema_url else b""
    )


def resource_part_of(resource: Resource | None) -> bytes:
    if resource is None:
        return resource_part({})
    return resource_part(resource.attributes, resource.schema_url)


def scope_part_of(scope: InstrumentationScope | None) -> bytes:
    if scope is None:
        return scope_part("", None)
    return scope_part(scope.name, scope.version, scope.schema_url)


def span_field(span: bytes) -> bytes:
    """A `Span` message as the `spans` field of a `ScopeSpans`: such fields, joined, are a
    scope's spans."""
    size = len(span)
    return _SCOPE_SPANS_SPAN + (_SMALL[size] if size < 0x80 else _varint(size)) + span


def split_span_fields(fields: bytes, *, payload_only: bool = False) -> list[bytes]:
    """The `span_field`s joined in `fields`, one by one (or the `Span` messages in them).
    Raises ValueError on bytes `span_field` did not write."""
    out = []
    offset, end = 0, len(fields)
    while offset < end:
        if fields[offset : offset + 1] != _SCOPE_SPANS_SPAN:
            raise ValueError(f"not a span field at byte {offset}")
        start = offset
        offset += 1
        size = shift = 0
        while True:
            if offset >= end:
                raise ValueError("span field cut short")
            byte = fields[offset]
            offset += 1
            size |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        if offset + size > end:
            raise ValueError("span field cut short")
        out.append(
            fields[offset : offset + size] if payload_only else fields[start : offset + size]
        )
        offset += size
    return out


def traces_data(groups: Iterable[ScopeGroup]) -> bytes:
    """A `TracesData` message (the same bytes as an `ExportTraceServiceRequest`) holding each
    resource part with its scope parts and their span fields."""
    resources = []
    for resource, scopes in groups:
        scope_spans = b"".join(
            length_delimited(_RESOURCE_SPANS_SCOPE_SPANS, scope + spans) for scope, spans in scopes
        )
        resources.append(length_delimited(_TRACES_DATA_RESOURCE_SPANS, resource + scope_spans))
    return b"".join(resources)


_KIND_FIELDS = _kind_fields()
_STATUS_FIELDS = _status_fields()
