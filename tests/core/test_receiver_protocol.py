"""OTLP/HTTP and OTLP/gRPC conformance of the receiver, over loopback, into a real file sink.

Each case sends a fresh trace; a case that the receiver accepts must reach the sink's file, a
refused one must not.
"""

from __future__ import annotations

import gzip
import http.client
import json
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest
from google.protobuf import json_format
from google.rpc import code_pb2, error_details_pb2, status_pb2
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GRPCExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HTTPExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace import ReadableSpan

from otel_bridge import otlp
from otel_bridge.file_sink import FileSpanExporter
from otel_bridge.receiver import Receiver, Sink, parse_config
from tests.support.recording import recording_provider

LIMIT = 256 * 1024
EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def _trace() -> list[ReadableSpan]:
    provider, memory = recording_provider()
    tracer = provider.get_tracer("conformance")
    with tracer.start_as_current_span("root"), tracer.start_as_current_span("child"):
        pass
    provider.shutdown()
    return list(memory.get_finished_spans())


def _trace_id(spans: list[ReadableSpan]) -> str:
    assert spans[0].context is not None
    return format(spans[0].context.trace_id, "032x")


@dataclass
class Bridge:
    receiver: Receiver
    sink: FileSpanExporter

    def delivered_trace_ids(self) -> set[str]:
        assert self.sink.force_flush(10_000)
        if not self.sink.path.exists():
            return set()
        return {format(t.trace_id, "032x") for t in otlp.read_traces(self.sink.path)}

    def post(
        self,
        body: bytes | Iterator[bytes],
        headers: dict[str, str],
        *,
        method: str = "POST",
        path: str = "/v1/traces",
    ) -> HTTPAnswer:
        assert self.receiver.http_port is not None
        connection = http.client.HTTPConnection("127.0.0.1", self.receiver.http_port, timeout=30)
        try:
            connection.request(
                method, path, body=body, headers=headers, encode_chunked=not isinstance(body, bytes)
            )
            response = connection.getresponse()
            return HTTPAnswer(response.status, dict(response.getheaders()), response.read())
        finally:
            connection.close()


@dataclass
class HTTPAnswer:
    status: int
    headers: dict[str, str]
    body: bytes

    def rpc_status(self) -> status_pb2.Status:
        if self.headers.get("Content-Type") == "application/json":
            return json_format.Parse(self.body, status_pb2.Status())
        return status_pb2.Status.FromString(self.body)

    def export_response(self) -> ExportTraceServiceResponse:
        if self.headers.get("Content-Type") == "application/json":
            return json_format.Parse(self.body, ExportTraceServiceResponse())
        return ExportTraceServiceResponse.FromString(self.body)


def _start(
    tmp_path: Path,
    receiver: dict[str, Any] | None = None,
    *,
    spooled: bool = False,
    **sink_options: Any,
) -> Bridge:
    options = {"spool_dir": tmp_path / "spool", "grace_period": 0.05, **sink_options}
    # spooled: requests through the spool, as to every remote sink (by default the file sink
    # writes each request at once)
    sink = FileSpanExporter(tmp_path / "out.jsonl", lines="trace" if spooled else None, **options)
    section = {
        "http": {"endpoint": "127.0.0.1:0"},
        "grpc": {"endpoint": "127.0.0.1:0"},
        "max_request_bytes": LIMIT,
        **(receiver or {}),
    }
    bridge = Bridge(Receiver(parse_config({"receiver": section}), [Sink("file", sink)]), sink)
    bridge.receiver.start()
    return bridge


@pytest.fixture
def bridge(tmp_path: Path) -> Iterator[Bridge]:
    started = _start(tmp_path)
    yield started
    started.receiver.stop()


def _protobuf(spans: list[ReadableSpan]) -> bytes:
    return otlp.request_from_spans(spans).SerializeToString()


def _json(spans: list[ReadableSpan]) -> bytes:
    return otlp.encode_json(otlp.request_from_spans(spans)).encode()


