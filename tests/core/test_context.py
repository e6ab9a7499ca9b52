"""Context propagation: spans of an instrumented HTTP client nest under the model/tool span.

The "LLM API" is a tiny OpenAI-shaped HTTP server on loopback (the only stand-in: it replaces
a paid API); the HTTP client is real httpx instrumented by the real
opentelemetry-instrumentation-httpx, and every mode LangChain/LangGraph offers is driven for real.
Each test checks the three properties peers get wrong: the CLIENT span is a child of the model
(or tool) span, one top-level call is one trace under the span current at the call, and after
the call nothing of it is left current; and that no context error is ever logged.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator
from typing import Any, TypedDict

import httpx
import pytest
from langchain_core.messages import BaseMessage, HumanMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool
from langgraph.graph import END, START, StateGraph
from opentelemetry import trace

from otel_bridge import semconv
from tests.support.loopback_llm import (
    LoopbackAPI,
    Setup,
    assert_clients_under,
    assert_one_trace_per_request,
    client_spans,
    parent_of,
)


@pytest.fixture(scope="module")
def api() -> Iterator[LoopbackAPI]:
    instance = LoopbackAPI()
    yield instance
    instance.close()


@pytest.fixture
def setup(api: LoopbackAPI) -> Iterator[Setup]:
    instance = Setup(api)
    yield instance
    instance.close()


@pytest.fixture(autouse=True)
def no_context_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.WARNING)
    yield
    problems = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not problems, [r.getMessage() for r in problems]


def chain_for(setup: Setup) -> Any:
    prompt = ChatPromptTemplate.from_messages([("human", "{question}")])
    return prompt | setup.model | StrOutputParser()


def _assert_one_call_per_request(setup: Setup) -> None:
    """The model's one HTTP call is under its span, in the trace of the "request" span."""
    spans = setup.spans()
    assert_clients_under(spans, "chat echo-1", 1)
    assert_one_trace_per_request(spans, [s for s in spans if s.name == "request"])


def test_invoke(setup: Setup) -> None:
    before = trace.get_current_span()
    with setup.tracer.start_as_current_span("request"):
        assert chain_for(setup).invoke({"question": "hi"}, setup.config) == "echo: hi"
    assert trace.get_current_span() is before
    _assert_one_call_per_request(setup)


def test_ainvoke_repeatedly_in_one_task(setup: Setup) -> None:
    async def main() -> None:
        before = trace.get_current_span()
        for question in ("one", "two"):
            with setup.tracer.start_as_current_span("request"):
                await chain_for(setup).ainvoke({"question": question}, setup.config)
            assert trace.get_current_span() is before
        # A model called directly is the root run; its span is current in this very task.
        with setup.tracer.start_as_current_span("request"):
            await setup.model.ainvoke("three", setup.config)
        assert trace.get_current_span() is before
        # Anything the app does next is not attributed to the finished call.
        with setup.tracer.start_as_current_span("after") as after:
            assert after.parent is None or after.parent == before.get_span_context()

    asyncio.run(main())
    spans = setup.spans()
    assert_clients_under(spans, "chat echo-1", 3)
    assert_one_trace_per_request(
        [s for s in spans if s.name != "after"], [s for s in spans if s.name == "request"]
    )


def test_direct_model_call_leaves_nothing_current(setup: Setup) -> None:
    async def main() -> None:
        before = trace.get_current_span()
        await setup.model.ainvoke("x", setup.config)
        assert trace.get_current_span() is before
        assert not trace.get_current_span().get_span_context().is_valid

    asyncio.run(main())
    setup.model.invoke("y", setup.config)
    assert not trace.get_current_span().get_span_context().is_valid
    spans = setup.spans()
    assert_clients_under(spans, "chat echo-1", 2)
    assert len({s.context.trace_id for s in spans}) == 2


def test_stream(setup: Setup) -> None:
    before = trace.get_current_span()
    with setup.tracer.start_as_current_span("request"):
        text = "".join(chain_for(setup).stream({"question": "hi"}, setup.config))
    assert text == "echo: hi "
    assert trace.get_current_span() is before
    _assert_one_call_per_request(setup)


def test_astream(setup: Setup) -> None:
    async def main() -> str:
        before = trace.get_current_span()
        with setup.tracer.start_as_current_span("request"):
            parts = [p async for p in chain_for(setup).astream({"question": "hi"}, setup.config)]
        assert trace.get_current_span() is before
        return "".join(parts)

    assert asyncio.run(main()) == "echo: hi "
    _assert_one_call_per_request(setup)


