"""OTLP/gRPC transport: `opentelemetry.proto.collector.trace.v1.TraceService/Export`.

On grpcio's asyncio server, on an event loop of its own thread: a call waits for its message on
the loop, not on a worker thread, so callers that send their headers and stall hold no thread
(on grpcio's thread-pool server each such call held a worker until its connection was cut, so a
caller that kept stalling calls open could keep every worker busy). Decoding and export run on a
pool of `max_workers` threads, as over HTTP.

Limits: connections (`max_connections`, one more is closed: clients see UNAVAILABLE), calls per
connection (`max_workers`, further calls wait in the client under HTTP/2 flow control), the
message within `max_request_bytes` (gRPC enforces it on the decompressed message, which bounds a
gzip bomb) and within `read_timeout_seconds` of the call's start, messages held in memory at once
within `max_workers * max_request_bytes` (beyond that RESOURCE_EXHAUSTED with RetryInfo), idle
connections closed after `idle_timeout_seconds`, every connection closed gracefully at an age.

The method is registered with raw bytes instead of the generated servicer so an undecodable
message is answered INVALID_ARGUMENT (the generated one would say INTERNAL), and throttling
carries `google.rpc.RetryInfo`, without which OTLP clients must not retry RESOURCE_EXHAUSTED.
It is registered as client-streaming, which a unary call is on the wire: the handler then starts
before the message is read, so a caller without the bearer token is turned away at once.
"""

from __future__ import annotations

import asyncio
import math
import os
import socket
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import grpc.aio
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from otel_bridge import otlp
from otel_bridge.receiver import protocol
from otel_bridge.receiver.auth import bearer_token_matches
from otel_bridge.receiver.config import TLSConfig
from otel_bridge.receiver.ingest import Ingestor, Verdict
from otel_bridge.receiver.limits import ByteBudget

__all__ = ["SERVICE_NAME", "OTLPGRPCServer"]

SERVICE_NAME = "opentelemetry.proto.collector.trace.v1.TraceService"
_TRANSPORT = "grpc"
_STATUS_DETAILS_KEY = "grpc-status-details-bin"
_VERDICT_CODES = {
    Verdict.THROTTLED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Verdict.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
}


