"""The receiver's limits against misbehaving clients, with real sockets over loopback: idle and
slow clients, connection and memory caps, the listen backlog, methods, CORS, per-sink locks, and
the one-line-per-episode logging of sinks that refuse.

Timeouts are set short so the server closes first; the clients' own socket timeouts are long
fail-safes, and no test asserts how long anything took.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import grpc
import pytest
from google.rpc import code_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from otel_bridge import otlp
from otel_bridge.receiver import Receiver, Sink, parse_config
from otel_bridge.receiver.http_server import HTTPLimits, OTLPHTTPServer
from otel_bridge.receiver.ingest import Ingestor
from tests.contract import make_spans
from tests.support.grpc_stall import stalled_grpc_call

PB = {"Content-Type": "application/x-protobuf"}
FAIL_SAFE_SECONDS = 30


class CountingSink(SpanExporter):
    """Records what it is handed; refuses while `refusing` is set; can be made to wait."""

    def __init__(self) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        self.batches: list[Sequence[ReadableSpan]] = []
        self.refusing = threading.Event()
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.batches.append(spans)
        return SpanExportResult.FAILURE if self.refusing.is_set() else SpanExportResult.SUCCESS


class RequestSink(CountingSink):
    """A sink taking decoded requests (the core exporter's `export_request`)."""

    def export_request(self, request: ExportTraceServiceRequest) -> SpanExportResult:
        self.entered.set()
        assert self.release.wait(FAIL_SAFE_SECONDS)
        self.requests.append(request)
        return SpanExportResult.FAILURE if self.refusing.is_set() else SpanExportResult.SUCCESS


def _body() -> bytes:
    return otlp.request_from_spans(make_spans()).SerializeToString()


def _start(sinks: Sequence[Sink], http: dict[str, Any] | None = None, **receiver: Any) -> Receiver:
    config = parse_config(
        {
            "receiver": {
                "http": {"endpoint": "127.0.0.1:0", **(http or {})},
                "grpc": False,
                **receiver,
            }
        }
    )
    started = Receiver(config, sinks)
    started.start()
    return started


@pytest.fixture
def sink() -> RequestSink:
    return RequestSink()


@pytest.fixture
def receiver(sink: RequestSink) -> Iterator[Receiver]:
    started = _start(
        [Sink("memory", sink)],
        {"idle_timeout_seconds": 0.3, "read_timeout_seconds": 0.5},
    )
    yield started
    started.stop(1)


def _connect(receiver: Receiver) -> socket.socket:
    assert receiver.http_port is not None
    return socket.create_connection(("127.0.0.1", receiver.http_port), timeout=FAIL_SAFE_SECONDS)


def _closed_by_server(connection: socket.socket) -> bytes:
    """Everything the server sent until it closed the connection."""
    received = b""
    while chunk := connection.recv(65536):
        received += chunk
    return received


def _post(port: int, body: bytes, headers: dict[str, str], path: str = "/v1/traces") -> Any:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=FAIL_SAFE_SECONDS)
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        response.body = response.read()
        return response
    finally:
        connection.close()


def _request(port: int, method: str, path: str, headers: dict[str, str] | None = None) -> Any:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=FAIL_SAFE_SECONDS)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        response.body = response.read()
        return response
    finally:
        connection.close()


# --- idle and slow clients ---------------------------------------------------------------------


def test_an_idle_connection_is_closed(receiver: Receiver) -> None:
    with _connect(receiver) as idle:
        assert _closed_by_server(idle) == b""


def test_a_kept_alive_connection_that_goes_idle_is_closed(receiver: Receiver) -> None:
    with _connect(receiver) as connection:
        request = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
        connection.sendall(request)
        assert _closed_by_server(connection).startswith(b"HTTP/1.1 200")


def test_slowloris_headers_are_cut_off(receiver: Receiver) -> None:
    """Headers sent a byte at a time, never completed: the server closes the connection."""
    with _connect(receiver) as slow:
        slow.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\n")
        slow.settimeout(0.05)
        closed = False
        for _ in range(int(FAIL_SAFE_SECONDS / 0.05)):
            try:
                slow.sendall(b"X")
                if slow.recv(1) == b"":
                    closed = True
                    break
            except TimeoutError:
                continue
            except OSError:  # reset: closed as well
                closed = True
                break
        assert closed


