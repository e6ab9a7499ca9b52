"""What a sink implements: deliver a batch of finished traces and say how each one went.

A sink exporter subclasses `otel_bridge.TraceExporter` and overrides `deliver` (and optionally
`already_delivered`); grouping, spooling, retry and dead-lettering live in the core. A sink that
talks HTTP turns a failed answer into the error to raise with `error_for_http_status`.
"""

from __future__ import annotations

import calendar
import email.utils
import math
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from otel_bridge.langchain_views import FinishedTrace

__all__ = [
    "MAX_RETRY_AFTER_SECONDS",
    "RETRYABLE_HTTP_STATUS",
    "DeliveryReport",
    "PermanentError",
    "RetryableError",
    "error_for_http_status",
    "http_status_is_retryable",
    "retry_after_seconds",
    "span_key",
    "trace_key",
]

# Status codes worth retrying: the OTLP/HTTP specification's list (otlp.md, "OTLP/HTTP Response",
# Failures: 429, 502, 503, 504), plus 408 Request Timeout and 500, which the services we deliver
# to answer while they restart or are overloaded.
RETRYABLE_HTTP_STATUS: frozenset[int] = frozenset({408, 429, 500, 502, 503, 504})
# Server errors that no retry can mend: the server does not implement the method or the HTTP
# version. Every other 5xx is the server's passing trouble (a gateway's 520-530 included).
_PERMANENT_SERVER_ERRORS = frozenset({501, 505})

# The longest wait a Retry-After hint is taken for. One hour covers the rate-limit windows the
# services use (per minute, per hour); a longer hint, or a date years ahead, would park an
# item past the retry deadline and so dead-letter it on its first failure.
MAX_RETRY_AFTER_SECONDS = 3600.0
# delta-seconds (RFC 9110 section 10.2.3) is digits; a decimal fraction is tolerated.
_DELTA_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]*)?")


def trace_key(trace: FinishedTrace) -> str:
    """The idempotency key of a whole trace: its 32-hex-digit trace id."""
    return format(trace.trace_id, "032x")


def span_key(trace_id: int, span_id: int) -> str:
    """The idempotency key of a per-span item: trace id and span id in hex, joined by '-'."""
    return f"{trace_id:032x}-{span_id:016x}"


class RetryableError(Exception):
    """Raised by `deliver` when the whole batch may succeed later (outage, 5xx, throttling)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class PermanentError(Exception):
    """Raised by `deliver` when retrying the batch cannot help (bad credentials, 4xx payload)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """The outcome of one `deliver` call, by trace key (see `trace_key`).

    Keys missing from all three are treated as retryable. `retry_after` (seconds) is the
    sink's hint, e.g. from an HTTP Retry-After header.
    """

    delivered: frozenset[str] = frozenset()
    retryable: Mapping[str, str] = field(default_factory=dict)
    permanent: Mapping[str, str] = field(default_factory=dict)
    retry_after: float | None = None

    @classmethod
    def all_delivered(cls, traces: Iterable[FinishedTrace]) -> DeliveryReport:
        return cls(delivered=frozenset(trace_key(t) for t in traces))


def http_status_is_retryable(status: int | None) -> bool:
    """True when a failed HTTP answer (or none at all: `None`/0) may succeed if retried."""
    if not status:
        return True
    if status in RETRYABLE_HTTP_STATUS:
        return True
    return 500 <= status <= 599 and status not in _PERMANENT_SERVER_ERRORS


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from an HTTP Retry-After header (delta-seconds or an HTTP-date), at most
    `MAX_RETRY_AFTER_SECONDS`; None when absent or unreadable ("inf", "nan", "-5", "soon"), so
    the caller's own backoff applies. A date in the past means 0.

    HTTP-dates are in GMT (RFC 9110 section 5.6.7); one written with "-0000" or no zone is
    read as GMT too, never in the local time zone.
    """
    if not value:
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):
        return min(float(value), MAX_RETRY_AFTER_SECONDS)
    parsed = email.utils.parsedate_tz(value)
    if parsed is None:
        return None
    # parsedate_tz gives no offset for "-0000" and for a missing zone: both are read as GMT.
    try:
        when = calendar.timegm(parsed[:9]) - (parsed[9] or 0)
    except (OverflowError, ValueError):
        return None
    wait = when - (time.time() if now is None else now)
    if math.isnan(wait):
        return None
    return min(max(0.0, wait), MAX_RETRY_AFTER_SECONDS)


def error_for_http_status(
    status: int | None, reason: str, retry_after: str | None = None
) -> RetryableError | PermanentError:
    """The exception a sink raises for a failed HTTP answer (status >= 300, or None when none
    came): retryable with the Retry-After hint (see `http_status_is_retryable`), else permanent."""
    message = f"HTTP {status}: {reason}" if status else reason
    if http_status_is_retryable(status):
        return RetryableError(message, retry_after=retry_after_seconds(retry_after))
    return PermanentError(message)