def _gzip_bomb(size: int) -> bytes:
    """A small gzip body that inflates to `size` bytes, built without holding `size` bytes."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"\x00" * (1 << 20)
    parts = [compressor.compress(block) for _ in range(size >> 20)]
    return b"".join([*parts, compressor.flush()])


PB = {"Content-Type": "application/x-protobuf"}
JS = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class Case:
    id: str
    make_body: Callable[[list[ReadableSpan]], bytes | Iterator[bytes]]
    headers: dict[str, str]
    status: int
    method: str = "POST"
    path: str = "/v1/traces"
    rpc_code: int | None = None
    extra_headers: dict[str, str] = field(default_factory=dict)


CASES = [
    Case("protobuf", _protobuf, PB, 200),
    Case("json", _json, JS, 200),
    Case("json with charset", _json, {"Content-Type": "application/json; charset=utf-8"}, 200),
    Case("gzip protobuf", lambda s: gzip.compress(_protobuf(s)), {**PB, "Content-Encoding": "gzip"}, 200),
    Case("gzip json", lambda s: gzip.compress(_json(s)), {**JS, "Content-Encoding": "gzip"}, 200),
    Case("gzip in two members", lambda s: gzip.compress(_protobuf(s[:1])) + gzip.compress(_protobuf(s[1:])),
         {**PB, "Content-Encoding": "gzip"}, 200),
    Case("chunked protobuf", lambda s: iter([_protobuf(s)[:10], _protobuf(s)[10:]]), PB, 200),
    Case("empty protobuf", lambda s: b"", PB, 200),
    Case("empty json object", lambda s: b"{}", JS, 200),
    Case("text/plain", _json, {"Content-Type": "text/plain"}, 415, rpc_code=code_pb2.INVALID_ARGUMENT),
    Case("no content type", _protobuf, {}, 415, rpc_code=code_pb2.INVALID_ARGUMENT),
    Case("brotli", _protobuf, {**PB, "Content-Encoding": "br"}, 415, rpc_code=code_pb2.INVALID_ARGUMENT),
    Case("truncated protobuf", lambda s: _protobuf(s)[:-7], PB, 400, rpc_code=code_pb2.INVALID_ARGUMENT),
    Case("invalid json", lambda s: b'{"resourceSpans": [', JS, 400, rpc_code=code_pb2.INVALID_ARGUMENT),
    Case("json ids not hex", lambda s: _json(s).replace(b'"traceId":"', b'"traceId":"xy'), JS, 400,
         rpc_code=code_pb2.INVALID_ARGUMENT),
    Case("gzip header on plain body", _protobuf, {**PB, "Content-Encoding": "gzip"}, 400,
         rpc_code=code_pb2.INVALID_ARGUMENT),
    Case("truncated gzip", lambda s: gzip.compress(_protobuf(s))[:-12], {**PB, "Content-Encoding": "gzip"}, 400,
         rpc_code=code_pb2.INVALID_ARGUMENT),
    Case("body over the limit", lambda s: _protobuf(s) + b"\x00" * LIMIT, PB, 413,
         rpc_code=code_pb2.RESOURCE_EXHAUSTED),
    Case("chunked body over the limit", lambda s: iter([b"\x00" * LIMIT, b"\x00" * 16]), PB, 413,
         rpc_code=code_pb2.RESOURCE_EXHAUSTED),
    Case("gzip bomb", lambda s: _gzip_bomb(16 << 20), {**PB, "Content-Encoding": "gzip"}, 413,
         rpc_code=code_pb2.RESOURCE_EXHAUSTED),
    Case("GET", lambda s: b"", PB, 405, method="GET", extra_headers={"Allow": "POST"}),
    Case("PUT", _protobuf, PB, 405, method="PUT", extra_headers={"Allow": "POST"}),
    Case("wrong path", _protobuf, PB, 404, path="/v1/metrics"),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_http_conformance(bridge: Bridge, case: Case) -> None:
    spans = _trace()
    answer = bridge.post(case.make_body(spans), case.headers, method=case.method, path=case.path)
    assert answer.status == case.status, answer.body
    for name, value in case.extra_headers.items():
        assert answer.headers[name] == value
    if case.status == 200:
        assert answer.headers["Content-Type"] == case.headers["Content-Type"].split(";")[0]
        assert not answer.export_response().HasField("partial_success")
    else:
        status = answer.rpc_status()
        assert status.message
        if case.rpc_code is not None:
            assert status.code == case.rpc_code
        if case.status == 400:  # OTLP: "Status.details SHOULD contain a BadRequest"
            (detail,) = status.details
            bad_request = error_details_pb2.BadRequest()
            assert detail.Unpack(bad_request)
            assert bad_request.field_violations[0].description == status.message
    delivered = _trace_id(spans) in bridge.delivered_trace_ids()
    assert delivered == (
        case.status == 200 and case.id not in ("empty protobuf", "empty json object")
    )


def test_connection_is_reused_after_a_refused_request(bridge: Bridge) -> None:
    assert bridge.receiver.http_port is not None
    connection = http.client.HTTPConnection("127.0.0.1", bridge.receiver.http_port, timeout=30)
    connection.request("POST", "/v1/traces", body=b"\x0a\x03abc", headers=PB)
    first = connection.getresponse()
    first.read()
    spans = _trace()
    connection.request("POST", "/v1/traces", body=_protobuf(spans), headers=PB)
    second = connection.getresponse()
    second.read()
    connection.close()
    assert (first.status, second.status) == (400, 200)
    assert _trace_id(spans) in bridge.delivered_trace_ids()


def test_inflating_a_gzip_bomb_stays_within_the_limit() -> None:
    """256 MiB of zeros compressed to ~256 KiB: inflation stops at the limit, memory stays small."""
    import tracemalloc

    from otel_bridge.receiver import protocol

    bomb = _gzip_bomb(256 << 20)
    tracemalloc.start()
    with pytest.raises(protocol.ProtocolError) as refused:
        protocol.inflate(bomb, "gzip", 1 << 20)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert refused.value.status == 413
    assert peak < 8 << 20


def test_partial_success_names_the_rejected_spans(bridge: Bridge) -> None:
    spans = _trace()
    request = otlp.request_from_spans(spans)
    bad = request.resource_spans[0].scope_spans[0].spans.add()
    bad.CopyFrom(request.resource_spans[0].scope_spans[0].spans[0])
    bad.span_id = b"\x00" * 8
    for headers, body in (
        (PB, request.SerializeToString()),
        (JS, otlp.encode_json(request).encode()),
    ):
        answer = bridge.post(body, headers)
        assert answer.status == 200
        partial = answer.export_response().partial_success
        assert partial.rejected_spans == 1
        assert "invalid span id" in partial.error_message
    assert _trace_id(spans) in bridge.delivered_trace_ids()


def test_health_reports_the_sinks(bridge: Bridge) -> None:
    answer = bridge.post(b"", {}, method="GET", path="/health")
    assert answer.status == 200
    document = json.loads(answer.body)
    assert document["status"] == "ok"
    assert document["sinks"]["file"]["state"] == "ok"
    assert document["sinks"]["file"]["spool_full"] is False
    assert isinstance(document["sinks"]["file"]["spool_bytes"], int)


def test_full_spool_answers_429_with_retry_after(tmp_path: Path) -> None:
    bridge = _start(
        tmp_path,
        {"retry_after_seconds": 7},
        spooled=True,
        max_spool_bytes=1,
        grace_period=60.0,
        max_trace_age=60.0,
    )
    try:
        for _ in range(2):  # the first fills the spool, the second finds it full
            _assert_http_refused(bridge, 429, "RESOURCE_EXHAUSTED", retry_after=7)
        _assert_grpc_refused(bridge, "RESOURCE_EXHAUSTED", retry_after=7)
        health = json.loads(bridge.post(b"", {}, method="GET", path="/health").body)
        assert health["status"] == "degraded"
        file_sink = health["sinks"]["file"]
        assert (file_sink["state"], file_sink["spool_full"]) == ("spool_full", True)
        assert file_sink["refused_requests"] == 3
        assert file_sink["since"]
    finally:
        bridge.receiver.stop()


def test_a_sink_that_refuses_gets_503_and_unavailable(bridge: Bridge) -> None:
    bridge.sink.shutdown()  # export() after shutdown returns FAILURE
    _assert_http_refused(bridge, 503, "UNAVAILABLE", retry_after=5)
    _assert_grpc_refused(bridge, "UNAVAILABLE", retry_after=5)


def _assert_http_refused(bridge: Bridge, status: int, code: str, retry_after: int) -> None:
    """A trace sent over OTLP/HTTP gets `status`, a Retry-After and the rich status `code`."""
    answer = bridge.post(_protobuf(_trace()), PB)
    assert answer.status == status
    assert answer.headers["Retry-After"] == str(retry_after)
    assert answer.rpc_status().code == code_pb2.Code.Value(code)


def _assert_grpc_refused(bridge: Bridge, code: str, retry_after: int) -> None:
    """A trace sent over OTLP/gRPC gets the status `code` with a RetryInfo delay."""
    error = _grpc_export(bridge, _protobuf(_trace()))
    assert error is not None
    assert error.code() is grpc.StatusCode[code]
    assert _retry_delay(error) == retry_after


def test_accepted_means_spooled(tmp_path: Path) -> None:
    """200 is sent only once the spans are in the sink's SQLite spool (nothing delivered yet)."""
    bridge = _start(tmp_path, spooled=True, grace_period=3600.0, max_trace_age=3600.0)
    try:
        assert bridge.post(_protobuf(_trace()), PB).status == 200
        assert bridge.sink.spool.counts().pending_spans == 2
    finally:
        bridge.receiver.stop()