def test_a_slow_body_is_answered_408_and_closed(receiver: Receiver, sink: RequestSink) -> None:
    with _connect(receiver) as slow:
        slow.sendall(
            b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
            b"Content-Length: 1000\r\n\r\n" + b"\x0a"
        )
        answer = _closed_by_server(slow)
    assert answer.startswith(b"HTTP/1.1 408")
    assert sink.requests == []


def test_a_normal_client_is_served_while_slow_ones_hang(
    receiver: Receiver, sink: RequestSink
) -> None:
    slow = [_connect(receiver) for _ in range(20)]
    try:
        for connection in slow:
            connection.sendall(b"POST /v1/traces HTTP/1.1\r\nContent-Length: 50\r\n")
        assert receiver.http_port is not None
        assert _post(receiver.http_port, _body(), PB).status == 200
        assert len(sink.requests) == 1
    finally:
        for connection in slow:
            connection.close()


# --- caps --------------------------------------------------------------------------------------


def test_connections_beyond_the_cap_get_503_and_are_closed(sink: RequestSink) -> None:
    started = _start([Sink("memory", sink)], {"max_connections": 3})
    held = [_connect(started) for _ in range(3)]
    try:
        for connection in held:  # make sure the server has accepted all three
            connection.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert connection.recv(12) == b"HTTP/1.1 200"
        with _connect(started) as extra:
            answer = _closed_by_server(extra)
        assert answer.startswith(b"HTTP/1.1 503")
        assert b"Retry-After: 5" in answer
        head, _, body = answer.partition(b"\r\n\r\n")
        assert b"Content-Type: application/x-protobuf" in head
        status = status_pb2.Status.FromString(body)  # OTLP: every 4xx/5xx carries a Status
        assert (status.code, status.message) == (
            code_pb2.UNAVAILABLE,
            "too many connections; retry later",
        )
    finally:
        for connection in held:
            connection.close()
        started.stop(1)


def test_bodies_in_memory_are_bounded(sink: RequestSink) -> None:
    """With room for one body, a second waits, then gets 503 with Retry-After (retryable)."""
    limit = 4096
    config = parse_config({"receiver": {"http": {"endpoint": "127.0.0.1:0"}, "grpc": False}})
    ingestor = Ingestor([Sink("memory", sink)], retry_after_seconds=3)
    server = OTLPHTTPServer(
        config.receiver.http.endpoint,  # type: ignore[union-attr]
        ingestor,
        HTTPLimits(max_request_bytes=limit, max_concurrent_requests=1, busy_wait_seconds=0.2),
    )
    server.start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), FAIL_SAFE_SECONDS) as holder:
            holder.sendall(
                b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
                + f"Content-Length: {limit}\r\n\r\n".encode()
                + b"\x00" * (limit - 16)
            )
            refused = _post(server.port, b"\x00" * 64, PB)
            assert refused.status == 503
            assert refused.getheader("Retry-After") == "3"
        assert _post(server.port, _body(), PB).status == 200
    finally:
        server.stop(1)


@pytest.mark.parametrize("clients", [64])
def test_the_backlog_holds_concurrent_keep_alive_clients(
    receiver: Receiver, sink: RequestSink, clients: int
) -> None:
    """64 clients connect at once and each sends requests on its kept-alive connection."""
    assert receiver.http_port is not None
    port = receiver.http_port
    barrier = threading.Barrier(clients)
    failures: list[BaseException] = []
    statuses: list[int] = []
    body = _body()

    def client() -> None:
        try:
            barrier.wait(FAIL_SAFE_SECONDS)
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=FAIL_SAFE_SECONDS)
            for _ in range(3):
                connection.request("POST", "/v1/traces", body=body, headers=PB)
                response = connection.getresponse()
                response.read()
                statuses.append(response.status)
            connection.close()
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert statuses == [200] * clients * 3
    assert len(sink.requests) == clients * 3


