"""OTLP/HTTP request and response bodies: media types, bounded gzip inflation, decoding and the
`google.rpc.Status` error body, independent of any server.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otel_bridge import otlp

__all__ = [
    "JSON",
    "PROTOBUF",
    "ProtocolError",
    "bad_request",
    "content_encoding",
    "decode_body",
    "encode_message",
    "error_body",
    "inflate",
    "media_type",
]

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_SUPPORTED_MEDIA_TYPES = frozenset({PROTOBUF, JSON})
_IDENTITY_ENCODINGS = frozenset({"", "identity", "none"})
_READ_SIZE = 64 * 1024
# Inflated bytes per zlib call: large enough to be cheap, small enough for a bomb to stop early.
_INFLATE_STEP = 1024 * 1024

# HTTP status -> google.rpc.Code for the Status body (OTLP/HTTP "Failures" section).
_RPC_CODES = {
    400: code_pb2.INVALID_ARGUMENT,
    401: code_pb2.UNAUTHENTICATED,
    404: code_pb2.NOT_FOUND,
    403: code_pb2.PERMISSION_DENIED,
    405: code_pb2.UNIMPLEMENTED,
    408: code_pb2.DEADLINE_EXCEEDED,
    413: code_pb2.RESOURCE_EXHAUSTED,
    415: code_pb2.INVALID_ARGUMENT,
    429: code_pb2.RESOURCE_EXHAUSTED,
    500: code_pb2.INTERNAL,
    503: code_pb2.UNAVAILABLE,
}


@dataclass(frozen=True, slots=True)
class ProtocolError(Exception):
    """A request the receiver answers with `status` (and `message` in the Status body)."""

    status: int
    message: str

    def __str__(self) -> str:
        return f"{self.status}: {self.message}"


def media_type(content_type: str | None) -> str:
    """The supported media type named by a Content-Type header, else ProtocolError 415."""
    value = (content_type or "").split(";", 1)[0].strip().lower()
    if value not in _SUPPORTED_MEDIA_TYPES:
        raise ProtocolError(
            415, f"unsupported Content-Type {content_type!r}; use {PROTOBUF} or {JSON}"
        )
    return value


def content_encoding(value: str | None) -> str:
    """The Content-Encoding as "gzip" or "" (none), else ProtocolError 415."""
    encoding = (value or "").strip().lower()
    if encoding in _IDENTITY_ENCODINGS:
        return ""
    if encoding != "gzip":
        raise ProtocolError(415, f"unsupported Content-Encoding {value!r}; use gzip")
    return encoding


def inflate(body: bytes, encoding: str | None, limit: int) -> bytes:
    """Undo Content-Encoding; gzip is inflated in steps so a bomb stops at `limit` bytes.

    The input goes in by slices of `_READ_SIZE`: zlib copies the input it has not consumed
    yet on every call, and a whole bomb fed at once would be copied once per output step.
    """
    if not content_encoding(encoding):
        return body
    parts: list[bytes] = []
    total = 0
    slices = (body[i : i + _READ_SIZE] for i in range(0, len(body), _READ_SIZE))
    pending = b""
    inflater = None
    try:
        while pending or (pending := next(slices, b"")):
            if inflater is None:
                # A gzip body may hold several members back to back (RFC 1952); each is inflated.
                inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
            part = inflater.decompress(pending, min(limit - total + 1, _INFLATE_STEP))
            pending = inflater.unconsumed_tail
            total += len(part)
            if total > limit:
                raise ProtocolError(
                    413, f"decompressed request body exceeds the limit of {limit} bytes"
                )
            parts.append(part)
            if inflater.eof:
                pending, inflater = inflater.unused_data + pending, None
    except zlib.error as exc:
        raise ProtocolError(400, f"invalid gzip body: {exc}") from exc
    if inflater is not None:
        raise ProtocolError(400, "invalid gzip body: truncated stream")
    return b"".join(parts)


def decode_body(body: bytes, media: str) -> ExportTraceServiceRequest:
    """Decode an inflated body of a supported media type, else ProtocolError 400."""
    try:
        return otlp.decode_protobuf(body) if media == PROTOBUF else otlp.decode_json(body or b"{}")
    except otlp.OTLPDecodeError as exc:
        raise ProtocolError(400, str(exc)) from exc


def encode_message(message: Message, media: str) -> bytes:
    """A response message in the request's encoding (OTLP/HTTP answers in kind)."""
    if media == JSON:
        return otlp.encode_json(message).encode("utf-8")
    return message.SerializeToString()


def bad_request(message: str) -> error_details_pb2.BadRequest:
    """The detail OTLP asks for with bad data (HTTP 400 SHOULD, gRPC INVALID_ARGUMENT MAY carry
    it): what was wrong with the request body."""
    violation = error_details_pb2.BadRequest.FieldViolation(field="body", description=message)
    return error_details_pb2.BadRequest(field_violations=[violation])


def error_body(status: int, message: str, media: str) -> bytes:
    """The `google.rpc.Status` body OTLP/HTTP sends with every failure status; a 400 carries a
    `google.rpc.BadRequest` detail."""
    rpc_status = status_pb2.Status(code=_RPC_CODES.get(status, code_pb2.UNKNOWN), message=message)
    if status == 400:
        rpc_status.details.add().Pack(bad_request(message))
    if media == JSON:
        return json_format.MessageToJson(rpc_status, indent=None).encode("utf-8")
    return rpc_status.SerializeToString()
