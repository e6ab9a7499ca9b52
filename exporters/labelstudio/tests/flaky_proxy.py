"""A loopback HTTP proxy in front of the real Label Studio that fails a chosen share of requests.

Of the requests that match (`only`: (method, path pattern) pairs), a share `fail_share` fails,
drawn from a seeded random sequence (a fixed pattern can lock step with the client's own
sequence of requests and fail the same one forever), in turn in each of the ways a request fails
on a real network:

- "refused": answered 503 without reaching Label Studio (an overloaded gateway);
- "lost": forwarded, Label Studio does the work, then the client gets a 502 instead of the answer
  (a connection dropped on the way back);
- "cut": only the first half of the body reaches Label Studio before the connection is closed,
  and the client's connection is closed without an answer (a proxy or network cutting the upload).

Drawing per request instead of per unit of time keeps the tests deterministic.
"""

from __future__ import annotations

import http.client
import random
import re
import threading
from collections import Counter
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

from tests.support.loopback_proxy import (
    HOP_BY_HOP,
    LoopbackProxy,
    QuietHandler,
    forward,
    pass_back,
    upstream_address,
)

FAILURE_MODES = ("refused", "lost", "cut")


class FlakyProxy(LoopbackProxy):
    """`with FlakyProxy(url, only=[("POST", r"/import$")], fail_share=0.3) as proxy:` then point
    clients at `proxy.url`; `proxy.failures` counts the failures by mode."""

    def __init__(
        self,
        upstream_url: str,
        *,
        only: Sequence[tuple[str, str]],
        fail_share: float,
        seed: int = 13,
        modes: tuple[str, ...] = FAILURE_MODES,
    ) -> None:
        self._upstream = upstream_address(upstream_url)
        self._only = [(method, re.compile(path)) for method, path in only]
        self._fail_share = fail_share
        self._random = random.Random(seed)
        self._modes = modes
        self._lock = threading.Lock()
        self.matched = 0
        self.failures: Counter[str] = Counter()
        self._serve(self._handler_class())

    def _failure_for(self, method: str, path: str) -> str | None:
        path = urlsplit(path).path
        if not any(method == m and pattern.search(path) for m, pattern in self._only):
            return None
        with self._lock:
            self.matched += 1
            if self._random.random() >= self._fail_share:
                return None
            mode = self._modes[sum(self.failures.values()) % len(self._modes)]
            self.failures[mode] += 1
            return mode

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(QuietHandler):
            def _relay(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                failure = proxy._failure_for(self.command, self.path)
                if failure == "refused":
                    self._answer(503, b'{"detail": "injected: service unavailable"}')
                    return
                if failure == "cut":
                    self._cut(body)
                    return
                answer = forward(self, proxy._upstream, body, timeout=60)
                if failure == "lost":
                    self._answer(502, b'{"detail": "injected: answer lost"}')
                    return
                pass_back(self, answer)

            def _cut(self, body: bytes) -> None:
                upstream = http.client.HTTPConnection(*proxy._upstream, timeout=60)
                try:
                    upstream.putrequest(self.command, self.path, skip_accept_encoding=True)
                    for name, value in self.headers.items():
                        if name.lower() not in HOP_BY_HOP:
                            upstream.putheader(name, value)
                    upstream.endheaders(body[: len(body) // 2])
                finally:
                    upstream.close()
                self.close_connection = True

            def _answer(self, status: int, payload: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _relay

        return Handler
