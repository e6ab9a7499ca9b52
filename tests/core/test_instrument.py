"""instrument()/uninstrument(): every LangChain run traced with no code change, undone completely.

Real LangChain runnables on otel_bridge.testing's fake chat model (the paid-API stand-in).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
from langchain_core.runnables import RunnableLambda
from langchain_core.tracers import context as tracer_context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

import otel_bridge
from otel_bridge.handler import OTelCallbackHandler
from otel_bridge.instrumentation import instrumented_handler
from otel_bridge.testing import FakeChatModel, FakeLLM
from tests.support.recording import recording_provider


@pytest.fixture
def provider(provider: TracerProvider) -> Iterator[TracerProvider]:
    """conftest's provider, with instrumentation switched off before it shuts down."""
    yield provider
    otel_bridge.uninstrument()


def test_instrument_traces_runs_without_callbacks_in_every_thread_and_task(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    handler = otel_bridge.instrument(tracer_provider=provider)
    assert isinstance(handler, OTelCallbackHandler)
    model = FakeChatModel(responses=["ok"])
    model.invoke("main thread")
    # A thread started after instrument() begins with an empty contextvars context.
    worker = threading.Thread(target=model.invoke, args=("worker thread",))
    worker.start()
    worker.join()
    asyncio.run(model.ainvoke("task"))
    spans = exporter.get_finished_spans()
    assert [s.name for s in spans] == ["chat fake-chat-model"] * 3
    assert handler.usage_metadata["fake-chat-model"]["input_tokens"] == 5  # 2 + 2 + 1 words


def test_instrument_is_idempotent(provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
    hooks_before = len(tracer_context._configure_hooks)
    first = otel_bridge.instrument(tracer_provider=provider)
    second = otel_bridge.instrument(tracer_provider=provider)
    assert first is second is instrumented_handler()
    assert len(tracer_context._configure_hooks) == hooks_before + 1
    FakeChatModel().invoke("once")
    # One handler, one span: a second instrument() must not double every span.
    assert len(exporter.get_finished_spans()) == 1


def test_uninstrument_removes_everything(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    hooks_before = list(tracer_context._configure_hooks)
    otel_bridge.instrument(tracer_provider=provider)
    otel_bridge.uninstrument()
    otel_bridge.uninstrument()
    assert tracer_context._configure_hooks == hooks_before
    assert instrumented_handler() is None
    FakeChatModel().invoke("untraced")
    assert exporter.get_finished_spans() == ()
    # And it can be switched on again.
    otel_bridge.instrument(tracer_provider=provider)
    FakeChatModel().invoke("traced")
    assert len(exporter.get_finished_spans()) == 1


def test_instrument_passes_options_to_the_handler(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    handler = otel_bridge.instrument(tracer_provider=provider, capture_content=False)
    assert handler.capture_content is False
    FakeChatModel(responses=["private"]).invoke("private")
    (span,) = exporter.get_finished_spans()
    assert "gen_ai.input.messages" not in span.attributes


def test_async_text_completion_client_spans_nest_under_the_model(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """`BaseLLM.agenerate` starts its runs in `asyncio.gather` child tasks, out of reach of a
    handler's context; the wrapper every handler installs covers that path, and does nothing
    once uninstrument() has removed the handler."""
    otel_bridge.instrument(tracer_provider=provider)
    llm = FakeLLM(client_span=True, client_tracer_provider=provider)

    async def calls() -> None:
        await llm.ainvoke("one")
        await asyncio.gather(*(llm.ainvoke(str(i)) for i in range(5)))

    asyncio.run(calls())
    spans = exporter.get_finished_spans()
    by_id = {s.context.span_id: s for s in spans}
    clients = [s for s in spans if s.name.startswith("POST ")]
    assert len(clients) == 6 and all(c.kind == SpanKind.CLIENT for c in clients)
    for client in clients:
        assert client.parent is not None
        assert by_id[client.parent.span_id].name == "text_completion fake-completion-model"
    otel_bridge.uninstrument()
    exporter.clear()
    asyncio.run(llm.ainvoke("untraced"))
    (client,) = exporter.get_finished_spans()
    assert client.kind == SpanKind.CLIENT and client.parent is None


def test_a_run_given_its_own_handler_while_instrumented_is_traced_once(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    global_handler = otel_bridge.instrument(tracer_provider=provider)
    own_provider, own_exporter = recording_provider()
    own = OTelCallbackHandler(tracer_provider=own_provider)
    model = FakeChatModel(responses=["ok"])
    chain = RunnableLambda(lambda text: text, name="pass") | model

    chain.invoke("explicit", {"callbacks": [own]})
    # Every run, nested ones included, went to the handler the app passed, and only there.
    assert sorted(s.name for s in own_exporter.get_finished_spans()) == [
        "RunnableSequence",
        "chat fake-chat-model",
        "pass",
    ]
    assert exporter.get_finished_spans() == ()
    assert global_handler.open_runs == 0 and own.open_runs == 0

    # Runs without a handler of their own are still traced by instrument()'s.
    chain.invoke("implicit")
    assert len(exporter.get_finished_spans()) == 3
    assert len(own_exporter.get_finished_spans()) == 3
    own_provider.shutdown()