def test_the_file_sink_answers_once_the_request_is_in_its_file(tmp_path: Path) -> None:
    """The file sink writes a request to its file before the answer (one line a request, even
    for a trace whose root has not come yet); nothing is spooled."""
    bridge = _start(tmp_path, grace_period=3600.0, max_trace_age=3600.0)
    try:
        first, second = _trace(), _trace()
        assert bridge.post(_protobuf(first + second), PB).status == 200
        lines = bridge.sink.path.read_text(encoding="utf-8").splitlines()
        assert len(lines) == 1
        assert len(otlp.traces_from_json_lines(lines)) == 2
        assert bridge.sink.spool.counts().pending_spans == 0
    finally:
        bridge.receiver.stop()


def test_bearer_token(tmp_path: Path) -> None:
    bridge = _start(tmp_path, {"auth": {"bearer_token": "s3cret"}})
    try:
        assert bridge.post(_protobuf(_trace()), PB).status == 401
        wrong = bridge.post(_protobuf(_trace()), {**PB, "Authorization": "Bearer nope"})
        assert wrong.status == 401
        assert wrong.headers["WWW-Authenticate"] == "Bearer"
        assert (
            bridge.post(_protobuf(_trace()), {**PB, "Authorization": "Bearer s3cret"}).status == 200
        )
        denied = _grpc_export(bridge, _protobuf(_trace()))
        assert denied is not None
        assert denied.code() is grpc.StatusCode.UNAUTHENTICATED
        assert (
            _grpc_export(bridge, _protobuf(_trace()), [("authorization", "Bearer s3cret")]) is None
        )
    finally:
        bridge.receiver.stop()


