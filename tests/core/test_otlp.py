"""The OTLP codec: SDK spans <-> protobuf <-> OTLP JSON <-> SpanRecord / FinishedTrace."""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue, KeyValueList
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from otel_bridge import otlp
from otel_bridge.langchain_views import FinishedTrace
from otel_bridge.trace_tree import EventRecord, LinkRecord, SpanRecord
from tests.support.spool_batches import request_of


def _spans() -> list[ReadableSpan]:
    """Real SDK spans of one trace: attributes of every type, an event, a link, an error."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "codec-test"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("codec.test", "1.2.3")
    with tracer.start_as_current_span(
        "chain",
        kind=SpanKind.SERVER,
        attributes={
            "str": "héllo",
            "int": 2**62,
            "float": 0.25,
            "bool": True,
            "strs": ("a", "b"),
            "ints": (1, 2, 3),
        },
    ) as root:
        root.add_event("step", {"n": 1})
        with tracer.start_as_current_span(
            "llm", kind=SpanKind.CLIENT, links=[Link(root.get_span_context(), {"why": "x"})]
        ) as child:
            child.set_status(Status(StatusCode.ERROR, "boom"))
    provider.shutdown()
    return list(memory.get_finished_spans())


def test_protobuf_round_trip_through_readable_spans_is_lossless() -> None:
    request = otlp.request_from_spans(_spans())
    decoded = otlp.decode_protobuf(request.SerializeToString())
    assert otlp.request_from_spans(otlp.spans_from_request(decoded)) == request


def test_json_uses_hex_ids_int_enums_and_string_int64() -> None:
    spans = _spans()
    line = otlp.encode_json(otlp.request_from_spans(spans))
    document = json.loads(line)
    span = document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    child = next(s for s in spans if s.parent is not None)
    assert span["traceId"] == format(child.context.trace_id, "032x")
    assert span["spanId"] == format(child.context.span_id, "016x")
    assert span["parentSpanId"] == format(child.parent.span_id, "016x")  # type: ignore[union-attr]
    assert span["links"][0]["traceId"] == format(child.context.trace_id, "032x")
    assert span["kind"] == 3  # SPAN_KIND_CLIENT as an integer
    assert isinstance(span["startTimeUnixNano"], str)
    assert "\n" not in line


def test_json_round_trip_equals_protobuf() -> None:
    request = otlp.request_from_spans(_spans())
    assert otlp.decode_json(otlp.encode_json(request)) == request


def test_json_accepts_named_enums_and_ignores_unknown_fields() -> None:
    document = {
        "resourceSpans": [
            {
                "futureField": {"x": 1},
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": "5B8EFFF798038103D269B633813FC60C",
                                "spanId": "EEE19B7EC3C1B174",
                                "name": "s",
                                "kind": "SPAN_KIND_SERVER",
                                "startTimeUnixNano": "1544712660000000000",
                                "endTimeUnixNano": 1544712661000000000,
                                "unknownSpanField": True,
                            }
                        ]
                    }
                ],
            }
        ]
    }
    (span,) = otlp.spans_from_request(otlp.decode_json(json.dumps(document)))
    assert span.context is not None
    assert span.context.trace_id == 0x5B8EFFF798038103D269B633813FC60C
    assert span.kind is SpanKind.SERVER
    assert span.end_time == 1544712661000000000


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "invalid JSON"),
        (b"[1, 2]", "top level must be an object"),
        (b'{"resourceSpans": {}}', "must be an array"),
        (
            b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz","spanId":"00"}]}]}]}',
            "not hex",
        ),
        (b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":5}]}]}]}', "invalid OTLP JSON"),
        (b"\xff\xfe", "invalid JSON"),
        (b"[" * 100_000, "invalid JSON"),
    ],
)
def test_bad_json_is_a_decode_error(body: bytes, message: str) -> None:
    with pytest.raises(otlp.OTLPDecodeError, match=message):
        otlp.decode_json(body)


def test_truncated_protobuf_is_a_decode_error() -> None:
    body = otlp.request_from_spans(_spans()).SerializeToString()
    with pytest.raises(otlp.OTLPDecodeError):
        otlp.decode_protobuf(body[: len(body) // 2])


def test_empty_protobuf_is_an_empty_request() -> None:
    assert otlp.spans_from_request(otlp.decode_protobuf(b"")) == []


def test_spans_with_invalid_ids_are_rejected_and_counted() -> None:
    request = otlp.request_from_spans(_spans())
    spans = request.resource_spans[0].scope_spans[0].spans
    spans[0].trace_id = b"\x00" * 16
    spans[1].span_id = b"\x01\x02"
    accepted, rejected = otlp.accepted_spans(request)
    assert accepted == []
    assert rejected is not None
    assert rejected.count == 2
    assert "invalid trace id" in rejected.reason
    response = otlp.export_response(rejected)
    assert response.partial_success.rejected_spans == 2


def test_non_primitive_attribute_values_survive_as_json() -> None:
    request = otlp.request_from_spans(_spans())
    span = request.resource_spans[0].scope_spans[0].spans[0]
    span.attributes.append(
        KeyValue(
            key="map",
            value=AnyValue(
                kvlist_value=KeyValueList(values=[KeyValue(key="k", value=AnyValue(int_value=1))])
            ),
        )
    )
    span.attributes.append(KeyValue(key="raw", value=AnyValue(bytes_value=b"\x00\x01")))
    (record, *_) = otlp.records_from_request(request)
    assert json.loads(str(record.attributes["map"])) == {"k": 1}
    assert record.attributes["raw"] == base64.b64encode(b"\x00\x01").decode()


def test_records_match_the_core_span_records() -> None:
    """The receiver's path (OTLP -> SpanRecord) agrees with the in-process path."""
    spans = _spans()
    from_otlp = otlp.records_from_request(otlp.request_from_spans(spans))
    in_process = [SpanRecord.from_readable(span) for span in spans]
    key = lambda r: r.span_id  # noqa: E731
    for decoded, direct in zip(
        sorted(from_otlp, key=key), sorted(in_process, key=key), strict=True
    ):
        assert decoded.trace_id == direct.trace_id
        assert decoded.parent_span_id == direct.parent_span_id
        assert decoded.name == direct.name
        assert decoded.kind == direct.kind
        assert decoded.status_code == direct.status_code
        assert decoded.status_description == direct.status_description
        assert dict(decoded.attributes) == dict(direct.attributes)
        assert decoded.events == direct.events
        assert decoded.resource == direct.resource
        assert (decoded.scope_name, decoded.scope_version) == (
            direct.scope_name,
            direct.scope_version,
        )


