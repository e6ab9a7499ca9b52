"""OTLP/gRPC transport: `opentelemetry.proto.collector.trace.v1.TraceService/Export`.

The method is registered with raw bytes instead of the generated servicer so an undecodable
message is answered INVALID_ARGUMENT (the generated one would say INTERNAL), and throttling
carries `google.rpc.RetryInfo`, without which OTLP clients must not retry RESOURCE_EXHAUSTED.
It is registered as client-streaming, which a unary call is on the wire: the handler then starts
before the message is read, so a caller without the bearer token is turned away at once
instead of holding a worker while its message arrives (grpcio reads a unary call's message on
the worker).
"""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from otel_bridge import otlp
from otel_bridge.receiver import protocol
from otel_bridge.receiver.auth import bearer_token_matches
from otel_bridge.receiver.config import TLSConfig
from otel_bridge.receiver.ingest import Ingestor, Verdict

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
        max_connection_age_seconds: float = 60.0,
        max_connection_age_grace_seconds: float = 30.0,
        tls_handshake_timeout_seconds: float = 10.0,
    ) -> None:
        # Each worker holds one request, so max_workers also bounds the bodies being processed.
        self._ingestor = ingestor
        self._bearer_token = bearer_token
        self._server = grpc.server(
            futures.ThreadPoolExecutor(
                max_workers=max_workers, thread_name_prefix="otel-bridge-grpc"
            ),
            options=[
                # gRPC enforces this on the decompressed message, which bounds a gzip bomb.
                ("grpc.max_receive_message_length", max_request_bytes),
                # A second bridge on the same port must fail to start, not share the traffic.
                ("grpc.so_reuseport", 0),
                # HTTP/2 flow control holds a connection's further calls in the client, where a
                # refusal (without RetryInfo) would make OTLP exporters drop them.
                ("grpc.max_concurrent_streams", max_workers),
                # Beyond this the connection is closed at once; clients see UNAVAILABLE, which
                # OTLP exporters retry. With the streams per connection, this bounds the calls
                # (and the flow-control windows of request bytes) waiting for a worker.
                ("grpc.max_allowed_incoming_connections", max_connections),
                ("grpc.max_connection_idle_ms", int(idle_timeout_seconds * 1000)),
                # grpcio waits for a call's message on the worker thread, with no timeout of its
                # own: a call that sends its headers and stalls would hold a worker for good.
                # Closing connections at an age (gracefully: clients move to a new connection)
                # and cutting them after the grace cancels such a call and frees its worker.
                ("grpc.max_connection_age_ms", int(max_connection_age_seconds * 1000)),
                ("grpc.max_connection_age_grace_ms", int(max_connection_age_grace_seconds * 1000)),
                ("grpc.server_handshake_timeout_ms", int(tls_handshake_timeout_seconds * 1000)),
            ],
        )
        handler = grpc.stream_unary_rpc_method_handler(
            self._export, response_serializer=lambda message: message.SerializeToString()
        )
        self._server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE_NAME, {"Export": handler}),)
        )
        _probe(address)
        try:
            if tls is None:
                self.port = self._server.add_insecure_port(address)
            else:
                credentials = grpc.ssl_server_credentials(
                    [(tls.key_file.read_bytes(), tls.cert_file.read_bytes())],
                    root_certificates=(
                        tls.client_ca_file.read_bytes() if tls.client_ca_file else None
                    ),
                    require_client_auth=tls.client_ca_file is not None,
                )
                self.port = self._server.add_secure_port(address, credentials)
        except RuntimeError as exc:  # grpcio reports a failed bind this way
            raise OSError(f"cannot bind the OTLP/gRPC receiver to {address}: {exc}") from exc
        if not self.port:
            raise OSError(f"cannot bind the OTLP/gRPC receiver to {address}")

    def start(self) -> None:
        self._server.start()

    def stop(self, grace_seconds: float = 10.0) -> None:
        """Refuse new RPCs and wait up to `grace_seconds` for the running ones."""
        self._server.stop(grace_seconds).wait()

    def _export(self, messages: Iterator[bytes], context: grpc.ServicerContext) -> Any:
        try:
            response = self._accept(messages, context)
        except _Refusal as refusal:
            self._ingestor.metrics.request(_TRANSPORT, refusal.code.name)
            detail: Message | None = None
            if refusal.retry_after is not None:
                detail = error_details_pb2.RetryInfo(
                    retry_delay=Duration(seconds=math.ceil(refusal.retry_after))
                )
            elif refusal.code is grpc.StatusCode.INVALID_ARGUMENT:
                detail = protocol.bad_request(refusal.message)
            if detail is not None:
                status = status_pb2.Status(code=refusal.code.value[0], message=refusal.message)
                status.details.add().Pack(detail)
                context.set_trailing_metadata(((_STATUS_DETAILS_KEY, status.SerializeToString()),))
            context.abort(refusal.code, refusal.message)
        self._ingestor.metrics.request(_TRANSPORT, grpc.StatusCode.OK.name)
        return response

    def _accept(
        self, messages: Iterator[bytes], context: grpc.ServicerContext
    ) -> ExportTraceServiceResponse:
        metadata = dict(context.invocation_metadata())
        if not bearer_token_matches(self._bearer_token, _text(metadata.get("authorization"))):
            raise _Refusal(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")
        body = next(messages, None)
        if body is None:
            raise _Refusal(grpc.StatusCode.INVALID_ARGUMENT, "no ExportTraceServiceRequest sent")
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