# --- gRPC ---------------------------------------------------------------------------------------


def _grpc_export(
    bridge: Bridge,
    body: bytes,
    metadata: list[tuple[str, str]] | None = None,
    compression: grpc.Compression | None = None,
) -> grpc.RpcError | None:
    """Send raw bytes as an Export call; None on success, else the error."""
    with grpc.insecure_channel(f"127.0.0.1:{bridge.receiver.grpc_port}") as channel:
        export = channel.unary_unary(
            EXPORT_METHOD, response_deserializer=ExportTraceServiceResponse.FromString
        )
        try:
            export(body, metadata=metadata, compression=compression, timeout=30)
        except grpc.RpcError as error:
            return error
    return None


_Detail = TypeVar("_Detail", error_details_pb2.RetryInfo, error_details_pb2.BadRequest)


def _status_detail(error: grpc.RpcError, kind: type[_Detail]) -> _Detail | None:
    """The first detail of type `kind` in the error's rich status, if any."""
    for key, value in error.trailing_metadata() or ():  # type: ignore[attr-defined]
        if key == "grpc-status-details-bin":
            for detail in status_pb2.Status.FromString(value).details:
                unpacked = kind()
                if detail.Unpack(unpacked):
                    return unpacked
    return None


def _retry_delay(error: grpc.RpcError) -> int | None:
    info = _status_detail(error, error_details_pb2.RetryInfo)
    return None if info is None else int(info.retry_delay.seconds)


