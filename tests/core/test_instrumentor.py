"""`LangChainBridgeInstrumentor`: `instrument()` as a standard OpenTelemetry instrumentor.

`opentelemetry-instrument python app.py` is run for real, in a subprocess, on a small LangChain
app that never mentions otel-bridge (the fake chat model stands in for a paid API), with the
SDK configured by opentelemetry-distro from the standard variables: the console exporter, and
otel-bridge's own OTLP JSON-lines `file` exporter. The app must be traced and exit cleanly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.instrumentation.dependencies import get_dependency_conflicts
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import otel_bridge
from otel_bridge import LangChainBridgeInstrumentor
from otel_bridge.instrumentation import instrumented_handler
from otel_bridge.testing import FakeChatModel

APP = """
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from otel_bridge.testing import FakeChatModel

prompt = ChatPromptTemplate.from_messages([("human", "{question}")])
chain = prompt | FakeChatModel(responses=["42"]) | StrOutputParser()
print("answer:", chain.invoke({"question": "six times seven?"}))
"""
EXPECTED_SPANS = {
    "RunnableSequence",
    "ChatPromptTemplate",
    "chat fake-chat-model",
    "StrOutputParser",
}


@pytest.fixture
def provider(provider: TracerProvider) -> Any:
    yield provider
    otel_bridge.uninstrument()


def _run_instrumented(
    tmp_path: Path, *options: str, **env: str
) -> subprocess.CompletedProcess[str]:
    app = tmp_path / "app.py"
    app.write_text(APP, encoding="utf-8")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    # The other LangChain instrumentations installed for the bench would trace it too.
    clean.update(OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="langchain", **env)
    instrument = Path(sys.executable).parent / "opentelemetry-instrument"
    return subprocess.run(
        [str(instrument), *options, sys.executable, str(app)],
        env=clean,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _console_spans(stdout: str) -> list[dict[str, Any]]:
    """The span JSON objects the console exporter printed after the app's own line."""
    decoder = json.JSONDecoder()
    text = stdout.split("\n", 1)[1]
    spans, position = [], 0
    while (start := text.find("{", position)) != -1:
        span, position = decoder.raw_decode(text, start)
        spans.append(span)
    return spans


def test_opentelemetry_instrument_traces_an_unchanged_app_to_the_console(tmp_path: Path) -> None:
    # The README's command line.
    result = _run_instrumented(
        tmp_path, "--traces_exporter", "console", "--metrics_exporter", "none"
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.startswith("answer: 42\n")
    spans = _console_spans(result.stdout)
    assert {span["name"] for span in spans} == EXPECTED_SPANS
    assert len({span["context"]["trace_id"] for span in spans}) == 1
    (model,) = [span for span in spans if span["name"] == "chat fake-chat-model"]
    assert model["attributes"]["gen_ai.request.model"] == "fake-chat-model"
    assert model["attributes"]["langchain.run.type"] == "chat_model"


def test_opentelemetry_instrument_traces_an_unchanged_app_to_an_otlp_file(tmp_path: Path) -> None:
    traces = tmp_path / "traces.jsonl"
    result = _run_instrumented(
        tmp_path,
        OTEL_TRACES_EXPORTER="file",
        OTEL_METRICS_EXPORTER="none",
        OTEL_BRIDGE_FILE_PATH=str(traces),
        OTEL_BRIDGE_SPOOL_DIR=str(tmp_path / "spool"),
        OTEL_BRIDGE_GRACE_PERIOD="0",
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout == "answer: 42\n"
    (line,) = traces.read_text(encoding="utf-8").splitlines()
    (resource_spans,) = json.loads(line)["resourceSpans"]
    spans = [span for scope in resource_spans["scopeSpans"] for span in scope["spans"]]
    assert {span["name"] for span in spans} == EXPECTED_SPANS


def test_the_entry_point_names_the_instrumentor() -> None:
    (entry_point,) = entry_points(group="opentelemetry_instrumentor", name="otel_bridge")
    assert entry_point.load() is LangChainBridgeInstrumentor
    instrumentor = LangChainBridgeInstrumentor()
    assert get_dependency_conflicts(instrumentor.instrumentation_dependencies()) is None


def test_the_instrumentor_and_instrument_are_one_switch(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    instrumentor = LangChainBridgeInstrumentor()
    handler = instrumentor.instrument(tracer_provider=provider)
    assert handler is not None and handler is instrumented_handler()
    assert instrumentor.is_instrumented_by_opentelemetry
    # Both ways, in any order, once on: the same handler, no second one.
    assert otel_bridge.instrument(tracer_provider=provider) is handler
    assert instrumentor.instrument(tracer_provider=provider) is handler
    FakeChatModel().invoke("traced once")
    assert len(exporter.get_finished_spans()) == 1

    otel_bridge.uninstrument()
    assert not instrumentor.is_instrumented_by_opentelemetry
    instrumentor.uninstrument()
    FakeChatModel().invoke("untraced")
    assert len(exporter.get_finished_spans()) == 1

    otel_bridge.instrument(tracer_provider=provider)
    assert instrumentor.is_instrumented_by_opentelemetry
    instrumentor.uninstrument()
    assert instrumented_handler() is None
    FakeChatModel().invoke("untraced")
    assert len(exporter.get_finished_spans()) == 1
