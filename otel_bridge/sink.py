"""What a sink implements: deliver a batch of finished traces and say how each one went.

A sink exporter subclasses `otel_bridge.TraceExporter` and overrides `deliver` (and optionally
`already_delivered`); grouping, spooling, retry and dead-lettering live in the core.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from otel_bridge.traces import FinishedTrace


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
