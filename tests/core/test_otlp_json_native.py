"""The C byte walk (otel_bridge_speedups.spans_json) against the Python one it stands in for
(otlp_json._python_spans_json): the same list for the same bytes, span by span, on generated
messages, on every edge of UTF-8, numbers and escapes, and on damaged bytes, which the C walk
must refuse (None) rather than read past (issue 14). A span either walk writes from its bytes
must also read the same as from the message."""

from __future__ import annotations

import json
import random
import struct

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import ScopeSpans, Span
from otel_bridge_speedups import spans_json

from otel_bridge import otlp_json
from otel_bridge.otlp_wire import _varint
from tests.core.test_otlp_json import _random_span


def _scopes(seed: int, count: int) -> list[ScopeSpans]:
    rng = random.Random(seed)
    scopes = []
    for _ in range(count):
        scope_spans = ScopeSpans()
        if rng.random() < 0.5:
            scope_spans.scope.name = "s"
        for _ in range(rng.randrange(0, 5)):
            _random_span(rng, scope_spans.spans.add())
        if rng.random() < 0.3:
            scope_spans.schema_url = "https://schema"
        scopes.append(scope_spans)
    return scopes


def _field(tag: int, payload: bytes) -> bytes:
    return bytes([tag]) + _varint(len(payload)) + payload


def _scope_of(*spans: bytes) -> bytes:
    return b"".join(_field(0x12, span) for span in spans)


def _from_message(scope_spans: ScopeSpans) -> list[str]:
    return [otlp_json._span(span) for span in scope_spans.spans]


def test_both_walks_write_each_generated_span_alike_and_as_the_message_reads() -> None:
    taken = 0
    for scope_spans in _scopes(seed=1414, count=1500):
        data = scope_spans.SerializeToString()
        texts = spans_json(data)
        assert texts == otlp_json._python_spans_json(data)
        assert texts is not None and len(texts) == len(scope_spans.spans)
        for text, expected in zip(texts, _from_message(scope_spans), strict=True):
            if text is not None:
                taken += 1
                assert text == expected
    assert taken > 400  # (483 of 3,051 spans: the others hold events, links, nested values)


def test_every_byte_sequence_that_is_not_utf8_is_refused_as_python_refuses_it() -> None:
    candidates = [bytes([a]) for a in range(256)]
    candidates += [bytes([a, b]) for a in range(256) for b in range(256)]
    thirds = (0x00, 0x7F, 0x80, 0xBF, 0xC0)
    candidates += [bytes([a, b, c]) for a in range(0xE0, 0x100) for b in range(256) for c in thirds]
    candidates += [
        bytes([a, b, c, d])
        for a in range(0xF0, 0x100)
        for b in range(256)
        for c in (0x7F, 0x80, 0xBF)
        for d in (0x80, 0xBF, 0xC0)
    ]
    candidates += ["é😀€\U0010ffff".encode(), b"ok \xed\xa0\x80 surrogate", b"\xf4\x90\x80\x80"]
    refused = 0
    for text in candidates:
        data = _scope_of(_field(0x2A, text))  # a span with only this name
        try:
            expected = '{"traceId":"","spanId":"","name":' + otlp_json._quote(text.decode()) + "}"
        except UnicodeDecodeError:
            expected = None
            refused += 1
        assert spans_json(data) == [expected], text
        assert otlp_json._python_spans_json(data) == [expected], text
    assert refused > 100_000


def test_every_ascii_character_is_escaped_as_json_escapes_it() -> None:
    text = "".join(map(chr, range(128))) + "é 😀 \u2028"
    span = Span(trace_id=bytes(range(16)), span_id=b"\x00" * 7 + b"\xff", name=text)
    span.attributes.add(key=text).value.string_value = text
    span.status.message = text
    # Past the 4 KiB from which the C walk counts escapes; then 6 bytes out for each byte in.
    span.attributes.add(key="long").value.string_value = text * 40
    span.attributes.add(key="controls").value.string_value = "\x01" * 4000
    data = _scope_of(span.SerializeToString())
    (written,) = spans_json(data)
    assert written == otlp_json._python_spans_json(data)[0]  # type: ignore[index]
    read = json.loads(written)
    assert read["name"] == read["attributes"][0]["key"] == read["status"]["message"] == text
    assert read["attributes"][1]["value"]["stringValue"] == text * 40
    assert read["attributes"][2]["value"]["stringValue"] == "\x01" * 4000
    assert read["traceId"] == bytes(range(16)).hex() and read["spanId"] == "00000000000000ff"


def test_numbers_read_alike_at_every_edge() -> None:
    rng = random.Random(64)
    doubles = [0.0, -0.0, 5e-324, -5e-324, 1.7976931348623157e308, 1e16, 1e15, 0.1, 1 / 3]
    doubles += [float("nan"), float("inf"), float("-inf")]
    doubles += [struct.unpack("<d", rng.randbytes(8))[0] for _ in range(3000)]
    ints = [0, 1, -1, 2**63 - 1, -(2**63), 2**31, -(2**31) - 1, 127, 128, 16383, 16384]
    ints += [rng.randrange(-(2**63), 2**63) for _ in range(3000)]
    span = Span(trace_id=b"t" * 16, span_id=b"s" * 8)
    for number in doubles:
        span.attributes.add(key="d").value.double_value = number
    for integer in ints:
        span.attributes.add(key="i").value.int_value = integer
    times = [0, 1, 2**63, 2**64 - 1, rng.randrange(2**64)]
    for start, end in zip(times, reversed(times), strict=True):
        span.start_time_unix_nano, span.end_time_unix_nano = start, end
        span.kind, span.flags, span.dropped_attributes_count = 5, 2**32 - 1, 2**32 - 1
        span.status.code = 2
        scope_spans = ScopeSpans(spans=[span])
        data = scope_spans.SerializeToString()
        texts = spans_json(data)
        assert texts == otlp_json._python_spans_json(data)
        assert texts == _from_message(scope_spans)


