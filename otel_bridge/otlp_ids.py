"""Check the ids of every span of an encoded OTLP request at once, without visiting each span
from Python (span by span, the check was most of the receiver's CPU for a valid request).

The request's bytes are parsed again with a skeleton of the OTLP messages that declares only the
span ids; what the skeleton writes back of each `ScopeSpans` is then nothing but the ids, which
one regular expression checks. Any doubt (an invalid id, or bytes laid out other than expected)
answers "not known valid", and the caller checks span by span.
"""

from __future__ import annotations

import re
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

__all__ = ["ids_known_valid"]

_PACKAGE = "otel_bridge.span_ids"


def _skeleton_request() -> Any:
    """The class of a message with the field numbers of `ExportTraceServiceRequest` >
    `ResourceSpans` > `ScopeSpans` > `Span`, holding only the spans' trace, span and parent ids."""
    file = descriptor_pb2.FileDescriptorProto(
        name="otel_bridge/span_ids.proto", package=_PACKAGE, syntax="proto3"
    )
    field = descriptor_pb2.FieldDescriptorProto
    layout: dict[str, list[tuple[str, int, str | None]]] = {
        "Span": [("trace_id", 1, None), ("span_id", 2, None), ("parent_span_id", 4, None)],
        "ScopeSpans": [("spans", 2, "Span")],
        "ResourceSpans": [("scope_spans", 2, "ScopeSpans")],
        "Request": [("resource_spans", 1, "ResourceSpans")],
    }
    for name, fields in layout.items():
        message = file.message_type.add(name=name)
        for field_name, number, item in fields:
            kind: dict[str, Any] = (
                {"type": field.TYPE_BYTES, "label": field.LABEL_OPTIONAL}
                if item is None
                else {
                    "type": field.TYPE_MESSAGE,
                    "label": field.LABEL_REPEATED,
                    "type_name": f".{_PACKAGE}.{item}",
                }
            )
            message.field.add(name=field_name, number=number, **kind)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.Request"))


_SkeletonRequest = _skeleton_request()

# A ScopeSpans of the skeleton, written back: each span is field 2 (tag 0x12) holding a 16-byte
# trace id (tag 0x0a), an 8-byte span id (tag 0x12) and, when it has a parent, an 8-byte parent
# id (tag 0x22): 28 or 38 bytes. Neither id may be all zeros (OTLP: an invalid id); a parent of
# eight zeros is written by some SDKs for "no parent" and accepted, as the span-by-span check does.
_TRACE_ID = rb"\x0a\x10(?!\x00{16}).{16}"
_SPAN_ID = rb"\x12\x08(?!\x00{8}).{8}"
_VALID_SPANS = re.compile(
    rb"(?:\x12\x1c"
    + _TRACE_ID
    + _SPAN_ID
    + rb"|\x12\x26"
    + _TRACE_ID
    + _SPAN_ID
    + rb"\x22\x08.{8})*",
    re.DOTALL,
)


def ids_known_valid(body: bytes) -> bool:
    """True when every span of the `ExportTraceServiceRequest` encoded in `body` has a 16-byte
    non-zero trace id, an 8-byte non-zero span id, and no parent id or an 8-byte one (what
    `otlp.invalid_ids` accepts). False means "not known": check the spans one by one."""
    try:
        skeleton = _SkeletonRequest.FromString(body)
    except DecodeError:
        return False
    skeleton.DiscardUnknownFields()
    for resource_spans in skeleton.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            if _VALID_SPANS.fullmatch(scope_spans.SerializeToString()) is None:
                return False
    return True
