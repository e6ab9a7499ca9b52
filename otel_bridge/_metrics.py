"""The GenAI client metrics: operation duration and token usage histograms."""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry import metrics

from otel_bridge import semconv
from otel_bridge._extract import Usage

__all__ = ["GenAIMetrics"]

# Bucket boundaries recommended by the GenAI semantic conventions for these two histograms.
_DURATION_BUCKETS = (
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
    2.56,
    5.12,
    10.24,
    20.48,
    40.96,
    81.92,
)
_TOKEN_BUCKETS = (
    1,
    4,
    16,
    64,
    256,
    1024,
    4096,
    16384,
    65536,
    262144,
    1048576,
    4194304,
    16777216,
    67108864,
)


class GenAIMetrics:
    """Records `gen_ai.client.operation.duration`, `gen_ai.client.token.usage` and, with a price
    table, `langchain.llm.cost`."""

    __slots__ = ("_cost", "_duration", "_tokens")

    def __init__(self, meter_provider: metrics.MeterProvider | None) -> None:
        meter = metrics.get_meter("otel_bridge", meter_provider=meter_provider)
        # Not the package's create_gen_ai_client_* helpers: they leave out the bucket boundaries
        # the convention recommends, so the names come from semconv and the advisory from here.
        self._duration = meter.create_histogram(
            semconv.METRIC_OPERATION_DURATION,
            unit="s",
            description="GenAI operation duration",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self._tokens = meter.create_histogram(
            semconv.METRIC_TOKEN_USAGE,
            unit="{token}",
            description="Number of input and output tokens used",
            explicit_bucket_boundaries_advisory=_TOKEN_BUCKETS,
        )
        self._cost = meter.create_counter(
            semconv.METRIC_COST,
            unit="1",
            description="Cost of model calls, from the price table given (in its currency)",
        )

    def record_cost(self, attributes: Mapping[str, str], cost: float) -> None:
        self._cost.add(cost, attributes)

    def record(
        self,
        attributes: Mapping[str, str],
        duration_s: float,
        usage: Usage | None,
    ) -> None:
        self._duration.record(duration_s, attributes)
        if usage is None:
            return
        if usage.input_tokens is not None:
            self._tokens.record(
                usage.input_tokens, {**attributes, semconv.GEN_AI_TOKEN_TYPE: "input"}
            )
        if usage.output_tokens is not None:
            self._tokens.record(
                usage.output_tokens, {**attributes, semconv.GEN_AI_TOKEN_TYPE: "output"}
            )