def test_what_the_walk_does_not_write_is_handed_back_span_by_span() -> None:
    plain = Span(trace_id=b"t" * 16, span_id=b"a" * 8, name="plain").SerializeToString()
    with_event = Span(trace_id=b"t" * 16, span_id=b"b" * 8)
    with_event.events.add(name="e")
    with_bytes = Span(trace_id=b"t" * 16, span_id=b"c" * 8)
    with_bytes.attributes.add(key="b").value.bytes_value = b"\x00"
    unknown_field = plain + b"\x98\x06\x01"  # a span's field 99, a later OTLP version's
    data = _scope_of(
        plain, with_event.SerializeToString(), with_bytes.SerializeToString(), unknown_field
    )
    texts = spans_json(data)
    assert texts == otlp_json._python_spans_json(data)
    assert texts is not None and texts[0] is not None
    assert texts[1:] == [None, None, None]
    # A ScopeSpans field the walk does not know, and one cut short: the whole list is handed back.
    assert spans_json(data + b"\x20\x01") is None
    assert spans_json(data[:-1]) is None
    assert spans_json(b"") == []


def test_values_past_their_field_or_past_64_bits_are_refused() -> None:
    def attribute_value(value: bytes) -> bytes:
        key_value = _field(0x0A, b"k") + _field(0x12, value)
        return _scope_of(_field(0x4A, key_value))

    assert spans_json(attribute_value(b"\x18" + b"\xff" * 9 + b"\x01")) == [
        '{"traceId":"","spanId":"","attributes":[{"key":"k","value":{"intValue":"-1"}}]}'
    ]
    assert spans_json(attribute_value(b"\x18" + b"\xff" * 9 + b"\x02")) == [None]  # 65 bits
    assert spans_json(attribute_value(b"\x18" + b"\xff" * 10 + b"\x01")) == [None]  # 11 bytes
    assert spans_json(attribute_value(b"\x10\x01")) == [
        '{"traceId":"","spanId":"","attributes":[{"key":"k","value":{"boolValue":true}}]}'
    ]
    assert spans_json(attribute_value(b"\x10\x01\x10\x00")) == [None]  # two values
    # A KeyValue with two values, the first one the walks do not take (bytes): both refuse it.
    two_values = _field(0x0A, b"k") + _field(0x12, b"\x3a\x00") + _field(0x12, b"\x10\x01")
    data = _scope_of(_field(0x4A, two_values))
    assert spans_json(data) == otlp_json._python_spans_json(data) == [None]
    assert spans_json(attribute_value(b"\x21" + b"\x00" * 7)) == [None]  # a double cut short
    assert spans_json(attribute_value(b"\x0a\x05abc")) == [None]  # a string past its field
    assert spans_json(_scope_of(_field(0x0A, b"\x01" * 16) + b"\x39" + b"\x00" * 7)) == [None]


def test_the_argument_is_any_bytes_like_object() -> None:
    data = _scope_of(Span(name="n").SerializeToString())
    assert spans_json(memoryview(data)) == spans_json(bytearray(data)) == spans_json(data)
    with pytest.raises(TypeError):
        spans_json("not bytes")


def _damaged(rng: random.Random, data: bytes) -> bytes:
    damaged = bytearray(data)
    for _ in range(rng.randrange(1, 4)):
        how = rng.randrange(5)
        at = rng.randrange(len(damaged) + 1)
        if how == 0 and damaged:
            damaged[min(at, len(damaged) - 1)] = rng.randrange(256)
        elif how == 1:
            del damaged[at:]
        elif how == 2:
            damaged[at:at] = rng.randbytes(rng.randrange(1, 4))
        elif how == 3 and damaged:  # a length made larger or smaller
            index = min(at, len(damaged) - 1)
            damaged[index] = (damaged[index] + rng.choice([-1, 1, 0x80])) % 256
        else:
            damaged[at:at] = damaged[rng.randrange(len(damaged) + 1) :][: rng.randrange(20)]
    return bytes(damaged)


def test_damaged_bytes_are_refused_never_read_past_and_never_written_differently() -> None:
    rng = random.Random(99)
    sources = [scope.SerializeToString() for scope in _scopes(seed=7, count=300)]
    both_written = 0
    for _ in range(20_000):
        data = _damaged(rng, rng.choice(sources))
        texts = spans_json(data)
        python = otlp_json._python_spans_json(data)
        if texts is None:
            continue
        assert all(text is None or isinstance(text, str) for text in texts)
        if python is not None and len(python) == len(texts):
            for ours, theirs in zip(texts, python, strict=True):
                # The C walk refuses whatever the Python one refuses (and more: it checks every
                # extent against its field's end, where Python's slices stop at the buffer's).
                assert theirs is not None or ours is None
                if ours is not None and theirs is not None:
                    both_written += 1
                    assert ours == theirs
        # What a client could send: bytes upb reads. Re-serialized (as the receiver's message
        # is), every span the walk writes reads as the message reads it.
        parsed = ScopeSpans()
        try:
            parsed.ParseFromString(data)
        except Exception:  # upb's DecodeError: not a message at all
            continue
        again = parsed.SerializeToString()
        for text, expected in zip(spans_json(again) or [], _from_message(parsed), strict=True):
            assert text is None or text == expected
    assert both_written > 800  # (1,100: damage often leaves no span both walks write)
