"""Hand decoded OTLP requests to every configured sink exporter and say how to answer.

Shared by the HTTP and gRPC servers, so both acknowledge under the same rule: a request is
accepted only after every sink's export returned SUCCESS (the core exporter has then written
the spans to its spool; the file sink, to its file), and throttled while any sink's spool is
full. Each sink has a lock of its own (an exporter's export is not called concurrently, as
under the SDK), so a slow sink never holds up requests that are being handed to another one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from opentelemetry.metrics import MeterProvider
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from otel_bridge import otlp
from otel_bridge.delivery import DeliveryState
from otel_bridge.exporter import TraceExporter
from otel_bridge.otlp_ids import ids_known_valid
from otel_bridge.receiver.conditions import Condition, SinkConditions, SinkState
from otel_bridge.receiver.telemetry import ReceiverMetrics

__all__ = ["PACE_SECONDS", "Ingestor", "Outcome", "Sink", "Verdict"]

_logger = logging.getLogger(__name__)

# Longest a request waits for a sink's delivery worker to catch up before it is accepted anyway.
PACE_SECONDS = 1.0
# How often full-spool episodes are checked for their end while no request comes in.
_TICK_SECONDS = 0.5


@dataclass(frozen=True, slots=True)
class Sink:
    """A configured sink exporter under the id it was given in the config."""

    id: str
    exporter: SpanExporter

    @property
    def spool_full(self) -> bool:
        # Plain SDK exporters have no spool; only the core TraceExporter reports this.
        return bool(getattr(self.exporter, "spool_full", False))

    @property
    def spool_bytes(self) -> int | None:
        spool = getattr(self.exporter, "spool", None)
        return getattr(spool, "bytes_used", None)

    @property
    def delivery(self) -> DeliveryState | None:
        read = getattr(self.exporter, "delivery_state", None)
        return read() if read is not None else None

    def wait_for_delivery(self, timeout: float) -> None:
        wait = getattr(self.exporter, "wait_for_delivery", None)
        if wait is not None:
            wait(timeout)


class Verdict(Enum):
    ACCEPTED = "accepted"
    THROTTLED = "throttled"  # a spool is full: retry later (HTTP 429, gRPC RESOURCE_EXHAUSTED)
    UNAVAILABLE = "unavailable"  # a sink refused or we are stopping (HTTP 503, gRPC UNAVAILABLE)


@dataclass(frozen=True, slots=True)
class Outcome:
    verdict: Verdict
    accepted_spans: int = 0
    rejected: otlp.RejectedSpans | None = None
    message: str = ""
    retry_after_seconds: float | None = None


def _drop_invalid_spans(
    request: ExportTraceServiceRequest, body: bytes | None
) -> otlp.RejectedSpans | None:
    """Remove, in place, the spans the OTLP codec rejects (ids of the wrong size or zero), and
    say how many went and why (answered as partial_success); None when all are valid. `body`:
    the protobuf bytes the request was decoded from, if it came as protobuf (then checked at
    once, which costs half the span-by-span check; serializing a JSON request for it would cost
    more than it saves)."""
    if body is not None and ids_known_valid(body):
        return None
    rejected = 0
    first_reason = ""
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            spans = scope_spans.spans
            invalid = [i for i, span in enumerate(spans) if otlp.invalid_ids(span)]
            if invalid:
                first_reason = first_reason or otlp.invalid_ids(spans[invalid[0]])
                for index in reversed(invalid):
                    del spans[index]
                rejected += len(invalid)
    if rejected:
        return otlp.RejectedSpans(rejected, f"{rejected} span(s) rejected: {first_reason}")
    return None


class Ingestor:
    """Fans each request out to the sinks; `close()` makes later requests UNAVAILABLE."""

    def __init__(
        self,
        sinks: Sequence[Sink],
        *,
        retry_after_seconds: float = 5.0,
        pace_seconds: float = PACE_SECONDS,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        self.sinks = tuple(sinks)
        self.retry_after_seconds = retry_after_seconds
        self.pace_seconds = pace_seconds
        self.conditions = SinkConditions(s.id for s in self.sinks)
        self._locks = {sink.id: threading.Lock() for sink in self.sinks}
        self._needs_spans = any(not hasattr(s.exporter, "export_request") for s in self.sinks)
        self._closed = False
        self._in_flight = 0
        self._idle = threading.Condition()
        self._ticker_stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self.metrics = ReceiverMetrics(meter_provider, self.sink_states)

    def start(self) -> None:
        """Start the ticker that ends full-spool episodes while no request comes in."""
        if self._ticker is None:
            self._ticker = threading.Thread(
                target=self._tick, name="otel-bridge-conditions", daemon=True
            )
            self._ticker.start()

    def _tick(self) -> None:
        while not self._ticker_stop.wait(_TICK_SECONDS):
            self._settle()

    def _settle(self) -> None:
        for sink in self.sinks:
            self.conditions.settle(sink.id, sink.spool_full)

    def sink_states(self) -> list[SinkState]:
        return [
            SinkState(s.id, s.spool_full, s.spool_bytes, self.conditions.status(s.id), s.delivery)
            for s in self.sinks
        ]

    @property
    def closed(self) -> bool:
        return self._closed

    def ingest(
        self, request: ExportTraceServiceRequest, transport: str, body: bytes | None = None
    ) -> Outcome:
        """Validate (dropping invalid spans) and export a decoded request to every sink. `body`:
        the protobuf bytes it was decoded from, when it came as protobuf (its ids are checked
        on them)."""
        rejected = _drop_invalid_spans(request, body)
        spans = otlp.span_count(request)
        outcome = self._export(request, spans, rejected)
        refused = 0 if outcome.verdict is Verdict.ACCEPTED else spans
        self.metrics.spans(
            transport, outcome.accepted_spans, refused + (rejected.count if rejected else 0)
        )
        return outcome

    def _export(
        self, request: ExportTraceServiceRequest, spans: int, rejected: otlp.RejectedSpans | None
    ) -> Outcome:
        full = [s for s in self.sinks if s.spool_full]
        if full:
            for sink in full:
                self.conditions.refused(sink.id, Condition.SPOOL_FULL, spans)
            return self._throttled([s.id for s in full])
        if not spans:
            return Outcome(Verdict.ACCEPTED, rejected=rejected)
        # Pace what is accepted to what the sinks deliver: while a sink has more due than one
        # delivery takes, hold the request (briefly; senders wait instead of filling the spool,
        # and the delivery worker gets the CPU the request threads would take). Past the wait
        # the request is accepted anyway: the spool absorbs the excess up to its limit.
        for sink in self.sinks:
            sink.wait_for_delivery(self.pace_seconds)
        with self._idle:
            if self._closed:
                return self._unavailable("the receiver is shutting down; retry later")
            self._in_flight += 1
        try:
            readable = otlp.spans_from_request(request) if self._needs_spans else []
            for sink in self.sinks:
                with self._locks[sink.id]:
                    result = _export_to(sink, request, readable)
                if result is SpanExportResult.SUCCESS:
                    self.conditions.accepted(sink.id)
                    continue
                # Earlier sinks may already hold these spans; the retry is made harmless by the
                # sinks' idempotency keys (trace id + span id).
                if sink.spool_full:
                    self.conditions.refused(sink.id, Condition.SPOOL_FULL, spans)
                    return self._throttled([sink.id])
                self.conditions.refused(sink.id, Condition.REFUSING, spans)
                return self._unavailable(f"sink {sink.id} did not accept the spans; retry later")
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()
        return Outcome(Verdict.ACCEPTED, accepted_spans=spans, rejected=rejected)

    def _throttled(self, sink_ids: Sequence[str]) -> Outcome:
        return Outcome(
            Verdict.THROTTLED,
            message=f"spool full for sink(s) {', '.join(sink_ids)}; retry later",
            retry_after_seconds=self.retry_after_seconds,
        )

    def _unavailable(self, message: str) -> Outcome:
        return Outcome(
            Verdict.UNAVAILABLE, message=message, retry_after_seconds=self.retry_after_seconds
        )

    def close(self, flush_seconds: float = 10.0) -> None:
        """Refuse new requests, wait (up to `flush_seconds`) for those being exported, then
        flush and shut down every sink. What is not delivered stays spooled."""
        self._ticker_stop.set()
        with self._idle:
            self._closed = True
            self._idle.wait_for(lambda: self._in_flight == 0, flush_seconds)
        for sink in self.sinks:
            try:
                sink.exporter.force_flush(int(flush_seconds * 1000))
            except Exception:
                _logger.exception("sink %s failed to flush", sink.id)
            try:
                sink.exporter.shutdown()
            except Exception:
                _logger.exception("sink %s failed to shut down", sink.id)


def _export_to(
    sink: Sink, request: ExportTraceServiceRequest, spans: Sequence[ReadableSpan]
) -> SpanExportResult:
    export_request = getattr(sink.exporter, "export_request", None)
    try:
        if isinstance(sink.exporter, TraceExporter):
            # The ids were checked (and invalid spans removed) on the way in.
            return sink.exporter.export_request(request, ids_checked=True)
        if export_request is not None:
            result: SpanExportResult = export_request(request)
            return result
        return sink.exporter.export(spans)
    except Exception:  # a sink bug must cost this request, not the server
        _logger.exception("sink %s raised from export", sink.id)
        return SpanExportResult.FAILURE
