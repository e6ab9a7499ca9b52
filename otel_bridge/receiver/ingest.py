"""Hand decoded OTLP requests to every configured sink exporter and say how to answer.

Shared by the HTTP and gRPC servers, so both acknowledge under the same rule: a request is
accepted only after every sink's `export()` returned SUCCESS (the core exporter has then
written the spans to its SQLite spool), and throttled while any sink's spool is full.
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
from otel_bridge.receiver.telemetry import ReceiverMetrics

__all__ = ["Ingestor", "Outcome", "Sink", "Verdict"]

_logger = logging.getLogger(__name__)


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


class Ingestor:
    """Fans each request out to the sinks; `close()` makes later requests UNAVAILABLE."""

    def __init__(
        self,
        sinks: Sequence[Sink],
        *,
        retry_after_seconds: float = 5.0,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        self.sinks = tuple(sinks)
        self.retry_after_seconds = retry_after_seconds
        # The SDK never calls one exporter's export() concurrently; the servers' threads would.
        self._export_lock = threading.Lock()
        self._closed = False
        self.metrics = ReceiverMetrics(
            meter_provider, lambda: [(s.id, s.spool_full, s.spool_bytes) for s in self.sinks]
        )

    def ingest(self, request: ExportTraceServiceRequest, transport: str) -> Outcome:
        spans, rejected = otlp.accepted_spans(request)
        outcome = self._export(spans, rejected)
        refused = 0 if outcome.verdict is Verdict.ACCEPTED else len(spans)
        self.metrics.spans(
            transport, outcome.accepted_spans, refused + (rejected.count if rejected else 0)
        )
        return outcome

    def _export(
        self, spans: Sequence[ReadableSpan], rejected: otlp.RejectedSpans | None
    ) -> Outcome:
        full = [s.id for s in self.sinks if s.spool_full]
        if full:
            return self._throttled(full)
        if not spans:
            return Outcome(Verdict.ACCEPTED, rejected=rejected)
        with self._export_lock:
            if self._closed:
                return Outcome(
                    Verdict.UNAVAILABLE,
                    message="the receiver is shutting down; retry later",
                    retry_after_seconds=self.retry_after_seconds,
                )
            for sink in self.sinks:
                try:
                    result = sink.exporter.export(spans)
                except Exception:  # a sink bug must cost this request, not the server
                    _logger.exception("sink %s raised from export()", sink.id)
                    result = SpanExportResult.FAILURE
                if result is not SpanExportResult.SUCCESS and sink.spool_full:
                    return self._throttled([sink.id])
                if result is not SpanExportResult.SUCCESS:
                    # Earlier sinks may already hold these spans; the retry is made harmless by
                    # the sinks' idempotency keys (trace id + span id).
                    return Outcome(
                        Verdict.UNAVAILABLE,
                        message=f"sink {sink.id} did not accept the spans; retry later",
                        retry_after_seconds=self.retry_after_seconds,
                    )
        return Outcome(Verdict.ACCEPTED, accepted_spans=len(spans), rejected=rejected)

    def _throttled(self, sink_ids: Sequence[str]) -> Outcome:
        return Outcome(
            Verdict.THROTTLED,
            message=f"spool full for sink(s) {', '.join(sink_ids)}; retry later",
            retry_after_seconds=self.retry_after_seconds,
        )

    def close(self, flush_seconds: float = 10.0) -> None:
        """Refuse new requests, then flush (up to `flush_seconds` per sink) and shut down every
        sink; waits for the requests being exported. What is not delivered stays spooled."""
        with self._export_lock:
            self._closed = True
        for sink in self.sinks:
            try:
                sink.exporter.force_flush(int(flush_seconds * 1000))
            except Exception:
                _logger.exception("sink %s failed to flush", sink.id)
            try:
                sink.exporter.shutdown()
            except Exception:
                _logger.exception("sink %s failed to shut down", sink.id)
