"""The demo's terminal views on their own: trace trees from `SpanRecord`s (also partial and
orphaned ones, as a receiver may hand over) and the metric summaries from a real SDK
MeterProvider."""

from __future__ import annotations

import io

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from rich.console import Console

from otel_bridge import semconv
from otel_bridge.demo.metrics import (
    DeliveryCounts,
    ModelUsage,
    render_usage,
    summarize_delivery,
    summarize_genai_metrics,
)
from otel_bridge.langchain_views import FinishedTrace
from otel_bridge.rendering import format_duration, render_trace, render_traces
from otel_bridge.trace_tree import AttributeValue, SpanRecord

TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736


def span(
    span_id: int,
    parent: int | None,
    name: str,
    start_ms: int,
    end_ms: int,
    status: str = "UNSET",
    description: str | None = None,
    trace_id: int = TRACE_ID,
    **attributes: AttributeValue,
) -> SpanRecord:
    return SpanRecord(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent,
        name=name,
        kind="INTERNAL",
        start_time_ns=start_ms * 1_000_000,
        end_time_ns=end_ms * 1_000_000,
        attributes=attributes,
        status_code=status,
        status_description=description,
    )


def text_of(renderable: object) -> str:
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(renderable)
    output = console.file.getvalue()  # type: ignore[attr-defined]
    return str(output)


def run_attributes(run_type: str, name: str) -> dict[str, AttributeValue]:
    return {semconv.RUN_TYPE: run_type, semconv.RUN_NAME: name}


def test_a_tree_shows_types_names_models_durations_tokens_documents_and_status() -> None:
    root = span(1, None, "rag", 0, 1500, **run_attributes("chain", "rag"))
    retriever = span(
        2,
        1,
        "VectorStoreRetriever",
        10,
        12,
        **run_attributes("retriever", "VectorStoreRetriever"),
        **{semconv.RETRIEVAL_DOCUMENTS: '[{"page_content": "a"}, {"page_content": "b"}]'},
    )
    model = span(
        3,
        1,
        "chat gpt-4o",
        20,
        1400,
        **run_attributes("chat_model", "ChatOpenAI"),
        **{
            semconv.GEN_AI_RESPONSE_MODEL: "gpt-4o",
            semconv.GEN_AI_USAGE_INPUT_TOKENS: 120,
            semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 24,
        },
    )
    lines = text_of(render_trace(FinishedTrace(TRACE_ID, (model, root, retriever)))).splitlines()

    assert lines[0] == f"trace {TRACE_ID:032x}  3 spans, 1.50 s, 120→24 tokens"
    assert lines[1] == "└── chain      rag  1.50 s  ✓"
    # Children in start order, whatever order the spans arrived in.
    assert lines[2] == "    ├── retriever  VectorStoreRetriever  2 ms  2 documents  ✓"
    assert lines[3] == "    └── chat_model ChatOpenAI gpt-4o  1.38 s  120→24 tokens  ✓"


def test_a_failed_span_shows_its_error_once_and_the_trace_counts_it() -> None:
    root = span(
        1,
        None,
        "publish",
        0,
        5,
        "ERROR",
        "PublishError: service unreachable",
        **run_attributes("chain", "publish"),
        **{semconv.ERROR_TYPE: "PublishError"},
    )
    text = text_of(render_trace(FinishedTrace(TRACE_ID, (root,))))
    assert "1 failed" in text.splitlines()[0]
    assert "✗ PublishError: service unreachable" in text
    assert text.count("PublishError") == 1


def test_a_partial_trace_shows_its_orphans_at_the_top() -> None:
    """A trace handed over at its maximum age may lack the spans between root and leaves."""
    root = span(1, None, "agent", 0, 100, **run_attributes("chain", "agent"))
    orphan = span(7, 99, "execute_tool add", 50, 60, **run_attributes("tool", "add"))
    foreign = span(8, 1, "POST /v1/chat/completions", 20, 30)
    lines = text_of(
        render_trace(FinishedTrace(TRACE_ID, (root, orphan, foreign), partial=True))
    ).splitlines()
    assert lines[0].endswith("partial")
    assert lines[1].startswith("├── chain      agent")
    assert lines[2].startswith("│   └── internal   POST /v1/chat/completions")
    assert lines[3].startswith("└── tool       add")


def test_several_traces_are_drawn_oldest_first() -> None:
    first = FinishedTrace(1, (span(1, None, "first", 0, 1, trace_id=1),))
    second = FinishedTrace(2, (span(2, None, "second", 5, 6, trace_id=2),))
    text = text_of(render_traces([second, first]))
    assert text.index("first") < text.index("second")


def test_durations_read_naturally() -> None:
    assert [format_duration(ns) for ns in (400, 2_500_000, 1_234_000_000, -5)] == [
        "0 µs",
        "2 ms",
        "1.23 s",
        "0 µs",
    ]


def test_genai_metrics_are_summarized_per_operation_and_model() -> None:
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("test")
    duration = meter.create_histogram(semconv.METRIC_OPERATION_DURATION, unit="s")
    tokens = meter.create_histogram(semconv.METRIC_TOKEN_USAGE, unit="{token}")
    chat = {semconv.GEN_AI_OPERATION_NAME: "chat", semconv.GEN_AI_RESPONSE_MODEL: "gpt-4o"}
    duration.record(0.5, chat)
    duration.record(1.5, {**chat, semconv.ERROR_TYPE: "TimeoutError"})
    tokens.record(100, {**chat, semconv.GEN_AI_TOKEN_TYPE: "input"})
    tokens.record(30, {**chat, semconv.GEN_AI_TOKEN_TYPE: "output"})
    duration.record(0.25, {semconv.GEN_AI_OPERATION_NAME: "execute_tool"})

    rows = summarize_genai_metrics(reader.get_metrics_data())

    assert rows == (
        ModelUsage(
            "chat",
            "gpt-4o",
            calls=2,
            failed_calls=1,
            duration_s=2.0,
            input_tokens=100,
            output_tokens=30,
        ),
        ModelUsage("execute_tool", "-", calls=1, duration_s=0.25),
    )
    table = text_of(render_usage(rows))
    assert "gpt-4o" in table and "2.000 s" in table and "1.000 s" in table


def test_delivery_counters_are_summarized_per_sink() -> None:
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("otel_bridge.delivery")
    delivered = meter.create_counter("otel_bridge.delivery.delivered")
    dead = meter.create_counter("otel_bridge.delivery.dead_lettered")
    delivered.add(3, {"otel_bridge.sink": "labelstudio"})
    delivered.add(1, {"otel_bridge.sink": "labelstudio"})
    dead.add(2, {"otel_bridge.sink": "sagemaker"})

    assert summarize_delivery(reader.get_metrics_data()) == {
        "labelstudio": DeliveryCounts(delivered=4),
        "sagemaker": DeliveryCounts(dead_lettered=2),
    }