def test_trace_line_round_trip(tmp_path: Path) -> None:
    trace = FinishedTrace.from_spans(_spans())
    path = tmp_path / "traces.jsonl"
    path.write_text(otlp.trace_to_json_line(trace) + "\n\n", encoding="utf-8")
    (read,) = otlp.read_traces(path)
    assert read.trace_id == trace.trace_id
    assert sorted(read.spans, key=lambda s: s.span_id) == sorted(
        trace.spans, key=lambda s: s.span_id
    )


def test_collector_lines_are_regrouped_by_trace() -> None:
    """A Collector file exporter may split a trace over lines and mix traces in one line."""
    first, second = _spans(), _spans()
    line_a = otlp.encode_json(otlp.request_from_spans([first[0], second[0]]))
    line_b = otlp.encode_json(otlp.request_from_spans([first[1], second[1]]))
    traces = otlp.traces_from_json_lines([line_a, line_b])
    assert [t.trace_id for t in traces] == [
        first[0].context.trace_id,  # type: ignore[union-attr]
        second[0].context.trace_id,  # type: ignore[union-attr]
    ]
    assert all(len(t.spans) == 2 for t in traces)


def test_a_bad_line_names_its_number() -> None:
    good = otlp.encode_json(ExportTraceServiceRequest())
    with pytest.raises(otlp.OTLPDecodeError, match="line 2"):
        otlp.traces_from_json_lines([good, "{oops"])


