"""The file sink's OTLP JSON lines: byte for byte what the writer wrote before spans were read
from their protobuf bytes (the texts below are its output), and the same text whichever way a
span is read: from its bytes (strings, numbers and booleans), by the C walk
(otel_bridge_speedups) or the Python one, or from the message (anything else) (issue 14).

Every test taking `walk` runs once with each byte walk. The C one must be installed here:
`make install` builds it, and a test environment without it fails rather than skips."""

from __future__ import annotations

import random
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from otel_bridge import otlp_json
from otel_bridge.otlp_json import traces_data_json
from tests.core.test_file_sink_formats import _every_field_request


@pytest.fixture(params=["c", "python"])
def walk(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Which byte walk `traces_data_json` uses: the C one, or the Python one it stands in for."""
    if request.param == "c":
        import otel_bridge_speedups

        assert otlp_json._native_spans_json is otel_bridge_speedups.spans_json
    else:
        monkeypatch.setattr(otlp_json, "_native_spans_json", None)
    return str(request.param)


EVERY_FIELD_LINE = '{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc ✓"}}],"droppedAttributesCount":2},"scopeSpans":[{"scope":{"name":"scope","version":"1.0","attributes":[{"key":"scope.attr","value":{"boolValue":true}}],"droppedAttributesCount":1},"spans":[{"traceId":"01010101010101010101010101010101","spanId":"0202020202020202","traceState":"a=b","parentSpanId":"0303030303030303","name":"quote \\" backslash \\\\ newline \\n tab \\t é 😀","kind":3,"startTimeUnixNano":"1700000000123456789","endTimeUnixNano":"18446744073709551615","attributes":[{"key":"s","value":{"stringValue":"text"}},{"key":"empty","value":{"stringValue":""}},{"key":"t","value":{"boolValue":true}},{"key":"f","value":{"boolValue":false}},{"key":"i","value":{"intValue":"-9223372036854775808"}},{"key":"zero","value":{"intValue":"0"}},{"key":"d","value":{"doubleValue":2.5}},{"key":"nan","value":{"doubleValue":"NaN"}},{"key":"inf","value":{"doubleValue":"Infinity"}},{"key":"-inf","value":{"doubleValue":"-Infinity"}},{"key":"b","value":{"bytesValue":"AP9ieXRlcw=="}},{"key":"array","value":{"arrayValue":{"values":[{"stringValue":"x"},{"intValue":"7"},{}]}}},{"key":"empty array","value":{"arrayValue":{}}},{"key":"kvlist","value":{"kvlistValue":{"values":[{"key":"inner","value":{"doubleValue":-0.5}}]}}},{"key":"no value"}],"droppedAttributesCount":3,"events":[{"timeUnixNano":"5","name":"event","attributes":[{"key":"e","value":{"stringValue":"v"}}],"droppedAttributesCount":1},{}],"droppedEventsCount":4,"links":[{"traceId":"04040404040404040404040404040404","spanId":"0505050505050505","traceState":"c=d","attributes":[{"key":"l","value":{"intValue":"1"}}],"droppedAttributesCount":6,"flags":256}],"droppedLinksCount":5,"status":{"message":"broke","code":2},"flags":769},{"traceId":"01010101010101010101010101010101","spanId":"0606060606060606"}],"schemaUrl":"https://schema/s"}],"schemaUrl":"https://schema/r"},{"scopeSpans":[{"scope":{}}]}]}'

SIMPLE_SPANS_LINE = '{"resourceSpans":[{"scopeSpans":[{"scope":{"name":"s"},"spans":[{"traceId":"0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a","spanId":"0b0b0b0b0b0b0b0b","traceState":"k=v","name":"naïve \\"quoted\\" \\\\ \\u0001 😀","kind":2,"startTimeUnixNano":"1","endTimeUnixNano":"9223372036854775813","attributes":[{"value":{"stringValue":"empty key"}},{"key":"é","value":{"stringValue":""}},{"key":"long","value":{"stringValue":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\\"\\n"}},{"key":"neg","value":{"intValue":"-5"}},{"key":"big","value":{"intValue":"9223372036854775807"}},{"key":"zero","value":{"intValue":"0"}},{"key":"no","value":{"boolValue":false}},{"key":"yes","value":{"boolValue":true}},{"key":"minus zero","value":{"doubleValue":-0.0}},{"key":"nan","value":{"doubleValue":"NaN"}},{"key":"tiny","value":{"doubleValue":5e-324}},{"key":"empty value","value":{}},{"key":"no value"},{}],"droppedAttributesCount":300,"status":{"code":1},"flags":768},{"traceId":"0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a","spanId":"0c0c0c0c0c0c0c0c","parentSpanId":"0b0b0b0b0b0b0b0b","status":{"message":"only a message"}},{"traceId":"0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a","spanId":"0d0d0d0d0d0d0d0d","attributes":[{"key":"k","value":{"stringValue":"v"}}],"status":{}},{"traceId":"","spanId":""}]}]}]}'


def _simple_spans_request() -> ExportTraceServiceRequest:
    """Spans whose attributes hold strings, numbers and booleans (what the file sink reads from
    the spans' bytes), with the edge cases of each."""
    request = ExportTraceServiceRequest()
    scope_spans = request.resource_spans.add().scope_spans.add()
    scope_spans.scope.name = "s"
    first = scope_spans.spans.add()
    first.trace_id, first.span_id, first.trace_state = b"\x0a" * 16, b"\x0b" * 8, "k=v"
    first.name = 'naïve "quoted" \\ \x01 😀'
    first.kind = Span.SPAN_KIND_SERVER
    first.start_time_unix_nano, first.end_time_unix_nano = 1, 2**63 + 5
    first.dropped_attributes_count, first.flags = 300, 0x300
    values = [
        ("", "string_value", "empty key"),
        ("é", "string_value", ""),
        ("long", "string_value", "x" * 200 + '"\n'),
        ("neg", "int_value", -5),
        ("big", "int_value", 2**63 - 1),
        ("zero", "int_value", 0),
        ("no", "bool_value", False),
        ("yes", "bool_value", True),
        ("minus zero", "double_value", -0.0),
        ("nan", "double_value", float("nan")),
        ("tiny", "double_value", 5e-324),
    ]
    for key, kind, value in values:
        setattr(first.attributes.add(key=key).value, kind, value)
    first.attributes.add(key="empty value").value.SetInParent()
    first.attributes.add(key="no value")
    first.attributes.add()
    first.status.code = Status.STATUS_CODE_OK
    second = scope_spans.spans.add(trace_id=b"\x0a" * 16, span_id=b"\x0c" * 8)
    second.parent_span_id = b"\x0b" * 8
    second.status.message = "only a message"
    third = scope_spans.spans.add(trace_id=b"\x0a" * 16, span_id=b"\x0d" * 8)
    third.status.SetInParent()
    third.attributes.add(key="k").value.string_value = "v"
    scope_spans.spans.add()  # nothing set at all
    return request


def test_the_lines_are_byte_for_byte_what_they_were(walk: str) -> None:
    assert traces_data_json(_every_field_request()) == EVERY_FIELD_LINE
    assert traces_data_json(_simple_spans_request()) == SIMPLE_SPANS_LINE
    # Again: resources, scopes and small attributes now come from what was kept of them.
    assert traces_data_json(_every_field_request()) == EVERY_FIELD_LINE
    assert traces_data_json(_simple_spans_request()) == SIMPLE_SPANS_LINE


def test_spans_of_strings_numbers_and_booleans_are_read_from_their_bytes(
    walk: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def not_from_the_message(span: Any) -> str:
        raise AssertionError("written from the message")

    monkeypatch.setattr(otlp_json, "_span", not_from_the_message)
    assert traces_data_json(_simple_spans_request()) == SIMPLE_SPANS_LINE


def _text(rng: random.Random) -> str:
    return rng.choice(["", "a", "x y", 'q"\\\n\t é 😀\x00\x1f', "long" * 30])


def _any_value(rng: random.Random, value: Any, depth: int) -> None:
    kind = rng.randrange(9)
    if kind == 0:
        value.string_value = _text(rng)
    elif kind == 1:
        value.bool_value = rng.random() < 0.5
    elif kind == 2:
        value.int_value = rng.choice([0, 1, -1, 300, 2**63 - 1, -(2**63)])
    elif kind == 3:
        value.double_value = rng.choice([0.0, -0.0, 0.1, 1e300, float("nan"), float("-inf")])
    elif kind == 4:
        value.bytes_value = rng.choice([b"", b"\x00\xff"])
    elif kind == 5 and depth < 2:
        array = value.array_value
        array.SetInParent()
        for _ in range(rng.randrange(3)):
            _any_value(rng, array.values.add(), depth + 1)
    elif kind == 6 and depth < 2:
        kvlist = value.kvlist_value
        kvlist.SetInParent()
        for _ in range(rng.randrange(3)):
            _key_value(rng, kvlist.values.add(), depth + 1)
    elif kind == 7:
        value.SetInParent()


def _key_value(rng: random.Random, key_value: Any, depth: int = 0) -> None:
    if rng.random() < 0.9:
        key_value.key = _text(rng)
    if rng.random() < 0.9:
        _any_value(rng, key_value.value, depth)


def _attributes(rng: random.Random, message: Any) -> None:
    for _ in range(rng.randrange(5)):
        _key_value(rng, message.attributes.add())
    if rng.random() < 0.2:
        message.dropped_attributes_count = rng.choice([1, 200])


def _random_span(rng: random.Random, span: Any) -> None:
    optional: list[tuple[str, Any]] = [
        ("trace_id", lambda: rng.choice([b"", bytes(range(16))])),
        ("span_id", lambda: rng.choice([b"", b"12345678"])),
        ("trace_state", lambda: _text(rng)),
        ("parent_span_id", lambda: rng.choice([b"", b"abcdefgh"])),
        ("name", lambda: _text(rng)),
        ("kind", lambda: rng.randrange(6)),
        ("start_time_unix_nano", lambda: rng.choice([0, 1, 2**64 - 1])),
        ("end_time_unix_nano", lambda: rng.choice([0, 2**63])),
        ("dropped_events_count", lambda: rng.randrange(3)),
        ("dropped_links_count", lambda: rng.randrange(3)),
        ("flags", lambda: rng.choice([0, 1, 0x301])),
    ]
    for name, value in optional:
        if rng.random() < 0.5:
            setattr(span, name, value())
    _attributes(rng, span)
    if rng.random() < 0.2:
        event = span.events.add(time_unix_nano=rng.randrange(3), name=_text(rng))
        _attributes(rng, event)
    if rng.random() < 0.2:
        link = span.links.add(trace_id=bytes(range(16)), span_id=b"87654321")
        _attributes(rng, link)
    if rng.random() < 0.5:
        span.status.SetInParent()
        if rng.random() < 0.5:
            span.status.message = _text(rng)
        if rng.random() < 0.5:
            span.status.code = rng.randrange(3)


def test_a_span_reads_the_same_from_its_bytes_as_from_the_message(walk: str) -> None:
    rng = random.Random(14)
    request = ExportTraceServiceRequest()
    scopes = [request.resource_spans.add().scope_spans.add() for _ in range(300)]
    for scope_spans in scopes:
        for _ in range(rng.randrange(1, 4)):
            _random_span(rng, scope_spans.spans.add())
    for scope_spans in scopes:
        from_message = "[" + ",".join(otlp_json._span(span) for span in scope_spans.spans) + "]"
        assert otlp_json._spans(scope_spans) == from_message


def test_unknown_fields_are_left_out_as_the_message_leaves_them(walk: str) -> None:
    request = _simple_spans_request()
    scope_spans = request.resource_spans[0].scope_spans[0]
    expected = traces_data_json(request)
    # Fields a later OTLP version may add: a span's field 99 (varint), its status's field 9.
    span_bytes = scope_spans.spans[1].SerializeToString() + b"\x98\x06\x01"
    scope_spans.spans[1].ParseFromString(span_bytes)
    status_bytes = scope_spans.spans[2].status.SerializeToString() + b"\x4a\x01x"
    scope_spans.spans[2].status.ParseFromString(status_bytes)
    assert traces_data_json(request) == expected


def test_the_walk_in_use_is_named(walk: str) -> None:
    expected = otlp_json.WALK_C if walk == "c" else otlp_json.WALK_PYTHON
    assert otlp_json.spans_walk() == expected
    assert expected.startswith("C (" if walk == "c" else "Python (install otel-bridge-speedups")
