"""A real loopback HTTP service that stores items by idempotency key and fails on command, plus
`HttpTestSink`, a minimal sink exporter delivering to it, for the delivery fault-injection tests.

The service records every POSTed item (so a test can see duplicates) and answers
`GET /items?keys=a,b` with the keys it holds (the sink's `already_delivered`). Faults are queued
with `fail_next(...)` and consumed one per POST: an HTTP status (with an optional Retry-After),
"slow" (store, then answer after the client's timeout), or "refuse" (stop listening until
`resume()`, so the client sees connection refused).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from otel_bridge.delivery import error_for_http_status
from otel_bridge.exporter import TraceExporter
from otel_bridge.langchain_views import FinishedTrace
from otel_bridge.sink import DeliveryReport, RetryableError, trace_key


@dataclass(frozen=True)
class Fault:
    status: int | None = None  # answer with this status (and store nothing)
    retry_after: str | None = None
    slow: float = 0.0  # store the items, then wait this long before answering 200


class FaultService:
    """The service; use as a context manager. `url` stays the same across `refuse`/`resume`."""

    def __init__(self) -> None:
        self.received: Counter[str] = Counter()  # key -> times stored
        self.payloads: dict[str, Any] = {}
        self.requests: list[tuple[float, str]] = []  # (time.monotonic(), "POST"/"GET")
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._server = self._listen(0)
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread: threading.Thread | None = None
        self._serve()

    def __enter__(self) -> FaultService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- commands -------------------------------------------------------------------------------

    def fail_next(self, *faults: Fault) -> None:
        with self._lock:
            self._faults.extend(faults)

    def refuse(self) -> None:
        """Stop listening: connections are refused until `resume()`."""
        self._server.shutdown()
        self._server.server_close()

    def resume(self) -> None:
        self._server = self._listen(self.port)
        self._serve()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def duplicates(self) -> dict[str, int]:
        with self._lock:
            return {key: count for key, count in self.received.items() if count > 1}

    def keys(self) -> set[str]:
        with self._lock:
            return set(self.received)

    # --- private --------------------------------------------------------------------------------

    def _listen(self, port: int) -> ThreadingHTTPServer:
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
                wanted = [k for k in query.get("keys", [""])[0].split(",") if k]
                with service._lock:
                    service.requests.append((time.monotonic(), "GET"))
                    present = [k for k in wanted if k in service.received]
                self._answer(200, {"present": present})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with service._lock:
                    service.requests.append((time.monotonic(), "POST"))
                    fault = service._faults.pop(0) if service._faults else Fault()
                    if fault.status is None:
                        for item in body["items"]:
                            service.received[item["key"]] += 1
                            service.payloads[item["key"]] = item["trace"]
                if fault.status is not None:
                    headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                    self._answer(fault.status, {"error": "injected"}, headers)
                    return
                if fault.slow:
                    time.sleep(fault.slow)
                self._answer(200, {"stored": len(body["items"])})

            def _answer(
                self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
            ) -> None:
                data = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    for name, value in (headers or {}).items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    return  # the client timed out and went away: that is the point of "slow"

        server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        server.daemon_threads = True
        server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        return server

    def _serve(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()


class HttpTestSink(TraceExporter):
    """Delivers each finished trace as one item keyed by `trace_key` (test-only sink)."""

    sink_name = "httptest"

    def __init__(self, url: str | None = None, *, timeout: float = 2.0, **options: Any) -> None:
        self.url = url or os.environ["OTEL_BRIDGE_HTTPTEST_URL"]
        self.timeout = timeout
        super().__init__(**options)

    def deliver(self, traces: Sequence[FinishedTrace]) -> DeliveryReport:
        items = [{"key": trace_key(t), "trace": json.loads(t.to_json())} for t in traces]
        self._request("POST", "/items", json.dumps({"items": items}).encode())
        return DeliveryReport.all_delivered(traces)

    def already_delivered(self, keys: Sequence[str]) -> set[str]:
        answer = self._request("GET", "/items?keys=" + ",".join(keys), None)
        return set(answer["present"])

    def _request(self, method: str, path: str, body: bytes | None) -> Any:
        request = urllib.request.Request(
            self.url + path, data=body, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            raise error_for_http_status(
                error.code, error.reason, error.headers.get("Retry-After")
            ) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            raise RetryableError(f"{method} {path}: {error}") from None
