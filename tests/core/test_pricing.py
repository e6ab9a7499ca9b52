"""Cost per model call from the user's price table: loading, matching, the span attribute and the
metric, on real LangChain runs with the SDK's in-memory exporter and metric reader."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_bridge import OTelCallbackHandler, semconv
from otel_bridge._extract import Usage
from otel_bridge.pricing import ModelPrice, PriceTable
from tests.support.recording import metric_points, recording_provider
from tests.support.usage_model import UsageReportingChatModel

TABLE = {
    "gpt-4o": {"input": 2.5, "output": 10.0, "cached_input": 1.25},
    "gpt-4o-mini": {"input": 0.15, "output": 0.6},
}


USAGE = {
    "input_tokens": 1000,
    "output_tokens": 200,
    "total_tokens": 1200,
    "input_token_details": {"cache_read": 400},
}


def _model(model_name: str = "gpt-4o-2024-08-06") -> UsageReportingChatModel:
    return UsageReportingChatModel(model_name=model_name, usage=USAGE)


def _traced(
    **options: Any,
) -> tuple[OTelCallbackHandler, InMemorySpanExporter, InMemoryMetricReader]:
    provider, spans = recording_provider()
    reader = InMemoryMetricReader()
    handler = OTelCallbackHandler(
        tracer_provider=provider, meter_provider=MeterProvider(metric_readers=[reader]), **options
    )
    return handler, spans, reader


def _cost_points(reader: InMemoryMetricReader) -> list[Any]:
    return metric_points(reader, semconv.METRIC_COST)


def test_a_priced_call_carries_its_cost_on_the_span_and_in_the_metric() -> None:
    handler, spans, reader = _traced(prices=TABLE)
    _model().invoke("hi", {"callbacks": [handler]})
    (span,) = spans.get_finished_spans()
    # 600 fresh input x 2.5 + 400 cached x 1.25 + 200 output x 10, per 1k tokens.
    expected = (600 * 2.5 + 400 * 1.25 + 200 * 10.0) / 1000
    assert span.attributes[semconv.LLM_COST] == pytest.approx(expected)
    (point,) = _cost_points(reader)
    assert point.value == pytest.approx(expected)
    assert point.attributes[semconv.GEN_AI_RESPONSE_MODEL] == "gpt-4o-2024-08-06"


def test_the_longest_matching_entry_wins_and_unknown_models_have_no_cost() -> None:
    table = PriceTable.load(TABLE)
    assert table.price_of("gpt-4o-mini-2024-07-18") == ModelPrice(0.15, 0.6)
    assert table.price_of("gpt-4o-2024-08-06") == ModelPrice(2.5, 10.0, 1.25)
    assert table.price_of(None, "gpt-4o") == ModelPrice(2.5, 10.0, 1.25)
    assert table.price_of("llama-3") is None
    assert table.cost(Usage(None, None), "gpt-4o") is None

    handler, spans, reader = _traced(prices=TABLE)
    _model(model_name="llama-3").invoke("hi", {"callbacks": [handler]})
    (span,) = spans.get_finished_spans()
    assert semconv.LLM_COST not in span.attributes
    assert _cost_points(reader) == []


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_the_table_is_read_from_the_file_the_variable_names(
    suffix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / f"prices{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(TABLE))
    else:
        path.write_text("gpt-4o: {input: 2.5, output: 10.0, cached_input: 1.25}\n")
    monkeypatch.setenv("OTEL_BRIDGE_PRICES", str(path))
    handler, spans, _ = _traced()
    _model().invoke("hi", {"callbacks": [handler]})
    (span,) = spans.get_finished_spans()
    assert span.attributes[semconv.LLM_COST] == pytest.approx(4.0)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "does not parse"),
        ('{"m": {"input": 1}}', "needs both input and output"),
        ('{"m": {"input": 1, "output": -2}}', "m.output: not a price"),
        ('{"m": {"input": 1, "output": 2, "cache": 1}}', "unknown keys"),
        ("[1, 2]", "must map model names"),
    ],
)
def test_a_bad_table_is_named_an_argument_raises_a_variable_only_warns(
    content: str,
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = tmp_path / "prices.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        OTelCallbackHandler(tracer_provider=TracerProvider(), prices=path)
    monkeypatch.setenv("OTEL_BRIDGE_PRICES", str(path))
    with caplog.at_level(logging.WARNING, logger="otel_bridge"):
        handler, spans, _ = _traced()
    assert any(message in r.getMessage() for r in caplog.records)
    _model().invoke("hi", {"callbacks": [handler]})  # the app's call goes on, without costs
    (span,) = spans.get_finished_spans()
    assert semconv.LLM_COST not in span.attributes
