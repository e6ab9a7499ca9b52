"""OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT, every value the GenAI instrumentations
accept: a marker string in the prompt, the answer and a custom event is looked for on the span
attributes, the span events, the spool file and the file sink's output."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pytest
from langchain_core.callbacks.manager import dispatch_custom_event
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_bridge import OTelCallbackHandler
from otel_bridge.exporter import TraceExporter
from otel_bridge.file_sink import FileSpanExporter
from otel_bridge.langchain_views import FinishedTrace
from otel_bridge.sink import DeliveryReport
from otel_bridge.testing import FakeChatModel

VARIABLE = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
MARKER = "zebra-marker-5f3a"
CAPTURED = ["true", "True", "1", "SPAN_ONLY", "span_only", "SPAN_AND_EVENT", "Span_And_Event"]
NOT_CAPTURED = ["false", "0", "NO_CONTENT", "no_content", "EVENT_ONLY", "event_only"]
UNKNOWN = ["sometimes", "SPAN"]


def _announce(text: str) -> str:
    dispatch_custom_event("progress", {"note": text})
    return text


def _text_of(spans: Sequence[ReadableSpan]) -> tuple[str, str]:
    attributes = "\n".join(f"{k}={v}" for s in spans for k, v in (s.attributes or {}).items())
    events = "\n".join(
        f"{k}={v}" for s in spans for e in s.events for k, v in (e.attributes or {}).items()
    )
    return attributes, events


def _run(tmp_path: Path) -> tuple[list[ReadableSpan], bytes, bytes]:
    """The chain traced into memory and into the file sink (through its spool); returns the
    spans, the spool file's bytes before delivery and the sink's output."""
    memory = InMemorySpanExporter()
    sink = FileSpanExporter(path=tmp_path / "out.jsonl", spool_dir=tmp_path / "spool")
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    provider.add_span_processor(SimpleSpanProcessor(sink))
    handler = OTelCallbackHandler(tracer_provider=provider)
    chain = (
        RunnableLambda(_announce)
        | ChatPromptTemplate.from_messages([("human", "{q}")])
        | FakeChatModel(responses=[f"the answer is {MARKER}"])
    )
    chain.invoke(f"question about {MARKER}", {"callbacks": [handler]})
    spool_bytes = b"".join(p.read_bytes() for p in (tmp_path / "spool").glob("*") if p.is_file())
    provider.shutdown()
    output = (tmp_path / "out.jsonl").read_bytes()
    return list(memory.get_finished_spans()), spool_bytes, output


@pytest.mark.parametrize("value", CAPTURED)
def test_span_modes_put_content_on_spans_and_in_the_sink(
    value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(VARIABLE, value)
    spans, _, output = _run(tmp_path)
    attributes, events = _text_of(spans)
    assert MARKER in attributes and MARKER in events
    assert MARKER.encode() in output


@pytest.mark.parametrize("value", NOT_CAPTURED + UNKNOWN)
def test_other_values_record_no_content_anywhere(
    value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(VARIABLE, value)
    with caplog.at_level(logging.WARNING, logger="otel_bridge"):
        spans, spool_bytes, output = _run(tmp_path)
    attributes, events = _text_of(spans)
    assert spans and output  # traced and delivered, only without content
    assert MARKER not in attributes and MARKER not in events
    assert MARKER.encode() not in spool_bytes and MARKER.encode() not in output
    if value in UNKNOWN:
        assert any(value in record.getMessage() for record in caplog.records)


def test_an_unknown_value_warns_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(VARIABLE, "perhaps-once")
    with caplog.at_level(logging.WARNING, logger="otel_bridge"):
        handlers = [OTelCallbackHandler(tracer_provider=TracerProvider()) for _ in range(3)]
    assert all(handler.capture_content is False for handler in handlers)
    assert sum("perhaps-once" in record.getMessage() for record in caplog.records) == 1


class _ReviewSink(TraceExporter):
    sink_name = "review-test"
    needs_content = True

    def deliver(self, traces: Sequence[FinishedTrace]) -> DeliveryReport:
        return DeliveryReport.all_delivered(traces)


class _PlainSink(_ReviewSink):
    sink_name = "plain-test"
    needs_content = False


@pytest.mark.parametrize(("sink", "warned"), [(_ReviewSink, True), (_PlainSink, False)])
def test_a_sink_that_needs_content_says_so_once_at_construction(
    sink: type[TraceExporter],
    warned: bool,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv(VARIABLE, "NO_CONTENT")
    with caplog.at_level(logging.WARNING, logger="otel_bridge"):
        exporter = sink(spool_dir=tmp_path)
        exporter.warn_without_content()  # a drop-in handler with capture_content=False asks again
    exporter.shutdown()
    said = [r for r in caplog.records if "content capture is off" in r.getMessage()]
    assert len(said) == (1 if warned else 0)
