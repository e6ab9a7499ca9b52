"""How the transport classifies Label Studio's answers. A loopback HTTP server plays a Label Studio
in trouble (the real one cannot be made to answer 429 or 503 on demand); the token kinds are
checked against the real server in test_exporter.py."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from otel_bridge_labelstudio import LabelStudioMode
from otel_bridge_labelstudio._transport import (
    AuthenticationFailed,
    LabelStudioTransport,
    ProjectNotFound,
    TokenKind,
    token_kind,
)

from otel_bridge.sink import PermanentError, RetryableError

from .test_exporter import unsigned_jwt


class TroubledLabelStudio(ThreadingHTTPServer):
    """Answers every request with `status`, `headers` and a Label Studio style error body."""

    status = 200
    headers: dict[str, str] = {}
    requests = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Answer(BaseHTTPRequestHandler):
    server: TroubledLabelStudio

    def _answer(self) -> None:
        self.server.requests += 1
        body = json.dumps({"status_code": self.server.status, "detail": "from the troubled server"})
        self.send_response(self.server.status)
        for name, value in self.server.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def troubled() -> Iterator[TroubledLabelStudio]:
    server = TroubledLabelStudio(("127.0.0.1", 0), _Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("status", "headers", "error", "retry_after"),
    [
        (401, {}, AuthenticationFailed, None),
        (403, {}, AuthenticationFailed, None),
        (404, {}, ProjectNotFound, None),
        (400, {}, PermanentError, None),
        (408, {}, RetryableError, None),
        (429, {"Retry-After": "7"}, RetryableError, 7.0),
        (500, {}, RetryableError, None),
        (502, {}, RetryableError, None),
        (503, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, RetryableError, 0.0),
        (504, {}, RetryableError, None),
    ],
)
def test_http_failures_are_classified(
    troubled: TroubledLabelStudio,
    status: int,
    headers: dict[str, str],
    error: type[Exception],
    retry_after: float | None,
) -> None:
    troubled.status, troubled.headers = status, headers
    transport = LabelStudioTransport(troubled.url, "0" * 40)
    with pytest.raises(error) as raised:
        transport.import_tasks(1, [{"data": {"prompt": "p"}}])
    assert f"HTTP {status}" in str(raised.value)
    assert "from the troubled server" in str(raised.value)
    if isinstance(raised.value, RetryableError):
        assert raised.value.retry_after == retry_after
    assert troubled.requests == 1, "the SDK must not retry on its own: the core owns retries"


def test_an_auth_failure_names_the_key_kind_and_the_variable(troubled: TroubledLabelStudio) -> None:
    troubled.status = 401
    with pytest.raises(
        AuthenticationFailed, match="rejected the legacy token: check LABEL_STUDIO_API_KEY"
    ):
        LabelStudioTransport(troubled.url, "0" * 40).project_by_id(3, LabelStudioMode.PROMPT)


def test_a_404_outside_a_project_is_not_a_missing_project(troubled: TroubledLabelStudio) -> None:
    troubled.status = 404
    with pytest.raises(PermanentError) as raised:
        LabelStudioTransport(troubled.url, "0" * 40).find_or_create_project(
            "reviews", "<View/>", LabelStudioMode.PROMPT
        )
    assert not isinstance(raised.value, ProjectNotFound)


def test_a_refused_connection_is_retryable() -> None:
    from .server import free_port

    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(RetryableError, match="is unreachable while reading project 1"):
        LabelStudioTransport(url, "0" * 40).project_by_id(1, LabelStudioMode.PROMPT)


@pytest.mark.parametrize(
    ("api_key", "kind"),
    [
        ("0123456789abcdef0123456789abcdef01234567", TokenKind.LEGACY),
        ("not.a.jwt", TokenKind.LEGACY),
        (unsigned_jwt({"token_type": "refresh", "exp": 4102444800}), TokenKind.PERSONAL),
    ],
)
def test_token_kind_is_detected_from_the_key(api_key: str, kind: TokenKind) -> None:
    assert token_kind(api_key) is kind