# --- methods, health, CORS ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status", "allow"),
    [
        ("GET", "/v1/traces", 405, "POST"),
        ("HEAD", "/v1/traces", 405, "POST"),
        ("OPTIONS", "/v1/traces", 405, "POST"),
        ("PUT", "/v1/traces", 405, "POST"),
        ("DELETE", "/v1/traces", 405, "POST"),
        ("PATCH", "/v1/traces", 405, "POST"),
        ("POST", "/health", 405, "GET"),
        ("GET", "/v1/logs", 404, None),
        ("HEAD", "/health", 200, None),
    ],
)
def test_methods_and_paths(
    receiver: Receiver, method: str, path: str, status: int, allow: str | None
) -> None:
    assert receiver.http_port is not None
    answer = _request(receiver.http_port, method, path)
    assert answer.status == status
    assert answer.getheader("Allow") == allow


def test_health_details_need_the_token(sink: RequestSink) -> None:
    started = _start([Sink("memory", sink)], auth={"bearer_token": "s3cret"})
    try:
        assert started.http_port is not None
        anonymous = _request(started.http_port, "GET", "/health")
        assert json.loads(anonymous.body) == {"status": "ok"}
        wrong = _request(started.http_port, "GET", "/health", {"Authorization": "Bearer no"})
        assert json.loads(wrong.body) == {"status": "ok"}
        holder = _request(started.http_port, "GET", "/health", {"Authorization": "Bearer s3cret"})
        assert json.loads(holder.body)["sinks"]["memory"]["state"] == "ok"
    finally:
        started.stop(1)


@pytest.fixture
def cors_receiver(sink: RequestSink) -> Iterator[Receiver]:
    started = _start(
        [Sink("memory", sink)],
        {
            "cors": {
                "allowed_origins": ["https://app.example.com", "https://*.example.org"],
                "allowed_headers": ["Authorization"],
                "max_age_seconds": 60,
            }
        },
    )
    yield started
    started.stop(1)


@pytest.mark.parametrize(
    ("origin", "status"),
    [
        ("https://app.example.com", 204),
        ("https://ui.example.org", 204),
        ("https://evil.example.com", 403),
        ("http://app.example.com", 403),
    ],
)
def test_cors_preflight(cors_receiver: Receiver, origin: str, status: int) -> None:
    assert cors_receiver.http_port is not None
    answer = _request(
        cors_receiver.http_port,
        "OPTIONS",
        "/v1/traces",
        {"Origin": origin, "Access-Control-Request-Method": "POST"},
    )
    assert answer.status == status
    if status == 204:
        assert answer.getheader("Access-Control-Allow-Origin") == origin
        assert answer.getheader("Access-Control-Allow-Methods") == "POST"
        assert "Authorization" in answer.getheader("Access-Control-Allow-Headers")
        assert answer.getheader("Access-Control-Max-Age") == "60"
    else:
        assert answer.getheader("Access-Control-Allow-Origin") is None


def test_cors_on_the_export_answer(cors_receiver: Receiver) -> None:
    assert cors_receiver.http_port is not None
    allowed = _post(cors_receiver.http_port, _body(), {**PB, "Origin": "https://app.example.com"})
    assert allowed.status == 200
    assert allowed.getheader("Access-Control-Allow-Origin") == "https://app.example.com"
    other = _post(cors_receiver.http_port, _body(), {**PB, "Origin": "https://else.example.com"})
    assert other.getheader("Access-Control-Allow-Origin") is None


def test_without_cors_a_preflight_is_405(receiver: Receiver) -> None:
    assert receiver.http_port is not None
    answer = _request(
        receiver.http_port,
        "OPTIONS",
        "/v1/traces",
        {"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"},
    )
    assert answer.status == 405
    assert answer.getheader("Access-Control-Allow-Origin") is None


# --- ingest ------------------------------------------------------------------------------------


def test_export_request_is_preferred_and_plain_exporters_get_spans() -> None:
    takes_requests, takes_spans = RequestSink(), CountingSink()
    started = _start([Sink("requests", takes_requests), Sink("spans", takes_spans)])
    try:
        assert started.http_port is not None
        assert _post(started.http_port, _body(), PB).status == 200
    finally:
        started.stop(1)
    assert len(takes_requests.requests) == 1
    assert takes_requests.batches == []
    ((spans),) = takes_spans.batches
    assert len(spans) == 3


