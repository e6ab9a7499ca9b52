"""OTLP/HTTP transport: `POST /v1/traces` and `GET /health` on aiohttp's low-level server.

Why aiohttp: its C parser and asyncio loop serve a thousand connections from one thread, and of
the maintained servers measured (aiohttp, uvicorn with h11 or httptools, on the request shape of
bench/receiver.py) it was as fast as any, while being the only one whose connection timer runs
from the moment a connection opens until its request headers are complete, so an idle
connection and a slowloris sender are both closed by one setting (uvicorn starts its timer only
after a first response). The low-level `web.Server` is handed to `loop.create_server` directly,
which brings the listen backlog and the TLS handshake timeout with it.

Limits: connections (beyond `max_connections` a connection gets one 503 and is closed), request
headers within `idle_timeout`, the body within `read_timeout`, bodies held in memory at once
within `max_concurrent_requests * max_request_bytes` (taken as the bytes arrive, so a slow
sender holds only what it sent), and inflated gzip within `max_request_bytes`. Decoding and
export run on a pool of `max_concurrent_requests` threads, off the event loop.

Status codes follow the OTLP/HTTP specification: 200 with ExportTraceServiceResponse (and
partial_success), 400 undecodable, 404 unknown path, 405 other methods (`Allow: POST`), 413 too
large, 415 unsupported content type or encoding, 429/503 with Retry-After for retryable refusals,
each failure with a `google.rpc.Status` body in the request's encoding.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import re
import socket
import ssl
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, cast

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from otel_bridge import otlp
from otel_bridge.receiver import protocol
from otel_bridge.receiver.auth import bearer_token_matches
from otel_bridge.receiver.config import CORSConfig, Endpoint
from otel_bridge.receiver.ingest import Ingestor, Verdict
from otel_bridge.receiver.limits import ByteBudget

__all__ = ["HEALTH_PATH", "TRACES_PATH", "HTTPLimits", "OTLPHTTPServer"]

TRACES_PATH = "/v1/traces"
HEALTH_PATH = "/health"
_TRANSPORT = "http"
_VERDICT_STATUS = {Verdict.THROTTLED: 429, Verdict.UNAVAILABLE: 503}
# Headers a browser sender needs beyond the CORS-safelisted ones.
_CORS_BASE_HEADERS = ("Content-Type", "Content-Encoding")

_logger = logging.getLogger(__name__)

# (status, body, extra headers) of one answer
_Answer = tuple[int, bytes, dict[str, str]]


@dataclass(frozen=True, slots=True)
class HTTPLimits:
    max_request_bytes: int
    max_concurrent_requests: int = 8
    max_connections: int = 1000
    idle_timeout_seconds: float = 30.0
    read_timeout_seconds: float = 30.0
    tls_handshake_timeout_seconds: float = 10.0
    backlog: int = 1024
    # How long a body waits for room in memory before it is answered 503.
    busy_wait_seconds: float = 10.0


class OTLPHTTPServer:
    """Serves one Ingestor from an event loop on a thread of its own; binds in the constructor."""

    def __init__(
        self,
        endpoint: Endpoint,
        ingestor: Ingestor,
        limits: HTTPLimits,
        *,
        bearer_token: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        cors: CORSConfig | None = None,
    ) -> None:
        self._ingestor = ingestor
        self._limits = limits
        self._bearer_token = bearer_token
        self._ssl_context = ssl_context
        self._cors = _CORSPolicy(cors) if cors is not None else None
        family = socket.AF_INET6 if ":" in endpoint.host else socket.AF_INET
        try:
            self._socket = socket.create_server(
                (endpoint.host, endpoint.port), family=family, backlog=limits.backlog
            )
        except OSError as exc:
            raise OSError(
                exc.errno, f"cannot bind the OTLP/HTTP receiver to {endpoint}: {_reason(exc)}"
            ) from exc
        self.port = int(self._socket.getsockname()[1])
        self._pool = ThreadPoolExecutor(
            max_workers=limits.max_concurrent_requests, thread_name_prefix="otel-bridge-http"
        )
        # zlib inflates without the GIL: gzip bombs sent back to back would take every core
        # (up to max_request_bytes of work each); they take half of them at most.
        self._inflating = threading.BoundedSemaphore(max(1, (os.cpu_count() or 2) // 2))
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._serving = threading.Event()
        self._web: web.Server | None = None
        self._server: asyncio.Server | None = None
        self._budget: ByteBudget | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="otel-bridge-http", daemon=True)
        self._thread.start()
        self._serving.wait()

    def stop(self, grace_seconds: float = 10.0) -> None:
        """Stop accepting connections; requests in progress get `grace_seconds` to finish."""
        if self._thread is None:
            self._socket.close()
            self._pool.shutdown()
            return
        closing = asyncio.run_coroutine_threadsafe(self._close(grace_seconds), self._loop)
        closing.result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
        self._pool.shutdown()
        self._thread = None

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.set_exception_handler(_log_loop_error)
        self._loop.run_until_complete(self._open())
        self._serving.set()
        self._loop.run_forever()

    async def _open(self) -> None:
        limits = self._limits
        self._budget = ByteBudget(limits.max_concurrent_requests * limits.max_request_bytes)
        self._web = web.Server(
            self._handle,
            keepalive_timeout=limits.idle_timeout_seconds,
            access_log=None,
            auto_decompress=False,  # inflated here, within the limit
            logger=cast(logging.Logger, _ClientErrorsInOneLine(_logger)),
        )
        tls: dict[str, Any] = {}
        if self._ssl_context is not None:
            tls = {
                "ssl": self._ssl_context,
                "ssl_handshake_timeout": limits.tls_handshake_timeout_seconds,
            }
        self._server = await self._loop.create_server(
            self._connection, sock=self._socket, backlog=limits.backlog, **tls
        )

    async def _close(self, grace_seconds: float) -> None:
        assert self._server is not None and self._web is not None
        self._server.close()
        await self._web.shutdown(grace_seconds)
        # Connections closed while lingering over an unread body leave their tasks behind.
        leftovers = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in leftovers:
            task.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)

    def _connection(self) -> asyncio.Protocol:
        assert self._web is not None
        if len(self._web.connections) >= self._limits.max_connections:
            return _Overloaded(self._ingestor.retry_after_seconds)
        return self._web()

    # --- requests ------------------------------------------------------------------------------

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        try:
            status, body, headers = await self._route(request)
        except (ConnectionError, asyncio.IncompleteReadError):
            # The client went away; nobody reads this answer.
            status, body, headers = 400, b"", {}
        media = headers.pop("Content-Type", protocol.PROTOBUF)
        if self._cors is not None:
            headers.update(self._cors.response_headers(request.headers.get("Origin")))
        self._ingestor.metrics.request(_TRANSPORT, status)
        response = web.Response(
            status=status, body=body, headers={"Content-Type": media, **headers}
        )
        if status == 408:
            response.force_close()
        return response

    async def _route(self, request: web.BaseRequest) -> _Answer:
        path = request.path
        if path == TRACES_PATH:
            if request.method == "POST":
                return await self._export(request)
            if (
                request.method == "OPTIONS"
                and self._cors is not None
                and "Access-Control-Request-Method" in request.headers
            ):
                return self._cors.preflight(request.headers)
            return _failure(405, f"{request.method} not allowed; use POST", allow="POST")
        if path == HEALTH_PATH:
            if request.method in ("GET", "HEAD"):
                return self._health(request.headers.get("Authorization"))
            return _failure(405, f"{request.method} not allowed; use GET", allow="GET")
        return _failure(404, f"no such path {path!r}; traces go to {TRACES_PATH}")

    async def _export(self, request: web.BaseRequest) -> _Answer:
        headers = request.headers
        try:
            media = protocol.media_type(headers.get("Content-Type"))
            encoding = protocol.content_encoding(headers.get("Content-Encoding"))
        except protocol.ProtocolError as exc:
            return _failure(exc.status, exc.message)
        if not bearer_token_matches(self._bearer_token, headers.get("Authorization")):
            return _failure(401, "missing or wrong bearer token", media)
        assert self._budget is not None
        reserved = 0
        try:
            parts: list[bytes] = []
            async for part in self._body(request):
                await self._budget.take(len(part), self._limits.busy_wait_seconds)
                reserved += len(part)
                parts.append(part)
            body = b"".join(parts)
            del parts
            return await self._loop.run_in_executor(
                self._pool, self._process, body, encoding, media
            )
        except protocol.ProtocolError as exc:
            retry_after = self._ingestor.retry_after_seconds if exc.status == 503 else None
            return _failure(exc.status, exc.message, media, retry_after)
        finally:
            self._budget.give_back(reserved)

    async def _body(self, request: web.BaseRequest) -> Any:
        limit = self._limits.max_request_bytes
        length = request.content_length
        if length is not None and length > limit:
            raise protocol.ProtocolError(
                413, f"request body of {length} bytes exceeds the limit of {limit}"
            )
        total = 0
        timeout = self._limits.read_timeout_seconds
        try:
            async with asyncio.timeout(timeout):
                while part := await request.content.readany():
                    total += len(part)
                    if total > limit:
                        raise protocol.ProtocolError(
                            413, f"request body exceeds the limit of {limit} bytes"
                        )
                    yield part
        except TimeoutError:
            raise protocol.ProtocolError(
                408, f"request body not received within {timeout:g} s"
            ) from None
        except web.RequestPayloadError as exc:
            raise protocol.ProtocolError(400, f"malformed request body: {exc}") from None

    def _process(self, body: bytes, encoding: str, media: str) -> _Answer:
        """On a pool thread: inflate, decode, hand to the sinks, and encode the answer."""
        try:
            if encoding:
                with self._inflating:
                    body = protocol.inflate(body, encoding, self._limits.max_request_bytes)
            request = protocol.decode_body(body, media)
        except protocol.ProtocolError as exc:
            return _failure(exc.status, exc.message, media)
        try:
            outcome = self._ingestor.ingest(
                request, _TRANSPORT, body if media == protocol.PROTOBUF else None
            )
        except Exception:  # a bug of ours must answer, not hang up on the client
            _logger.exception("failed to ingest a request")
            return _failure(500, "internal error in otel-bridge; see its log", media)
        if outcome.verdict is not Verdict.ACCEPTED:
            return _failure(
                _VERDICT_STATUS[outcome.verdict],
                outcome.message,
                media,
                outcome.retry_after_seconds,
            )
        response = otlp.export_response(outcome.rejected)
        return 200, protocol.encode_message(response, media), {"Content-Type": media}

    def _health(self, authorization: str | None) -> _Answer:
        states = self._ingestor.sink_states()
        if self._ingestor.closed:
            status = "stopping"
        elif not all(state.ok for state in states):
            status = "degraded"
        else:
            status = "ok"
        document: dict[str, Any] = {"status": status}
        # Without a configured token anyone may send spans anyway; with one, only its holder
        # learns which sinks exist and how they are doing.
        if bearer_token_matches(self._bearer_token, authorization):
            document["sinks"] = {
                state.id: {
                    "state": state.status.condition.value,
                    "since": state.status.since.isoformat() if state.status.since else None,
                    "refused_requests": state.status.refused_requests,
                    "refused_spans": state.status.refused_spans,
                    "spool_full": state.spool_full,
                    "spool_bytes": state.spool_bytes,
                    "delivery": state.delivery.to_dict() if state.delivery else None,
                }
                for state in states
            }
        body = json.dumps(document).encode()
        return (503 if status == "stopping" else 200), body, {"Content-Type": protocol.JSON}


def _reason(error: OSError) -> str:
    # socket.create_server appends the address to strerror; the message names it already.
    return os.strerror(error.errno) if error.errno else str(error)


def _failure(
    status: int,
    message: str,
    media: str = protocol.PROTOBUF,
    retry_after: float | None = None,
    allow: str | None = None,
) -> _Answer:
    headers = {"Content-Type": media}
    if retry_after is not None:
        headers["Retry-After"] = str(math.ceil(retry_after))
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if allow is not None:
        headers["Allow"] = allow
    return status, protocol.error_body(status, message, media), headers


class _CORSPolicy:
    """The Collector's OTLP receiver CORS settings: exact origins, `*`, or one-`*` patterns."""

    def __init__(self, config: CORSConfig) -> None:
        self._origins = [
            re.compile(re.escape(origin).replace(r"\*", ".*")) for origin in config.allowed_origins
        ]
        self._allowed_headers = ", ".join((*_CORS_BASE_HEADERS, *config.allowed_headers))
        self._max_age = str(config.max_age_seconds)

    def allows(self, origin: str | None) -> bool:
        return origin is not None and any(p.fullmatch(origin) for p in self._origins)

    def response_headers(self, origin: str | None) -> dict[str, str]:
        if not self.allows(origin):
            return {}
        assert origin is not None
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}

    def preflight(self, headers: Mapping[str, str]) -> _Answer:
        if not self.allows(headers.get("Origin")):
            return _failure(403, f"origin {headers.get('Origin')!r} is not allowed")
        return (
            204,
            b"",
            {
                "Access-Control-Allow-Methods": "POST",
                "Access-Control-Allow-Headers": self._allowed_headers,
                "Access-Control-Max-Age": self._max_age,
            },
        )


