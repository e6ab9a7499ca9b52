"""A small HTTP proxy in front of the moto server that answers AWS errors for a while.

It forwards every request unchanged, except the first `fail_first` ones (of one operation with
`only`), which get the error each AWS protocol uses for throttling (or the one given), before or
with `lose_answers` after reaching moto: the SageMaker JSON API and
sagemaker-metrics a 400 `ThrottlingException`, S3 a 503 `SlowDown`. Counting requests instead
of time keeps the tests deterministic.

With `reject_points`, BatchPutMetrics fails part way as the API does: a seeded-random fraction
of each request's points is answered as per-point `INTERNAL_ERROR`s (200, `Errors` with their
`MetricIndex`), and only the other points reach moto; `forwarded_points` counts those by
(metric name, step).
"""

from __future__ import annotations

import dataclasses
import json
import random
import threading
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler

from tests.support.loopback_proxy import (
    LoopbackProxy,
    QuietHandler,
    forward,
    pass_back,
    upstream_address,
)


@dataclass(frozen=True, slots=True)
class InjectedError:
    """What a failed request is answered with; None fields take the protocol's throttling error."""

    status: int | None = None
    code: str | None = None
    retry_after: str | None = None  # sent as the Retry-After header


class ThrottlingProxy(LoopbackProxy):
    """`with ThrottlingProxy(upstream, fail_first=5) as proxy:` then point clients at `proxy.url`."""

    def __init__(
        self,
        upstream_url: str,
        *,
        fail_first: int = 0,
        error: InjectedError | None = None,
        only: str | None = None,
        lose_answers: bool = False,
        reject_points: float = 0.0,
        seed: int = 0,
    ) -> None:
        self._upstream = upstream_address(upstream_url)
        self._lock = threading.Lock()
        self._remaining_failures = fail_first
        self.error = error or InjectedError()
        # Fail only this operation: a SageMaker action ("UpdateTrialComponent"),
        # "BatchPutMetrics", or "s3" for every S3 request.
        self.only = only
        # Forward the failing requests and then answer the error: the service did the work but
        # the client never hears of it (a dropped connection, a timeout on the way back).
        self.lose_answers = lose_answers
        self.failed = 0
        self.forwarded = 0
        self.failed_paths: list[str] = []
        self.reject_points = reject_points
        self._rng = random.Random(seed)
        self.rejected_points = 0
        self.forwarded_points: Counter[tuple[str, int]] = Counter()
        self._serve(self._handler_class())

    def fail_next(self, count: int, error: InjectedError | None = None) -> None:
        with self._lock:
            self._remaining_failures = count
            if error is not None:
                self.error = error

    def _take_failure(self, path: str, operation: str) -> bool:
        with self._lock:
            if self._remaining_failures <= 0 or self.only not in (None, operation):
                self.forwarded += 1
                return False
            self._remaining_failures -= 1
            self.failed += 1
            self.failed_paths.append(path)
            return True

    def _split_points(self, body: bytes) -> tuple[bytes, list[dict[str, object]]]:
        """The request with the points moto gets, and the per-point errors for the others."""
        request = json.loads(body)
        kept: list[dict[str, object]] = []
        errors: list[dict[str, object]] = []
        with self._lock:
            for index, point in enumerate(request["MetricData"]):
                if self._rng.random() < self.reject_points:
                    self.rejected_points += 1
                    errors.append(
                        {"Code": "INTERNAL_ERROR", "Message": "injected", "MetricIndex": index}
                    )
                else:
                    kept.append(point)
                    self.forwarded_points[(str(point["MetricName"]), int(point["Step"]))] += 1
        request["MetricData"] = kept
        return json.dumps(request).encode(), errors

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(QuietHandler):
            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                failing = proxy._take_failure(self.path, self._operation())
                if failing and not proxy.lose_answers:
                    self._answer_error()
                    return
                errors: list[dict[str, object]] = []
                if self._operation() == "BatchPutMetrics" and proxy.reject_points > 0:
                    body, errors = proxy._split_points(body)
                    if not json.loads(body)["MetricData"]:
                        self._send(200, {"Content-Type": "application/json"}, _errors(errors))
                        return
                answer = forward(self, proxy._upstream, body, timeout=30)
                if failing:
                    self._answer_error()
                    return
                if errors and answer.status == 200:
                    answer = dataclasses.replace(answer, payload=_errors(errors))
                pass_back(self, answer)

            def _operation(self) -> str:
                target = self.headers.get("X-Amz-Target")
                if target:
                    return target.rpartition(".")[2]
                if self.path.startswith("/BatchPutMetrics"):
                    return "BatchPutMetrics"
                return "s3"

            def _answer_error(self) -> None:
                error = proxy.error
                if self.headers.get("X-Amz-Target"):  # SageMaker: awsJson1_1
                    code = error.code or "ThrottlingException"
                    self._send(
                        error.status or 400,
                        {"Content-Type": "application/x-amz-json-1.1"},
                        json.dumps({"__type": code, "message": "Rate exceeded"}).encode(),
                    )
                elif self.path.startswith("/BatchPutMetrics"):  # sagemaker-metrics: restJson1
                    code = error.code or "ThrottlingException"
                    self._send(
                        error.status or 400,
                        {"Content-Type": "application/json", "x-amzn-ErrorType": code},
                        json.dumps({"message": "Rate exceeded"}).encode(),
                    )
                else:  # S3: restXml
                    code = error.code or "SlowDown"
                    body = (
                        f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
                        "<Message>Please reduce your request rate.</Message></Error>"
                    ).encode()
                    self._send(error.status or 503, {"Content-Type": "application/xml"}, body)

            def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                if proxy.error.retry_after is not None:
                    self.send_header("Retry-After", proxy.error.retry_after)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _relay

        return Handler


def _errors(errors: list[dict[str, object]]) -> bytes:
    return json.dumps({"Errors": errors}).encode()