def test_a_slow_sink_does_not_hold_up_the_others() -> None:
    """While one request waits inside sink B, a second is handed to sink A."""
    fast, slow = RequestSink(), RequestSink()
    slow.release.clear()
    started = _start([Sink("fast", fast), Sink("slow", slow)], max_concurrent_requests=4)
    assert started.http_port is not None
    port = started.http_port
    answers: list[int] = []
    senders = [
        threading.Thread(target=lambda: answers.append(_post(port, _body(), PB).status))
        for _ in range(2)
    ]
    try:
        for sender in senders:
            sender.start()
        assert slow.entered.wait(FAIL_SAFE_SECONDS)
        for _ in range(int(FAIL_SAFE_SECONDS / 0.01)):
            if len(fast.requests) == 2:
                break
            threading.Event().wait(0.01)
        assert len(fast.requests) == 2  # the second request passed sink A meanwhile
        assert answers == []  # nothing acknowledged before every sink took it
    finally:
        slow.release.set()
        for sender in senders:
            sender.join()
        started.stop(1)
    assert answers == [200, 200]


def test_a_refusing_sink_is_logged_once_per_episode(
    sink: RequestSink, caplog: pytest.LogCaptureFixture
) -> None:
    started = _start([Sink("memory", sink)])
    assert started.http_port is not None
    caplog.set_level(logging.INFO, logger="otel_bridge.receiver")
    try:
        sink.refusing.set()
        statuses = [_post(started.http_port, _body(), PB).status for _ in range(5)]
        assert statuses == [503] * 5
        health = json.loads(_request(started.http_port, "GET", "/health").body)
        assert health["status"] == "degraded"
        assert health["sinks"]["memory"]["state"] == "refusing"
        assert health["sinks"]["memory"]["refused_requests"] == 5
        sink.refusing.clear()
        assert _post(started.http_port, _body(), PB).status == 200
        assert json.loads(_request(started.http_port, "GET", "/health").body)["status"] == "ok"
    finally:
        started.stop(1)
    records = [r for r in caplog.records if r.name == "otel_bridge.receiver"]
    assert [r.levelname for r in records] == ["WARNING", "INFO"]
    assert "sink memory: export refused" in records[0].getMessage()
    assert "5 request(s) with 15 span(s) were refused" in records[1].getMessage()
    assert all(r.exc_info is None for r in caplog.records)


def test_malformed_requests_are_answered_400_and_logged_without_traceback(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for malformed in (
        b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 20000 + b"\r\n\r\n",
        b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ):
        with _connect(receiver) as connection:
            connection.sendall(malformed)
            assert _closed_by_server(connection).startswith((b"HTTP/1.0 400", b"HTTP/1.1 400"))
    assert [r for r in caplog.records if r.exc_info and r.levelno >= logging.INFO] == []


# --- gRPC -----------------------------------------------------------------------------------------

EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def _grpc_channel(port: int) -> grpc.Channel:
    # A subchannel of its own, so each channel is one more connection to the server.
    return grpc.insecure_channel(
        f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)]
    )


def _grpc_export(channel: grpc.Channel) -> grpc.StatusCode:
    export = channel.unary_unary(EXPORT_METHOD)
    try:
        export(_body(), timeout=FAIL_SAFE_SECONDS)
    except grpc.RpcError as error:
        return error.code()  # type: ignore[no-any-return,attr-defined]
    return grpc.StatusCode.OK


def test_grpc_connections_beyond_the_cap_are_closed_and_retryable(sink: RequestSink) -> None:
    config = parse_config(
        {"receiver": {"http": False, "grpc": {"endpoint": "127.0.0.1:0", "max_connections": 2}}}
    )
    started = Receiver(config, [Sink("memory", sink)])
    started.start()
    assert started.grpc_port is not None
    held = [_grpc_channel(started.grpc_port) for _ in range(2)]
    try:
        assert [_grpc_export(channel) for channel in held] == [grpc.StatusCode.OK] * 2
        with _grpc_channel(started.grpc_port) as extra:
            # UNAVAILABLE: OTLP exporters retry it (the specification's retryable codes).
            assert _grpc_export(extra) is grpc.StatusCode.UNAVAILABLE
        assert len(sink.requests) == 2
    finally:
        for channel in held:
            channel.close()
        started.stop(1)


