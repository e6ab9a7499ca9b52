"""An OTLP/gRPC Export call that stalls mid-message, written as raw HTTP/2 frames (a gRPC client
library always finishes its message): for the receiver's limit tests and bench/grpc_stalls.py."""

from __future__ import annotations

import socket
import struct

__all__ = ["EXPORT_METHOD", "stalled_grpc_call"]

EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def _http2_frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return (
        len(payload).to_bytes(3, "big") + bytes([kind, flags]) + struct.pack(">I", stream) + payload
    )


def _hpack_literal(name: str, value: str) -> bytes:
    """A header as an HPACK literal without indexing, no Huffman coding (short strings only)."""
    return b"\x00" + bytes([len(name)]) + name.encode() + bytes([len(value)]) + value.encode()


def stalled_grpc_call(port: int, token: str | None = None, timeout: float = 30.0) -> socket.socket:
    """An Export call on a connection of its own whose headers and the first 6 of its 1005
    message bytes arrive, then nothing more; the socket is the caller's to close."""
    connection = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    headers = b"".join(
        _hpack_literal(name, value)
        for name, value in [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", EXPORT_METHOD),
            (":authority", f"127.0.0.1:{port}"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
            *([("authorization", f"Bearer {token}")] if token else []),
        ]
    )
    message_start = b"\x00" + struct.pack(">I", 1000) + b"\x0a"
    connection.sendall(
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
        + _http2_frame(0x4, 0, 0, b"")  # SETTINGS
        + _http2_frame(0x1, 0x4, 1, headers)  # HEADERS, END_HEADERS
        + _http2_frame(0x0, 0, 1, message_start)  # DATA, stream left open
        + _http2_frame(0x4, 0x1, 0, b"")  # SETTINGS ACK (of the server's)
    )
    return connection