_scalars = (
    st.text()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False)
)
_attribute_values = (
    _scalars
    | st.lists(st.text(), max_size=3).map(tuple)
    | st.lists(st.integers(min_value=-(2**63), max_value=2**63 - 1), max_size=3).map(tuple)
)


@settings(deadline=None, max_examples=50)  # a shared, loaded CI machine: no timing
@given(
    attributes=st.dictionaries(st.text(min_size=1), _attribute_values, max_size=5),
    name=st.text(),
    trace_id=st.integers(min_value=1, max_value=2**128 - 1),
    span_id=st.integers(min_value=1, max_value=2**64 - 1),
    parent=st.none() | st.integers(min_value=1, max_value=2**64 - 1),
    remote=st.booleans(),
)
def test_records_survive_the_json_line_format(
    attributes: dict[str, Any],
    name: str,
    trace_id: int,
    span_id: int,
    parent: int | None,
    remote: bool,
) -> None:
    record = SpanRecord(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent,
        name=name,
        kind="CLIENT",
        start_time_ns=1,
        end_time_ns=2**63,
        attributes=attributes,
        status_code="ERROR",
        status_description="why",
        resource={"service.name": "svc"},
        scope_name="scope",
        scope_version="1",
        parent_is_remote=remote and parent is not None,
    )
    (trace,) = otlp.traces_from_json_lines(
        [otlp.trace_to_json_line(FinishedTrace(trace_id, (record,)))]
    )
    assert trace.spans == (record,)


def _varied_records() -> list[SpanRecord]:
    """Spans covering what the JSON mapping treats apart: every attribute type (NaN and the
    infinities, integers past int64, empty values, bytes, nested lists and maps), every span
    kind and status, events, links, three resources and scopes without name or version."""
    values: list[Any] = [
        True, False, 0, 1, -5, 2**62, 2**70, 0.0, 1.5, -2.25, math.nan, math.inf, -math.inf,
        "", "héllo ✓", b"", b"\x00\xff", (), (1, 2), ("a", "b"), {"k": 1, "n": {"x": "y"}}, {},
    ]  # fmt: skip
    kinds = ["INTERNAL", "CLIENT", "SERVER", "PRODUCER", "CONSUMER", "BOGUS"]
    records = []
    for i in range(12):
        records.append(
            SpanRecord(
                trace_id=0xABC,
                span_id=i + 1,
                parent_span_id=None if i == 0 else 1,
                parent_is_remote=i == 2,
                name="" if i == 3 else f"span {i}",
                kind=kinds[i % len(kinds)],
                start_time_ns=0 if i == 4 else 10 + i,
                end_time_ns=20 + i,
                attributes={f"a{j}": v for j, v in enumerate(values) if (i + j) % 3},
                status_code=["UNSET", "OK", "ERROR"][i % 3],
                status_description=None if i % 2 else "boom",
                events=(EventRecord("e", 5, {"x": 1}), EventRecord("", 0, {})) if i % 2 else (),
                links=(LinkRecord(0xDEF, 7, {"l": "v"}), LinkRecord(1, 2, {}))
                if i % 3 == 0
                else (),
                resource=[{"service.name": "a"}, {}, {"service.name": "b", "n": 3}][i % 3],
                scope_name="" if i == 5 else "scope",
                scope_version=None if i % 2 else "1.0",
            )
        )
    return records


def test_the_file_line_is_the_protobuf_json_mapping_of_the_trace() -> None:
    """The file sink's direct JSON writer and protobuf's JSON mapping of the same request give
    one document, so files read the same in every OTLP reader, at a fraction of the cost."""
    trace = FinishedTrace(0xABC, tuple(_varied_records()))
    line = otlp.trace_to_json_line(trace)
    through_protobuf = otlp.encode_json(request_of(trace.spans))
    assert json.loads(line) == json.loads(through_protobuf)
    assert "\n" not in line
