"""The spool's protobuf writer: a span written directly decodes to the same `Span` as the SDK's
own OTLP encoder makes (but the trace flags, which it keeps), and a trace joined from stored
pieces decodes to the spans it was made from."""

from __future__ import annotations

import dataclasses

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    set_span_in_context,
)

from otel_bridge.langchain_views import FinishedTrace
from otel_bridge.otlp import trace_from_traces_data
from otel_bridge.otlp_wire import (
    encode_readable,
    resource_part_of,
    scope_part_of,
    span_field,
    split_span_fields,
    traces_data,
)


def varied_spans() -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource({"service.name": "wire", "n": 7}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("wire.scope", "2.0")
    remote = SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=TraceFlags(1))
    attributes = {
        "text": "héllo ✓" + "x" * 300,
        "empty": "",
        "yes": True,
        "no": False,
        "small": 1,
        "negative": -5,
        "large": 2**62,
        "ratio": -2.25,
        "texts": ("a", "b"),
        "ints": (1, 2),
        "floats": (0.5,),
        "flags": (True, False),
    }
    with tracer.start_as_current_span(
        "server",
        kind=SpanKind.SERVER,
        attributes=attributes,
        context=set_span_in_context(NonRecordingSpan(remote)),
    ) as server:
        server.add_event("an event", {"k": "v", "n": 3})
        with tracer.start_as_current_span(
            "client", kind=SpanKind.CLIENT, links=[Link(server.get_span_context(), {"l": 1})]
        ) as client:
            client.set_status(Status(StatusCode.ERROR, "it broke"))
        with provider.get_tracer("other").start_as_current_span("ok") as ok:
            ok.set_status(Status(StatusCode.OK))
    return list(memory.get_finished_spans())


def test_a_span_written_directly_is_the_sdk_encoders_span() -> None:
    spans = varied_spans()
    request = encode_spans(spans)
    expected = {
        span.span_id: span
        for rs in request.resource_spans
        for ss in rs.scope_spans
        for span in ss.spans
    }
    for readable in spans:
        written = Span.FromString(encode_readable(readable))
        wanted = expected[written.span_id]
        assert written.flags & 0xFF == readable.context.trace_flags
        written.flags &= ~0xFF  # the SDK's encoder leaves the trace flags out
        for link in written.links:
            link.flags &= ~0xFF
        assert written == wanted, readable.name


def test_a_trace_joined_from_stored_pieces_decodes_to_its_spans() -> None:
    spans = varied_spans()
    by_scope: dict[tuple[bytes, bytes], list[bytes]] = {}
    for span in spans:
        key = (resource_part_of(span.resource), scope_part_of(span.instrumentation_scope))
        by_scope.setdefault(key, []).append(span_field(encode_readable(span)))
    (resource,) = {resource for resource, _ in by_scope}
    pieces = [(scope, b"".join(fields)) for (_, scope), fields in by_scope.items()]
    decoded = trace_from_traces_data(traces_data([(resource, pieces)]))
    assert decoded == FinishedTrace.from_spans(spans)
    for _, fields in pieces:
        assert b"".join(split_span_fields(fields)) == fields


def test_surrogates_in_names_and_values_cost_only_those_characters() -> None:
    """A str may hold surrogates (text decoded with surrogateescape, JSON with lone \\ud800
    escapes): a pair is written as the character it stands for, a lone one as U+FFFD, so the
    trace still decodes (written through, they made the whole trace undecodable)."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource({"host": "box\udc80"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("wire.scope")
    with tracer.start_as_current_span("name\ud800", attributes={"a": "pair \ud83d\ude00"}) as span:
        span.add_event("event\udfff", {"e": ["x\ud800", "ok"]})
        span.set_attribute("long", "\ud800" + "y" * 200)
    (readable,) = memory.get_finished_spans()
    piece = span_field(encode_readable(readable))
    resource = resource_part_of(readable.resource)
    scope = scope_part_of(readable.instrumentation_scope)
    decoded = trace_from_traces_data(traces_data([(resource, [(scope, piece)])]))
    (record,) = decoded.spans
    assert record.name == "name\ufffd"
    assert record.attributes["a"] == "pair \U0001f600"
    assert record.attributes["long"] == "\ufffd" + "y" * 200
    assert record.events[0].name == "event\ufffd"
    assert list(record.events[0].attributes["e"]) == ["x\ufffd", "ok"]


def test_a_stored_trace_keeps_its_protobuf_and_decodes_its_spans_when_read() -> None:
    """A trace read from the spool carries the `TracesData` it was stored as, and its spans
    become records only when a sink reads them: a payload holding two traces parses, and
    raises once its spans are read."""
    spans = varied_spans()
    resource = resource_part_of(spans[0].resource)
    fields = b"".join(span_field(encode_readable(span)) for span in spans)
    payload = traces_data([(resource, [(scope_part_of(spans[0].instrumentation_scope), fields)])])
    trace = trace_from_traces_data(payload, trace_id=spans[0].context.trace_id)
    assert trace.otlp is not None and trace.otlp[0] == payload
    assert trace.otlp[1].SerializeToString() == payload
    assert trace.span(spans[0].context.span_id) is not None
    assert {span.span_id for span in trace.spans} == {s.context.span_id for s in spans}
    assert FinishedTrace.from_spans(spans).otlp is None
    # Still a frozen dataclass: replace() copies the decoded spans (and not the stored bytes).
    lazy = trace_from_traces_data(payload)
    copy = dataclasses.replace(lazy, partial=True)
    assert copy.partial and copy.otlp is None
    assert copy.spans == lazy.spans == trace.spans
    assert lazy == trace

    other = span_field(encode_readable(spans[0])).replace(
        spans[0].context.trace_id.to_bytes(16, "big"), b"\x01" * 16
    )
    scope = scope_part_of(spans[0].instrumentation_scope)
    mixed = trace_from_traces_data(traces_data([(resource, [(scope, fields + other)])]))
    try:
        mixed.spans  # noqa: B018
    except ValueError as error:
        assert "another trace id" in str(error)
    else:
        raise AssertionError("a payload of two traces decoded as one")


@pytest.mark.parametrize("size", [0x7D, 0x7E, 0x7F, 0x80, 0x81, 0x3FFA, 0x3FFB, 0x3FFC, 0x3FFD])
def test_string_attributes_around_a_length_boundary_are_written_as_protobuf_writes_them(
    size: int,
) -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("wire").start_as_current_span("s", attributes={"k": "v" * size}):
        pass
    written = encode_readable(memory.get_finished_spans()[0])
    # The shortest encoding of every length: what protobuf itself writes for the same message.
    assert Span.FromString(written).SerializeToString() == written
    assert Span.FromString(written).attributes[0].value.string_value == "v" * size