def test_batch(setup: Setup) -> None:
    with setup.tracer.start_as_current_span("request"):
        answers = chain_for(setup).batch([{"question": str(i)} for i in range(4)], setup.config)
    assert answers == [f"echo: {i}" for i in range(4)]
    spans = setup.spans()
    assert_clients_under(spans, "chat echo-1", 4)
    roots = [s for s in spans if s.name == "RunnableSequence"]
    request = next(s for s in spans if s.name == "request")
    # Four sibling roots under the request, none nested under another.
    assert {parent_of(root, spans).name for root in roots} == {"request"}  # type: ignore[union-attr]
    assert {s.context.trace_id for s in spans} == {request.context.trace_id}


def test_abatch(setup: Setup) -> None:
    async def main() -> list[str]:
        with setup.tracer.start_as_current_span("request"):
            return await chain_for(setup).abatch(
                [{"question": str(i)} for i in range(4)], setup.config
            )

    assert asyncio.run(main()) == [f"echo: {i}" for i in range(4)]
    spans = setup.spans()
    assert_clients_under(spans, "chat echo-1", 4)
    roots = [s for s in spans if s.name == "RunnableSequence"]
    assert len(roots) == 4
    assert {parent_of(root, spans).name for root in roots} == {"request"}  # type: ignore[union-attr]


def test_gather_of_many_concurrent_calls(setup: Setup) -> None:
    chain = chain_for(setup)

    async def one(i: int) -> str:
        with setup.tracer.start_as_current_span(f"request-{i}"):
            return await chain.ainvoke({"question": str(i)}, setup.config)

    async def main() -> list[str]:
        before = trace.get_current_span()
        answers = await asyncio.gather(*(one(i) for i in range(20)))
        assert trace.get_current_span() is before
        return answers

    assert asyncio.run(main()) == [f"echo: {i}" for i in range(20)]
    spans = setup.spans()
    assert_clients_under(spans, "chat echo-1", 20)
    requests = [s for s in spans if s.name.startswith("request-")]
    assert_one_trace_per_request(spans, requests)
    # Each request's HTTP call carries that request's own question.
    for request in requests:
        client = next(
            s for s in client_spans(spans) if s.context.trace_id == request.context.trace_id
        )
        model = parent_of(client, spans)
        assert model is not None
        question = request.name.removeprefix("request-")
        assert (
            json.loads(str(model.attributes[semconv.GEN_AI_INPUT_MESSAGES]))[0]["parts"][0][
                "content"
            ]
            == question
        )


def test_astream_events(setup: Setup) -> None:
    async def main() -> list[str]:
        before = trace.get_current_span()
        with setup.tracer.start_as_current_span("request"):
            kinds = [
                event["event"]
                async for event in chain_for(setup).astream_events(
                    {"question": "hi"}, setup.config, version="v2"
                )
            ]
        assert trace.get_current_span() is before
        return kinds

    kinds = asyncio.run(main())
    assert "on_chat_model_stream" in kinds
    _assert_one_call_per_request(setup)


def _tool_setup(setup: Setup) -> Any:
    client = setup.client

    @tool
    def lookup(term: str) -> str:
        """Look a term up over HTTP."""
        return str(client.post(setup.url, json={"messages": [term]}).json()["reply"])

    return lookup


def test_tool_http_call_nests_under_tool_span(setup: Setup) -> None:
    lookup = _tool_setup(setup)
    with setup.tracer.start_as_current_span("request"):
        assert lookup.invoke({"term": "otel"}, setup.config) == "echo: otel"
    spans = setup.spans()
    assert_clients_under(spans, "execute_tool lookup", 1)


def test_runs_invoked_inside_a_lambda_nest_under_it(setup: Setup) -> None:
    chain = chain_for(setup)
    inner = RunnableLambda(lambda question: chain.invoke({"question": question}), name="outer")
    with setup.tracer.start_as_current_span("request"):
        assert inner.invoke("hi", setup.config) == "echo: hi"
    spans = setup.spans()
    sequence = next(s for s in spans if s.name == "RunnableSequence")
    assert parent_of(sequence, spans).name == "outer"  # type: ignore[union-attr]
    assert_clients_under(spans, "chat echo-1", 1)
    assert_one_trace_per_request(spans, [s for s in spans if s.name == "request"])


class _State(TypedDict):
    messages: list[BaseMessage]


def _graph(setup: Setup) -> Any:
    lookup = _tool_setup(setup)

    def call_model(state: _State) -> _State:
        reply = setup.model.invoke(state["messages"])
        return {"messages": [*state["messages"], reply]}

    async def acall_model(state: _State) -> _State:
        reply = await setup.model.ainvoke(state["messages"])
        return {"messages": [*state["messages"], reply]}

    def call_tool(state: _State) -> _State:
        result = lookup.invoke({"term": str(state["messages"][-1].content)})
        return {"messages": [*state["messages"], HumanMessage(content=result)]}

    graph = StateGraph(_State)
    from langchain_core.runnables import RunnableLambda as Lambda

    graph.add_node("model", Lambda(call_model, afunc=acall_model))
    graph.add_node("tool", call_tool)
    graph.add_edge(START, "model")
    graph.add_edge("model", "tool")
    graph.add_edge("tool", END)
    return graph.compile()