class OTLPGRPCServer:
    """Serves one Ingestor on a gRPC server of its own; binds in the constructor."""

    def __init__(
        self,
        address: str,
        ingestor: Ingestor,
        *,
        max_request_bytes: int,
        bearer_token: str | None = None,
        tls: TLSConfig | None = None,
        max_workers: int = 8,
        max_connections: int = 1000,
        idle_timeout_seconds: float = 60.0,
        read_timeout_seconds: float = 30.0,
        max_connection_age_seconds: float = 60.0,
        max_connection_age_grace_seconds: float = 30.0,
        tls_handshake_timeout_seconds: float = 10.0,
        busy_wait_seconds: float = 10.0,
    ) -> None:
        self._ingestor = ingestor
        self._bearer_token = bearer_token
        self._read_timeout = read_timeout_seconds
        self._busy_wait = busy_wait_seconds
        self._pool = ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix="otel-bridge-grpc"
        )
        self._options = [
            ("grpc.max_receive_message_length", max_request_bytes),
            # A second bridge on the same port must fail to start, not share the traffic.
            ("grpc.so_reuseport", 0),
            # HTTP/2 flow control holds a connection's further calls in the client, where a
            # refusal (without RetryInfo) would make OTLP exporters drop them.
            ("grpc.max_concurrent_streams", max_workers),
            # Beyond this the connection is closed at once; clients see UNAVAILABLE, which
            # OTLP exporters retry.
            ("grpc.max_allowed_incoming_connections", max_connections),
            ("grpc.max_connection_idle_ms", int(idle_timeout_seconds * 1000)),
            # As the Collector's keepalive.server_parameters: clients move to a new connection
            # now and then (a load balancer in front then sees them spread again).
            ("grpc.max_connection_age_ms", int(max_connection_age_seconds * 1000)),
            ("grpc.max_connection_age_grace_ms", int(max_connection_age_grace_seconds * 1000)),
            ("grpc.server_handshake_timeout_ms", int(tls_handshake_timeout_seconds * 1000)),
        ]
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="otel-bridge-grpc-loop", daemon=True
        )
        self._thread.start()
        # Messages held at once, from the moment gRPC hands one over until it is exported.
        self._budget: ByteBudget | None = None
        self._max_budget = max_workers * max_request_bytes
        _probe(address)
        try:
            self.port = self._run(self._bind(address, tls))
        except BaseException:
            self._close_loop()
            raise

    def start(self) -> None:
        self._run(self._server.start())

    def stop(self, grace_seconds: float = 10.0) -> None:
        """Refuse new RPCs and wait up to `grace_seconds` for the running ones."""
        if self._loop.is_closed():
            return
        try:
            self._run(self._server.stop(grace_seconds))
        finally:
            self._close_loop()

    # --- private --------------------------------------------------------------------------------

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def _close_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _bind(self, address: str, tls: TLSConfig | None) -> int:
        # On the loop: the server and the budget belong to it.
        self._budget = ByteBudget(self._max_budget)
        self._server = grpc.aio.server(options=self._options)
        handler = grpc.stream_unary_rpc_method_handler(
            self._export, response_serializer=lambda message: message.SerializeToString()
        )
        self._server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE_NAME, {"Export": handler}),)
        )
        try:
            if tls is None:
                port = self._server.add_insecure_port(address)
            else:
                credentials = grpc.ssl_server_credentials(
                    [(tls.key_file.read_bytes(), tls.cert_file.read_bytes())],
                    root_certificates=(
                        tls.client_ca_file.read_bytes() if tls.client_ca_file else None
                    ),
                    require_client_auth=tls.client_ca_file is not None,
                )
                port = self._server.add_secure_port(address, credentials)
        except RuntimeError as exc:  # grpcio reports a failed bind this way
            raise OSError(f"cannot bind the OTLP/gRPC receiver to {address}: {exc}") from exc
        if not port:
            raise OSError(f"cannot bind the OTLP/gRPC receiver to {address}")
        return int(port)

    async def _export(
        self, messages: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> Any:
        try:
            response = await self._accept(messages, context)
        except _Refusal as refusal:
            self._ingestor.metrics.request(_TRANSPORT, refusal.code.name)
            detail: Message | None = None
            if refusal.retry_after is not None:
                detail = error_details_pb2.RetryInfo(
                    retry_delay=Duration(seconds=math.ceil(refusal.retry_after))
                )
            elif refusal.code is grpc.StatusCode.INVALID_ARGUMENT:
                detail = protocol.bad_request(refusal.message)
            trailers: tuple[tuple[str, bytes], ...] = ()
            if detail is not None:
                status = status_pb2.Status(code=refusal.code.value[0], message=refusal.message)
                status.details.add().Pack(detail)
                trailers = ((_STATUS_DETAILS_KEY, status.SerializeToString()),)
            await context.abort(refusal.code, refusal.message, trailing_metadata=trailers)
        self._ingestor.metrics.request(_TRANSPORT, grpc.StatusCode.OK.name)
        return response

    async def _accept(
        self, messages: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> ExportTraceServiceResponse:
        metadata = dict(context.invocation_metadata() or ())
        if not bearer_token_matches(self._bearer_token, _text(metadata.get("authorization"))):
            raise _Refusal(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")
        try:
            async with asyncio.timeout(self._read_timeout):
                body = await anext(aiter(messages), None)
        except TimeoutError:
            # Retryable for OTLP clients; the stalled caller is gone, its stream freed.
            raise _Refusal(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"request message not received within {self._read_timeout:g} s",
            ) from None
        if body is None:
            raise _Refusal(grpc.StatusCode.INVALID_ARGUMENT, "no ExportTraceServiceRequest sent")
        budget = self._budget
        assert budget is not None
        try:
            await budget.take(len(body), self._busy_wait)
        except protocol.ProtocolError as exc:
            raise _Refusal(
                grpc.StatusCode.RESOURCE_EXHAUSTED, exc.message, self._ingestor.retry_after_seconds
            ) from None
        try:
            return await self._loop.run_in_executor(self._pool, self._process, body)
        finally:
            budget.give_back(len(body))

    def _process(self, body: bytes) -> ExportTraceServiceResponse:
        """On a pool thread: decode and hand to the sinks."""
        try:
            request = otlp.decode_protobuf(body)
        except otlp.OTLPDecodeError as exc:
            raise _Refusal(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from exc
        outcome = self._ingestor.ingest(request, _TRANSPORT, body)
        if outcome.verdict is not Verdict.ACCEPTED:
            raise _Refusal(
                _VERDICT_CODES[outcome.verdict], outcome.message, outcome.retry_after_seconds
            )
        return otlp.export_response(outcome.rejected)


class _Refusal(Exception):
    def __init__(
        self, code: grpc.StatusCode, message: str, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after


def _probe(address: str) -> None:
    """Bind the address once ourselves: a busy port then fails with one line of ours, not the
    gRPC core's log."""
    host, _, port = address.rpartition(":")
    if port == "0":
        return
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        socket.create_server((host, int(port)), family=family).close()
    except OSError as exc:
        raise OSError(
            exc.errno, f"cannot bind the OTLP/gRPC receiver to {address}: {_reason(exc)}"
        ) from exc


def _reason(error: OSError) -> str:
    # socket.create_server appends the address to strerror; the message names it already.
    return os.strerror(error.errno) if error.errno else str(error)


def _text(value: str | bytes | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value
