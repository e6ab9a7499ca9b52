"""OTLP/HTTP transport: `POST /v1/traces` and `GET /health` on a threading stdlib HTTP server.

Status codes follow the OTLP/HTTP specification: 200 with ExportTraceServiceResponse (and
partial_success), 400 for undecodable data, 429/503 with Retry-After for retryable refusals,
each failure with a `google.rpc.Status` body in the request's encoding.
"""

from __future__ import annotations

import json
import logging
import math
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from otel_bridge import otlp
from otel_bridge.receiver import protocol
from otel_bridge.receiver.auth import bearer_token_matches
from otel_bridge.receiver.ingest import Ingestor, Verdict

__all__ = ["HEALTH_PATH", "TRACES_PATH", "OTLPHTTPServer"]

TRACES_PATH = "/v1/traces"
HEALTH_PATH = "/health"
_TRANSPORT = "http"
_MAX_DISCARD_BYTES = 64 * 1024 * 1024
_BUSY_WAIT_SECONDS = 10.0
_VERDICT_STATUS = {Verdict.THROTTLED: 429, Verdict.UNAVAILABLE: 503}

_logger = logging.getLogger(__name__)


class OTLPHTTPServer(ThreadingHTTPServer):
    """Serves one Ingestor; TLS handshakes happen on the request thread, not the accept loop."""

    daemon_threads = True
    # Let a restarted receiver rebind its port while the old connections linger in TIME_WAIT.
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        ingestor: Ingestor,
        *,
        max_request_bytes: int,
        max_concurrent_requests: int = 8,
        bearer_token: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)
        self.ingestor = ingestor
        self.max_request_bytes = max_request_bytes
        # Bounds the request bodies in memory at once (each up to max_request_bytes).
        self.body_slots = threading.BoundedSemaphore(max_concurrent_requests)
        self.bearer_token = bearer_token
        self.ssl_context = ssl_context
        self._thread: threading.Thread | None = None
        # Handler threads are daemons (an idle keep-alive connection must not block exit), so
        # stop() waits for the requests in progress itself.
        self._in_flight = 0
        self._idle = threading.Condition()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.ssl_context is not None:
            try:
                request = self.ssl_context.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as exc:
                _logger.info("TLS handshake with %s failed: %s", client_address, exc)
                return
        super().finish_request(request, client_address)

    def start(self) -> None:
        # A short poll interval keeps stop() quick; the loop costs nothing measurable.
        self._thread = threading.Thread(
            target=self.serve_forever, args=(0.1,), name="otel-bridge-http", daemon=True
        )
        self._thread.start()

    def stop(self, grace_seconds: float = 10.0) -> None:
        """Stop accepting connections; requests in progress get `grace_seconds` to finish."""
        self.shutdown()
        self.server_close()
        with self._idle:
            self._idle.wait_for(lambda: self._in_flight == 0, grace_seconds)

    @contextmanager
    def request_in_progress(self) -> Iterator[None]:
        with self._idle:
            self._in_flight += 1
        try:
            yield
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: exporters reuse one connection
    # Headers and body leave in two writes; with Nagle's algorithm the body would wait for the
    # client's delayed ACK (~40 ms per request on a kept-alive connection).
    disable_nagle_algorithm = True
    server: OTLPHTTPServer
    _body_read = False

    def do_POST(self) -> None:
        with self.server.request_in_progress():
            self._post()

    def _post(self) -> None:
        self._body_read = False
        if self.path.split("?", 1)[0] != TRACES_PATH:
            self._fail(404, f"no such path {self.path!r}; traces go to {TRACES_PATH}")
            return
        try:
            media = protocol.media_type(self.headers.get("Content-Type"))
        except protocol.ProtocolError as exc:
            self._fail(exc.status, exc.message)
            return
        if not bearer_token_matches(self.server.bearer_token, self.headers.get("Authorization")):
            self._fail(401, "missing or wrong bearer token", media)
            return
        # Waiting here leaves the body in the socket: TCP flow control slows the client down.
        if not self.server.body_slots.acquire(timeout=_BUSY_WAIT_SECONDS):
            self._fail(
                503,
                "too many requests in progress; retry later",
                media,
                self.server.ingestor.retry_after_seconds,
            )
            return
        try:
            self._receive(media)
        finally:
            self.server.body_slots.release()

    def _receive(self, media: str) -> None:
        try:
            body = self._read_body()
            body = protocol.inflate(
                body, self.headers.get("Content-Encoding"), self.server.max_request_bytes
            )
            request = protocol.decode_body(body, media)
        except protocol.ProtocolError as exc:
            self._fail(exc.status, exc.message, media)
            return
        try:
            outcome = self.server.ingestor.ingest(request, _TRANSPORT)
        except Exception:  # a bug of ours must answer, not hang up on the client
            _logger.exception("failed to ingest a request")
            self._fail(500, "internal error in otel-bridge; see its log", media)
            return
        if outcome.verdict is not Verdict.ACCEPTED:
            self._fail(
                _VERDICT_STATUS[outcome.verdict],
                outcome.message,
                media,
                outcome.retry_after_seconds,
            )
            return
        response = otlp.export_response(outcome.rejected)
        self._send(200, protocol.encode_message(response, media), media)

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] == HEALTH_PATH:
            sinks = {s.id: {"spool_full": s.spool_full} for s in self.server.ingestor.sinks}
            body = json.dumps({"status": "ok", "sinks": sinks}).encode()
            self._send(200, body, protocol.JSON, count=False)
            return
        self._method_not_allowed()

    def do_PUT(self) -> None:
        self._method_not_allowed()

    def do_DELETE(self) -> None:
        self._method_not_allowed()

    def do_PATCH(self) -> None:
        self._method_not_allowed()

    def _method_not_allowed(self) -> None:
        if self.path.split("?", 1)[0] == TRACES_PATH:
            self._fail(405, f"{self.command} not allowed; use POST", headers={"Allow": "POST"})
        else:
            self._fail(404, f"no such path {self.path!r}")

    def _read_body(self) -> bytes:
        limit = self.server.max_request_bytes
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunked = protocol.read_chunked(self.rfile, limit)
            self._body_read = True
            return chunked
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            raise protocol.ProtocolError(411, "Content-Length or chunked encoding required")
        body = protocol.read_exact(self.rfile, int(length), limit)
        self._body_read = True
        return body

    def _discard_unread_body(self) -> bool:
        """Read and drop a refused body of moderate size; False if it is left unread.

        Closing a socket with unread input makes the kernel reset the connection, and the
        client would see "connection reset" instead of our answer; bodies beyond
        `_MAX_DISCARD_BYTES` are not worth reading and get the reset.
        """
        if self.command != "POST" or self._body_read:
            return True
        length = self.headers.get("Content-Length") or ""
        if self.headers.get("Transfer-Encoding") or not length.isdigit():
            return False
        if int(length) > _MAX_DISCARD_BYTES:
            return False
        remaining = int(length)
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 64 * 1024))
            if not chunk:
                return False
            remaining -= len(chunk)
        self._body_read = True
        return True

    def _fail(
        self,
        status: int,
        message: str,
        media: str = protocol.PROTOBUF,
        retry_after: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        extra = dict(headers or {})
        if retry_after is not None:
            extra["Retry-After"] = str(math.ceil(retry_after))
        if status == 401:
            extra["WWW-Authenticate"] = "Bearer"
        if not self._discard_unread_body():
            # The rest of the body is still on the socket; the connection cannot be reused.
            self.close_connection = True
        self._send(status, protocol.error_body(status, message, media), media, extra)

    def _send(
        self,
        status: int,
        body: bytes,
        media: str,
        headers: dict[str, str] | None = None,
        *,
        count: bool = True,
    ) -> None:
        if count:
            self.server.ingestor.metrics.request(_TRANSPORT, status)
        self.send_response(status, HTTPStatus(status).phrase)
        self.send_header("Content-Type", media)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        _logger.debug("%s " + format, self.address_string(), *args)
