"""The receiver's own telemetry as OTel metrics: requests, spans accepted/rejected, spool state."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

__all__ = [
    "METRIC_REQUESTS",
    "METRIC_SPANS_ACCEPTED",
    "METRIC_SPANS_REJECTED",
    "METRIC_SPOOL_BYTES",
    "METRIC_SPOOL_FULL",
    "ReceiverMetrics",
]

METRIC_REQUESTS = "otel_bridge.receiver.requests"
METRIC_SPANS_ACCEPTED = "otel_bridge.receiver.spans.accepted"
METRIC_SPANS_REJECTED = "otel_bridge.receiver.spans.rejected"
METRIC_SPOOL_FULL = "otel_bridge.receiver.spool.full"
METRIC_SPOOL_BYTES = "otel_bridge.receiver.spool.bytes"


class ReceiverMetrics:
    """Counters by transport and outcome, and a gauge reporting which sinks' spools are full."""

    def __init__(
        self,
        meter_provider: MeterProvider | None,
        spool_states: Callable[[], Sequence[tuple[str, bool, int | None]]],
    ) -> None:
        meter = (meter_provider or metrics.get_meter_provider()).get_meter("otel_bridge.receiver")
        self._requests = meter.create_counter(
            METRIC_REQUESTS, unit="{request}", description="OTLP export requests by outcome"
        )
        self._accepted = meter.create_counter(
            METRIC_SPANS_ACCEPTED, unit="{span}", description="Spans handed to every sink"
        )
        self._rejected = meter.create_counter(
            METRIC_SPANS_REJECTED, unit="{span}", description="Spans refused (invalid or throttled)"
        )
        self._spool_states = spool_states
        meter.create_observable_gauge(
            METRIC_SPOOL_FULL,
            callbacks=[self._observe_spools],
            description="1 while the sink's spool is full and the receiver answers 429",
        )
        meter.create_observable_gauge(
            METRIC_SPOOL_BYTES,
            callbacks=[self._observe_spool_bytes],
            unit="By",
            description="Bytes held in the sink's spool (spans waiting and traces to deliver)",
        )

    def request(self, transport: str, status: int | str) -> None:
        self._requests.add(1, {"transport": transport, "status": str(status)})

    def spans(self, transport: str, accepted: int, rejected: int) -> None:
        if accepted:
            self._accepted.add(accepted, {"transport": transport})
        if rejected:
            self._rejected.add(rejected, {"transport": transport})

    def _observe_spools(self, _options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(int(full), {"sink": sink}) for sink, full, _ in self._spool_states()]

    def _observe_spool_bytes(self, _options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(size, {"sink": sink})
            for sink, _, size in self._spool_states()
            if size is not None
        ]
