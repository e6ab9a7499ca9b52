"""The loopback HTTP server, in a thread of its own, that the tests' proxies in front of a real
service (Label Studio, moto) are built on: a subclass builds its handler (on `QuietHandler`) and
calls `_serve`; the handler passes a request on with `forward` and its answer back with
`pass_back`."""

from __future__ import annotations

import http.client
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self
from urllib.parse import urlsplit

# Headers about one connection, which a proxy does not pass on (RFC 9110, 7.6.1).
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "proxy-connection",
    }
)


@dataclass(frozen=True, slots=True)
class UpstreamAnswer:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    payload: bytes


def upstream_address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


def forward(
    request: BaseHTTPRequestHandler, upstream: tuple[str, int], body: bytes, timeout: float
) -> UpstreamAnswer:
    """Send the request being handled, with `body`, to `upstream` and read its whole answer."""
    connection = http.client.HTTPConnection(*upstream, timeout=timeout)
    try:
        # Content-Length from `body`, which the proxy may have rewritten.
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() not in HOP_BY_HOP and k.lower() != "content-length"
        }
        connection.request(request.command, request.path, body=body, headers=headers)
        response = connection.getresponse()
        return UpstreamAnswer(
            response.status, response.reason, response.getheaders(), response.read()
        )
    finally:
        connection.close()


def pass_back(request: BaseHTTPRequestHandler, answer: UpstreamAnswer) -> None:
    """Answer the request being handled with what upstream answered."""
    request.send_response(answer.status, answer.reason)
    for name, value in answer.headers:
        if name.lower() not in HOP_BY_HOP | {"content-length"}:
            request.send_header(name, value)
    request.send_header("Content-Length", str(len(answer.payload)))
    request.end_headers()
    if request.command != "HEAD":
        request.wfile.write(answer.payload)


class QuietHandler(BaseHTTPRequestHandler):
    """The base of a test server's request handler: HTTP/1.1, so a client keeps its connection
    as with a real service, and no access log on stderr (the tests read counters instead)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass


class LoopbackProxy:
    _server: ThreadingHTTPServer
    _thread: threading.Thread

    def _serve(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
