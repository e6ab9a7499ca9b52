"""The receiver's own telemetry as OTel metrics: requests, spans accepted/rejected, spool state."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

from otel_bridge.receiver.conditions import Condition, SinkState

__all__ = [
    "METRIC_REQUESTS",
    "METRIC_SINK_REFUSING",
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
METRIC_SINK_REFUSING = "otel_bridge.receiver.sink.refusing"

SinkStates = Callable[[], Sequence[SinkState]]


class ReceiverMetrics:
    """Counters by transport and outcome, and gauges for each sink's spool and state."""

    def __init__(self, meter_provider: MeterProvider | None, sink_states: SinkStates) -> None:
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
        self._sink_states = sink_states
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
        meter.create_observable_gauge(
            METRIC_SINK_REFUSING,
            callbacks=[self._observe_refusing],
            description="1 while the sink's export refuses and the receiver answers 503",
        )

    def request(self, transport: str, status: int | str) -> None:
        self._requests.add(1, {"transport": transport, "status": str(status)})

    def spans(self, transport: str, accepted: int, rejected: int) -> None:
        if accepted:
            self._accepted.add(accepted, {"transport": transport})
        if rejected:
            self._rejected.add(rejected, {"transport": transport})

    def _observe_spools(self, _options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(int(s.spool_full), {"sink": s.id}) for s in self._sink_states()]

    def _observe_spool_bytes(self, _options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(s.spool_bytes, {"sink": s.id})
            for s in self._sink_states()
            if s.spool_bytes is not None
        ]

    def _observe_refusing(self, _options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(int(s.status.condition is Condition.REFUSING), {"sink": s.id})
            for s in self._sink_states()
        ]