def _check_graph(setup: Setup) -> None:
    spans = setup.spans()
    assert len(client_spans(spans)) == 2
    clients = client_spans(spans)
    parents = sorted(parent_of(c, spans).name for c in clients)  # type: ignore[union-attr]
    assert parents == ["chat echo-1", "execute_tool lookup"]
    assert_one_trace_per_request(spans, [s for s in spans if s.name == "request"])


def test_langgraph_invoke(setup: Setup) -> None:
    with setup.tracer.start_as_current_span("request"):
        _graph(setup).invoke({"messages": [HumanMessage(content="hi")]}, setup.config)
    _check_graph(setup)


def test_langgraph_ainvoke(setup: Setup) -> None:
    async def main() -> None:
        before = trace.get_current_span()
        with setup.tracer.start_as_current_span("request"):
            await _graph(setup).ainvoke({"messages": [HumanMessage(content="hi")]}, setup.config)
        assert trace.get_current_span() is before

    asyncio.run(main())
    _check_graph(setup)


def test_langgraph_astream(setup: Setup) -> None:
    async def main() -> None:
        with setup.tracer.start_as_current_span("request"):
            async for _ in _graph(setup).astream(
                {"messages": [HumanMessage(content="hi")]}, setup.config
            ):
                pass

    asyncio.run(main())
    _check_graph(setup)


@pytest.mark.parametrize("through_chain", [False, True], ids=["model", "chain"])
def test_sync_stream_closed_early_ends_every_span(setup: Setup, through_chain: bool) -> None:
    before = trace.get_current_span()
    runnable = chain_for(setup) if through_chain else setup.model
    stream = runnable.stream(
        {"question": "one two three"} if through_chain else "one two", setup.config
    )
    next(stream)
    stream.close()
    assert trace.get_current_span() is before
    assert setup.handler.open_runs == 0
    spans = setup.spans()
    assert {s.name for s in spans} >= {"chat echo-1"}
    assert all(s.status.status_code != trace.StatusCode.ERROR for s in spans)
    if not through_chain:
        # A sync RunnableSequence reports a closed stream as a normal end; a model stream
        # reports GeneratorExit, which is recorded as closed early rather than as a failure.
        model_span = next(s for s in spans if s.name == "chat echo-1")
        assert model_span.attributes[semconv.RUN_CLOSED_EARLY] is True


def test_async_stream_closed_early_ends_every_span(setup: Setup) -> None:
    async def main() -> None:
        before = trace.get_current_span()
        stream = chain_for(setup).astream({"question": "one two three"}, setup.config)
        async for _ in stream:
            break
        await stream.aclose()  # type: ignore[attr-defined]
        # LangChain closes the inner generators of a sequence from the event loop's async
        # generator finalizer, so the runs end a few loop iterations after aclose() returns.
        deadline = time.monotonic() + 10
        while setup.handler.open_runs and time.monotonic() < deadline:
            await asyncio.sleep(0.001)
        assert setup.handler.open_runs == 0
        assert trace.get_current_span() is before

    asyncio.run(main())
    assert setup.handler.open_runs == 0
    names = {s.name for s in setup.spans()}
    assert {"RunnableSequence", "chat echo-1"} <= names


def test_root_run_nests_under_a_web_frameworks_server_span(setup: Setup) -> None:
    """A real FastAPI app instrumented by opentelemetry-instrumentation-fastapi, called over ASGI:
    every request's chain run sits under that request's SERVER span, and requests stay apart."""
    from fastapi import FastAPI
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    app = FastAPI()
    chain = chain_for(setup)

    @app.get("/ask")
    async def ask(question: str) -> dict[str, str]:
        return {"answer": await chain.ainvoke({"question": question}, setup.config)}

    FastAPIInstrumentor.instrument_app(app, tracer_provider=setup.provider)

    async def main() -> list[str]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            responses = await asyncio.gather(
                *(client.get("/ask", params={"question": f"q{i}"}) for i in range(3))
            )
        return [r.json()["answer"] for r in responses]

    assert asyncio.run(main()) == ["echo: q0", "echo: q1", "echo: q2"]
    spans = setup.spans()
    servers = [s for s in spans if s.kind == trace.SpanKind.SERVER]
    assert len(servers) == 3
    for root in (s for s in spans if s.name == "RunnableSequence"):
        parent = parent_of(root, spans)
        assert parent is not None and parent.kind == trace.SpanKind.SERVER
    assert len({s.context.trace_id for s in servers}) == 3
    assert_clients_under(spans, "chat echo-1", 3)
