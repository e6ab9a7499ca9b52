"""The receiver's whole-request id check answers "valid" exactly when the span-by-span check
(`otlp.invalid_ids`) finds no invalid span, for every kind of id the OTLP spec rejects."""

from __future__ import annotations

import random

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from otel_bridge import otlp
from otel_bridge.otlp_ids import ids_known_valid

_TRACE = bytes(range(1, 17))
_SPAN = bytes(range(1, 9))

# (trace id, span id, parent id) of one span that the spec rejects.
INVALID = {
    "zero trace id": (bytes(16), _SPAN, b""),
    "short trace id": (_TRACE[:15], _SPAN, b""),
    "long trace id": (_TRACE + b"\x01", _SPAN, b""),
    "no trace id": (b"", _SPAN, b""),
    "zero span id": (_TRACE, bytes(8), b""),
    "short span id": (_TRACE, _SPAN[:7], b""),
    "no span id": (_TRACE, b"", b""),
    "short parent id": (_TRACE, _SPAN, b"\x01" * 7),
    "long parent id": (_TRACE, _SPAN, b"\x01" * 16),
}
VALID = {
    "root": (_TRACE, _SPAN, b""),
    "child": (_TRACE, _SPAN, b"\x02" * 8),
    "zero parent id": (_TRACE, _SPAN, bytes(8)),
    "ids holding tag bytes": (b"\x12\x08" * 8, b"\x0a\x10\x22\x08\x12\x1c\x12\x26", b"\x00" * 8),
}


def _request(ids: list[tuple[bytes, bytes, bytes]], scopes: int = 1) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.add(key="service.name").value.string_value = "svc"
    for number in range(scopes):
        scope_spans = resource_spans.scope_spans.add()
        scope_spans.scope.name = f"scope {number}"
        for trace_id, span_id, parent_id in ids:
            span = scope_spans.spans.add(
                trace_id=trace_id, span_id=span_id, parent_span_id=parent_id, name="s"
            )
            span.attributes.add(key="k").value.string_value = "\x0a\x10" * 20
            span.status.message = "m"
    return request


def _span_by_span_valid(request: ExportTraceServiceRequest) -> bool:
    return not any(
        otlp.invalid_ids(span)
        for resource_spans in request.resource_spans
        for scope_spans in resource_spans.scope_spans
        for span in scope_spans.spans
    )


@pytest.mark.parametrize("case", sorted(INVALID))
def test_one_invalid_span_among_valid_ones_is_not_known_valid(case: str) -> None:
    ids = [VALID["root"], VALID["child"], INVALID[case], VALID["child"]]
    request = _request(ids, scopes=2)
    assert not _span_by_span_valid(request)
    assert not ids_known_valid(request.SerializeToString())


@pytest.mark.parametrize("case", sorted(VALID))
def test_valid_ids_are_known_valid(case: str) -> None:
    request = _request([VALID["root"], VALID[case]], scopes=2)
    assert _span_by_span_valid(request)
    assert ids_known_valid(request.SerializeToString())


def test_random_requests_agree_with_the_span_by_span_check() -> None:
    rng = random.Random(14)
    kinds = list(VALID.values()) * 6 + list(INVALID.values())
    for _ in range(300):
        ids = [rng.choice(kinds) for _ in range(rng.randrange(0, 6))]
        request = _request(ids, scopes=rng.randrange(0, 3))
        body = request.SerializeToString()
        assert ids_known_valid(body) == _span_by_span_valid(request), ids


def test_fields_in_another_order_and_empty_requests() -> None:
    """A span whose fields come in another order on the wire (legal protobuf) is judged on
    its ids; a request with no spans is valid; bytes that are not protobuf are not."""
    span = Span(trace_id=_TRACE, span_id=_SPAN, name="s").SerializeToString()
    name_first = span[28:] + span[:28]  # the name field moved before the ids
    assert Span.FromString(name_first).span_id == _SPAN
    scope_spans = b"\x12" + bytes([len(name_first)]) + name_first
    resource_spans = b"\x12" + bytes([len(scope_spans)]) + scope_spans
    body = b"\x0a" + bytes([len(resource_spans)]) + resource_spans
    assert _span_by_span_valid(ExportTraceServiceRequest.FromString(body))
    assert ids_known_valid(body)
    assert ids_known_valid(b"")
    assert not ids_known_valid(b"\x0a\xff")