class _Overloaded(asyncio.Protocol):
    """A connection beyond `max_connections`: one retryable answer, then closed."""

    def __init__(self, retry_after: float) -> None:
        # The request is not read, so its encoding is unknown: the Status body in protobuf.
        body = protocol.error_body(503, "too many connections; retry later", protocol.PROTOBUF)
        self._answer = (
            "HTTP/1.1 503 Service Unavailable\r\n"
            f"Retry-After: {math.ceil(retry_after)}\r\n"
            f"Content-Type: {protocol.PROTOBUF}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode() + body

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(self._answer)
        transport.close()


class _ClientErrorsInOneLine(logging.LoggerAdapter[logging.Logger]):
    """aiohttp logs a malformed request (bad request line, headers too long) with a traceback;
    that is the client's error, worth one line. Errors of the server keep their traceback."""

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        if isinstance(exc_info, HttpProcessingError | ConnectionError):
            message = " ".join(
                str(
                    exc_info.message if isinstance(exc_info, HttpProcessingError) else exc_info
                ).split()
            )
            self.logger.info("%s: %s", str(msg) % args, message[:200])
            return
        super().exception(msg, *args, exc_info=exc_info, **kwargs)


def _log_loop_error(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Failed handshakes and dropped connections are the network's doing: one line, no
    traceback. Anything else is a bug and keeps asyncio's full report."""
    error = context.get("exception")
    if isinstance(error, OSError | TimeoutError | ssl.SSLError):
        _logger.info("OTLP/HTTP connection: %s: %s", context.get("message", ""), error)
        return
    loop.default_exception_handler(context)