def _bad_request(error: grpc.RpcError) -> str | None:
    """The description of the BadRequest detail in the error's status, if any."""
    bad_request = _status_detail(error, error_details_pb2.BadRequest)
    return None if bad_request is None else str(bad_request.field_violations[0].description)


GRPC_CASES = [
    ("valid", _protobuf, None, None),
    ("gzip", _protobuf, grpc.Compression.Gzip, None),
    ("empty", lambda s: b"", None, None),
    ("truncated protobuf", lambda s: _protobuf(s)[:-7], None, grpc.StatusCode.INVALID_ARGUMENT),
    ("over the limit", lambda s: b"\x00" * (LIMIT + 1), None, grpc.StatusCode.RESOURCE_EXHAUSTED),
    ("gzip bomb", lambda s: b"\x00" * (16 << 20), grpc.Compression.Gzip, grpc.StatusCode.RESOURCE_EXHAUSTED),
]  # fmt: skip


@pytest.mark.parametrize(
    ("make_body", "compression", "code"),
    [c[1:] for c in GRPC_CASES],
    ids=[c[0] for c in GRPC_CASES],
)
def test_grpc_conformance(
    bridge: Bridge,
    make_body: Callable[[list[ReadableSpan]], bytes],
    compression: grpc.Compression | None,
    code: grpc.StatusCode | None,
) -> None:
    spans = _trace()
    error = _grpc_export(bridge, make_body(spans), compression=compression)
    assert (error.code() if error else None) is code
    if error is not None:
        assert error.details()
    if code is grpc.StatusCode.INVALID_ARGUMENT:
        assert error is not None
        assert _bad_request(error) == error.details()
    delivered = _trace_id(spans) in bridge.delivered_trace_ids()
    assert delivered == (code is None and len(make_body(spans)) > 0)


def test_grpc_partial_success(bridge: Bridge) -> None:
    request = otlp.request_from_spans(_trace())
    request.resource_spans[0].scope_spans[0].spans[0].trace_id = b"\x01"
    with grpc.insecure_channel(f"127.0.0.1:{bridge.receiver.grpc_port}") as channel:
        export = channel.unary_unary(
            EXPORT_METHOD, response_deserializer=ExportTraceServiceResponse.FromString
        )
        response = export(request.SerializeToString(), timeout=30)
    assert response.partial_success.rejected_spans == 1
    assert "invalid trace id" in response.partial_success.error_message


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_sdk_exporters_deliver_whole_traces(bridge: Bridge, transport: str) -> None:
    exporter = (
        HTTPExporter(endpoint=f"http://127.0.0.1:{bridge.receiver.http_port}/v1/traces")
        if transport == "http"
        else GRPCExporter(endpoint=f"127.0.0.1:{bridge.receiver.grpc_port}", insecure=True)
    )
    spans = _trace()
    assert exporter.export(spans).name == "SUCCESS"
    exporter.shutdown()
    assert _trace_id(spans) in bridge.delivered_trace_ids()
    (trace,) = otlp.read_traces(bridge.sink.path)
    assert sorted(s.name for s in trace.spans) == ["child", "root"]
    child = next(s for s in trace.spans if s.name == "child")
    root = next(s for s in trace.spans if s.name == "root")
    assert child.parent_span_id == root.span_id


def test_request_type_is_the_collector_service() -> None:
    """The gRPC method path is the one OTLP clients call (guards against a typo in the name)."""
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

    service = trace_service_pb2.DESCRIPTOR.services_by_name["TraceService"]
    assert f"/{service.full_name}/Export" == EXPORT_METHOD
    assert (
        service.methods_by_name["Export"].input_type.full_name
        == ExportTraceServiceRequest.DESCRIPTOR.full_name
    )


def test_requests_after_close_are_unavailable_and_retryable(bridge: Bridge) -> None:
    """Between SIGTERM and the listeners closing, a request must be retried, not lost."""
    bridge.receiver.ingestor.close()
    answer = bridge.post(_protobuf(_trace()), PB)
    assert answer.status == 503
    assert answer.headers["Retry-After"] == "5"
