"""A stream's runs are current in the stream's own code, never in the consumer's.

LangChain starts a stream's outermost run inside the generator body, which runs in whatever
context the consumer iterates it from. Between chunks the app's own code (an SSE or websocket
send, a database write, a log line) must see the span it had before the stream started; after a
`break` the next request in the same task must be a trace of its own; and the stream's runs
must still end. Each case runs in handler mode and in instrument() mode; the model calls the
loopback LLM API (the paid-API stand-in) through instrumented httpx.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any, TypedDict

import pytest
from langchain_core.messages import BaseMessage, HumanMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableBranch, RunnableLambda
from langgraph.graph import END, START, StateGraph
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan

from otel_bridge import semconv
from tests.support.loopback_llm import (
    Setup,
    assert_clients_under,
    assert_one_trace_per_request,
    parent_of,
)

pytestmark = pytest.mark.usefixtures("no_warnings_logged")

MODEL_SPAN = "chat echo-1"
STREAMED = ["chain", "model", "graph", "branch", "fallbacks"]
# RunnableWithFallbacks.stream yields its first chunk outside the block that reports errors: closed
# there, it never ends its run (LangChain's; the handler's age bound ends it).
BROKEN_OFF = ["chain", "model", "graph", "branch"]


def _chain(traced: Setup) -> Any:
    prompt = ChatPromptTemplate.from_messages([("human", "{question}")])
    return prompt | traced.model | StrOutputParser()


class _State(TypedDict):
    messages: list[BaseMessage]


def _graph(traced: Setup) -> Any:
    model = traced.model

    def call_model(state: _State) -> _State:
        return {"messages": [*state["messages"], model.invoke(state["messages"])]}

    async def acall_model(state: _State) -> _State:
        return {"messages": [*state["messages"], await model.ainvoke(state["messages"])]}

    graph = StateGraph(_State)
    graph.add_node("model", RunnableLambda(call_model, afunc=acall_model))
    graph.add_node("after", lambda state: state)
    graph.add_edge(START, "model")
    graph.add_edge("model", "after")
    graph.add_edge("after", END)
    return graph.compile()


def _streamed(traced: Setup, what: str) -> tuple[Any, Any]:
    """The runnable to stream, and its input."""
    question = {"question": "one two three"}
    if what == "chain":
        return _chain(traced), question
    if what == "model":
        return traced.model, "one two three"
    if what == "branch":
        return RunnableBranch((lambda x: "question" in x, _chain(traced)), _chain(traced)), question
    if what == "fallbacks":
        return RunnableLambda(_fail).with_fallbacks([_chain(traced)]), question
    return _graph(traced), {"messages": [HumanMessage(content="one two three")]}


def _fail(_: Any) -> Any:
    raise RuntimeError("primary is down")


def _assert_sends_under_the_request(spans: list[ReadableSpan]) -> None:
    sends = [s for s in spans if s.name == "send"]
    assert sends
    for send in sends:
        parent = parent_of(send, spans)
        assert parent is not None and parent.name == "request", (
            None if parent is None else parent.name
        )


def _requests_and_their_runs(spans: list[ReadableSpan]) -> list[ReadableSpan]:
    return [s for s in spans if s.name != "send"]


@pytest.mark.parametrize("what", STREAMED)
def test_the_consumers_code_between_chunks_sees_its_own_span(traced: Setup, what: str) -> None:
    runnable, value = _streamed(traced, what)
    before = trace.get_current_span()
    with traced.tracer.start_as_current_span("request") as request:
        for _ in runnable.stream(value, traced.config):
            assert trace.get_current_span() is request
            with traced.tracer.start_as_current_span("send"):
                pass
    assert trace.get_current_span() is before
    assert traced.handler.open_runs == 0
    spans = traced.spans()
    _assert_sends_under_the_request(spans)
    assert_clients_under(spans, MODEL_SPAN, 1)
    assert_one_trace_per_request(
        _requests_and_their_runs(spans), [s for s in spans if s.name == "request"]
    )


@pytest.mark.parametrize("what", STREAMED)
def test_the_consumers_code_between_async_chunks_sees_its_own_span(
    traced: Setup, what: str
) -> None:
    runnable, value = _streamed(traced, what)

    async def main() -> None:
        before = trace.get_current_span()
        with traced.tracer.start_as_current_span("request") as request:
            async for _ in runnable.astream(value, traced.config):
                assert trace.get_current_span() is request
                with traced.tracer.start_as_current_span("send"):
                    await asyncio.sleep(0)
        assert trace.get_current_span() is before

    asyncio.run(main())
    assert traced.handler.open_runs == 0
    spans = traced.spans()
    _assert_sends_under_the_request(spans)
    assert_clients_under(spans, MODEL_SPAN, 1)
    assert_one_trace_per_request(
        _requests_and_their_runs(spans), [s for s in spans if s.name == "request"]
    )


def _assert_own_traces(spans: list[ReadableSpan]) -> None:
    """The abandoned stream is a trace of its own whose runs all ended (none evicted by the
    open-run bounds), and the request after it is another, with every span of its call."""
    (request,) = [s for s in spans if s.name == "request"]
    assert request.parent is None
    streamed = [s for s in spans if s.context.trace_id != request.context.trace_id]
    assert streamed
    assert len({s.context.trace_id for s in streamed}) == 1
    assert not any(s.attributes.get(semconv.RUN_ABANDONED) for s in streamed)
    called = [s for s in spans if s.context.trace_id == request.context.trace_id]
    assert {s.name for s in called} >= {"request", "RunnableSequence", MODEL_SPAN}


@pytest.mark.parametrize("what", BROKEN_OFF)
def test_a_request_after_breaking_out_of_an_async_stream_is_its_own_trace(
    traced: Setup, what: str
) -> None:
    """A worker task that streams, stops reading (no aclose()), then serves the next request."""
    runnable, value = _streamed(traced, what)
    chain = _chain(traced)

    async def main() -> None:
        before = trace.get_current_span()
        stream = runnable.astream(value, traced.config)
        async for _ in stream:
            break
        # The generator is still suspended; the task goes on serving.
        assert trace.get_current_span() is before
        with traced.tracer.start_as_current_span("request"):
            assert await chain.ainvoke({"question": "next"}, traced.config) == "echo: next"
        assert trace.get_current_span() is before
        del stream

    # asyncio.run finalizes the abandoned generator before it returns.
    asyncio.run(main())
    assert traced.handler.open_runs == 0
    _assert_own_traces(traced.spans())


@pytest.mark.parametrize("what", BROKEN_OFF)
def test_a_request_after_breaking_out_of_a_stream_is_its_own_trace(
    traced: Setup, what: str
) -> None:
    runnable, value = _streamed(traced, what)
    chain = _chain(traced)
    before = trace.get_current_span()
    stream = runnable.stream(value, traced.config)
    for _ in stream:
        break
    assert trace.get_current_span() is before
    with traced.tracer.start_as_current_span("request"):
        assert chain.invoke({"question": "next"}, traced.config) == "echo: next"
    assert trace.get_current_span() is before
    del stream
    gc.collect()
    assert traced.handler.open_runs == 0
    _assert_own_traces(traced.spans())


def test_astream_events_keeps_its_runs_out_of_the_consumers_code(traced: Setup) -> None:
    chain = _chain(traced)

    async def main() -> None:
        with traced.tracer.start_as_current_span("request") as request:
            async for _ in chain.astream_events({"question": "hi"}, traced.config, version="v2"):
                assert trace.get_current_span() is request
                with traced.tracer.start_as_current_span("send"):
                    pass

    asyncio.run(main())
    spans = traced.spans()
    _assert_sends_under_the_request(spans)
    assert_clients_under(spans, MODEL_SPAN, 1)