def _stalled_grpc_call(port: int, token: str | None = None) -> socket.socket:
    return stalled_grpc_call(port, token, timeout=FAIL_SAFE_SECONDS)


def test_grpc_calls_that_stall_mid_message_hold_no_worker(sink: RequestSink) -> None:
    """A call waits for its message on the event loop, not on a worker thread: with one worker
    and the connection age far off, callers keeping calls stalled mid-message on several
    connections do not delay a normal call (on grpcio's thread-pool server one such call held
    the only worker until its connection was cut, 60 + 30 s by default)."""
    config = parse_config(
        {
            "receiver": {
                "http": False,
                "grpc": {"endpoint": "127.0.0.1:0", "read_timeout_seconds": 300},
                "max_concurrent_requests": 1,
            }
        }
    )
    started = Receiver(config, [Sink("memory", sink)])
    started.start()
    assert started.grpc_port is not None
    port = started.grpc_port
    try:
        with contextlib.ExitStack() as stalled:
            for _ in range(5):
                stalled.enter_context(_stalled_grpc_call(port))
            time.sleep(0.5)  # the stalled calls are in the server before the normal one
            with _grpc_channel(port) as channel:
                answers = [_grpc_export(channel) for _ in range(3)]
        assert answers == [grpc.StatusCode.OK] * 3
        assert len(sink.requests) == 3
    finally:
        started.stop(1)


def test_a_grpc_message_that_does_not_arrive_in_time_is_answered_deadline_exceeded(
    sink: RequestSink,
) -> None:
    """The message must arrive within read_timeout_seconds of the call's start; the caller gets
    DEADLINE_EXCEEDED, which OTLP clients retry, and nothing reaches the sink."""
    config = parse_config(
        {
            "receiver": {
                "http": False,
                "grpc": {"endpoint": "127.0.0.1:0", "read_timeout_seconds": 0.5},
            }
        }
    )
    started = Receiver(config, [Sink("memory", sink)])
    started.start()
    assert started.grpc_port is not None
    release = threading.Event()

    def never_sent() -> Iterator[bytes]:
        release.wait(FAIL_SAFE_SECONDS)
        yield _body()

    try:
        with _grpc_channel(started.grpc_port) as channel:
            export = channel.stream_unary(EXPORT_METHOD)
            with pytest.raises(grpc.RpcError) as answer:
                export(never_sent(), timeout=FAIL_SAFE_SECONDS)
            release.set()
        assert answer.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED  # type: ignore[attr-defined]
        assert "not received within 0.5 s" in answer.value.details()  # type: ignore[attr-defined]
        assert sink.requests == []
    finally:
        started.stop(1)


def test_a_grpc_call_without_the_token_is_turned_away_before_its_message(
    sink: RequestSink,
) -> None:
    """The token is checked before the message is read: callers without it cannot hold the
    workers by stalling mid-message (the connection age is far off here)."""
    config = parse_config(
        {
            "receiver": {
                "http": False,
                "grpc": {"endpoint": "127.0.0.1:0"},
                "max_concurrent_requests": 1,
                "auth": {"bearer_token": "s3cret"},
            }
        }
    )
    started = Receiver(config, [Sink("memory", sink)])
    started.start()
    assert started.grpc_port is not None
    try:
        with (
            _stalled_grpc_call(started.grpc_port),
            _stalled_grpc_call(started.grpc_port, token="wrong"),
            _grpc_channel(started.grpc_port) as channel,
        ):
            export = channel.unary_unary(EXPORT_METHOD)
            export(
                _body(), metadata=[("authorization", "Bearer s3cret")], timeout=FAIL_SAFE_SECONDS
            )
        assert len(sink.requests) == 1
    finally:
        started.stop(1)
