"""A cancelled call ends every run it left open, with the cancellation as the error.

`BaseChatModel.agenerate` raises `CancelledError` at its `gather` without calling `on_llm_error`;
the chain or graph node around it then gets `on_chain_error(CancelledError)`, and a bare model
call gets no callback at all. Either way the model run must end now (status ERROR,
`error.type=CancelledError`), the HTTP span of the call in flight must sit under it, and no run
may stay open. Each case runs in handler mode and in instrument() mode, against the loopback
LLM API (the paid-API stand-in) holding the request until the call is cancelled.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable
from typing import Any, TypedDict

import pytest
from langchain_core.messages import BaseMessage, HumanMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda, RunnableParallel
from langgraph.graph import END, START, StateGraph
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from otel_bridge import semconv
from tests.support.loopback_llm import Setup, client_spans, parent_of

pytestmark = pytest.mark.usefixtures("no_warnings_logged")

MODEL_SPAN = "chat echo-1"


def _chain(traced: Setup) -> Any:
    prompt = ChatPromptTemplate.from_messages([("human", "{question}")])
    return prompt | traced.hanging_model() | StrOutputParser()


class _State(TypedDict):
    messages: list[BaseMessage]


def _graph(traced: Setup) -> Any:
    model = traced.hanging_model()

    async def call_model(state: _State) -> _State:
        return {"messages": [*state["messages"], await model.ainvoke(state["messages"])]}

    graph = StateGraph(_State)
    graph.add_node("model", call_model)
    graph.add_edge(START, "model")
    graph.add_edge("model", END)
    return graph.compile()


async def _cancel_when_held(traced: Setup, call: Awaitable[Any], how: str) -> None:
    """Run `call` and cancel it once its request is held by the server, the way `how` does:
    a task cancelled by a web server, an `asyncio.timeout` expiring, or `asyncio.wait_for`."""
    if how == "task.cancel":
        task = asyncio.ensure_future(call)
        await traced.api.held_request_arrived()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    elif how == "asyncio.timeout":
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(None) as deadline:
                waiting = asyncio.ensure_future(traced.api.held_request_arrived())
                waiting.add_done_callback(
                    lambda _: deadline.reschedule(asyncio.get_running_loop().time())
                )
                await call
    else:
        # The request is held until the test releases it, so only the timeout can end it.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(call, 0.5)


def _model_span(spans: list[ReadableSpan]) -> ReadableSpan:
    (model,) = [s for s in spans if s.name == MODEL_SPAN]
    return model


def _assert_ended_cancelled(span: ReadableSpan) -> None:
    assert span.status.status_code is StatusCode.ERROR, span.name
    assert span.attributes[semconv.ERROR_TYPE] == "CancelledError", span.name


def _assert_http_span_under_the_model(spans: list[ReadableSpan]) -> None:
    (client,) = client_spans(spans)
    parent = parent_of(client, spans)
    assert parent is not None and parent.name == MODEL_SPAN, [s.name for s in spans]


def _assert_the_call_ended_cancelled(traced: Setup, *around: str) -> list[ReadableSpan]:
    """No run is left open; the model run and the runs named `around` it ended with the
    cancellation, and the HTTP span of the call in flight sits under the model run."""
    assert traced.handler.open_runs == 0
    spans = traced.spans()
    _assert_ended_cancelled(_model_span(spans))
    for name in around:
        _assert_ended_cancelled(next(s for s in spans if s.name == name))
    _assert_http_span_under_the_model(spans)
    return spans


@pytest.mark.parametrize("how", ["task.cancel", "asyncio.timeout", "asyncio.wait_for"])
def test_a_cancelled_chain_ends_its_model_run_with_the_cancellation(
    traced: Setup, how: str
) -> None:
    chain = _chain(traced)

    async def main() -> None:
        before = trace.get_current_span()
        with traced.tracer.start_as_current_span("request"):
            await _cancel_when_held(traced, chain.ainvoke({"question": "slow"}, traced.config), how)
        assert trace.get_current_span() is before

    asyncio.run(main())
    spans = _assert_the_call_ended_cancelled(traced, "RunnableSequence")
    request = next(s for s in spans if s.name == "request")
    assert {s.context.trace_id for s in spans} == {request.context.trace_id}


@pytest.mark.parametrize("how", ["task.cancel", "asyncio.timeout", "asyncio.wait_for"])
def test_a_cancelled_bare_model_call_ends_its_run(traced: Setup, how: str) -> None:
    """No chain around the model: LangChain calls no callback at all for this run."""
    model = traced.hanging_model()

    async def main() -> None:
        with traced.tracer.start_as_current_span("request"):
            await _cancel_when_held(traced, model.ainvoke("slow", traced.config), how)

    asyncio.run(main())
    _assert_the_call_ended_cancelled(traced)


def test_cancelled_conversations_of_one_agenerate_all_end(traced: Setup) -> None:
    model = traced.hanging_model()
    conversations = [[HumanMessage(content="a")], [HumanMessage(content="b")]]

    async def main() -> None:
        task = asyncio.ensure_future(model.agenerate(conversations, **_callbacks(traced)))
        await traced.api.held_request_arrived()
        await traced.api.held_request_arrived()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert traced.handler.open_runs == 0
    spans = traced.spans()
    models = [s for s in spans if s.name == MODEL_SPAN]
    assert len(models) == 2
    for span in models:
        _assert_ended_cancelled(span)
    assert sorted(parent_of(c, spans).name for c in client_spans(spans)) == [MODEL_SPAN] * 2  # type: ignore[union-attr]


def test_a_cancelled_graph_ends_the_node_and_its_model_run(traced: Setup) -> None:
    graph = _graph(traced)

    async def main() -> None:
        with traced.tracer.start_as_current_span("request"):
            await _cancel_when_held(
                traced,
                graph.ainvoke({"messages": [HumanMessage(content="slow")]}, traced.config),
                "task.cancel",
            )

    asyncio.run(main())
    _assert_the_call_ended_cancelled(traced, "model")


def test_an_error_ends_every_descendant_left_open_with_that_error(traced: Setup) -> None:
    """Whatever LangChain failed to end below a failing run is ended with the run's error."""
    handler = traced.handler
    parent, child, grandchild, done = (uuid.uuid4() for _ in range(4))
    handler.on_chain_start({}, {}, run_id=parent, name="outer")
    handler.on_chain_start({}, {}, run_id=child, parent_run_id=parent, name="child")
    handler.on_chain_start({}, {}, run_id=done, parent_run_id=parent, name="done")
    handler.on_chain_end({}, run_id=done)
    handler.on_chain_start({}, {}, run_id=grandchild, parent_run_id=child, name="grandchild")
    # An unrelated run stays open: it is not below the failing one.
    other = uuid.uuid4()
    handler.on_chain_start({}, {}, run_id=other, name="other")
    handler.on_chain_error(ValueError("boom"), run_id=parent)
    assert handler.open_runs == 1
    spans = {s.name: s for s in traced.spans()}
    for name in ("outer", "child", "grandchild"):
        assert spans[name].status.status_code is StatusCode.ERROR
        assert spans[name].attributes[semconv.ERROR_TYPE] == "ValueError"
    assert spans["done"].status.status_code is StatusCode.UNSET
    handler.on_chain_end({}, run_id=other)
    # A late end of a run already ended this way changes nothing.
    handler.on_chain_end({}, run_id=child)
    assert handler.open_runs == 0
    assert len(traced.spans()) == 5


def _callbacks(traced: Setup) -> dict[str, Any]:
    return {"callbacks": traced.config["callbacks"]} if traced.config else {}


def test_a_parallel_branch_still_running_when_another_fails_ends_with_that_error(
    traced: Setup,
) -> None:
    """Async `RunnableParallel` raises the first branch error while the other branch runs on;
    that branch's runs end with the error, and their own late end changes nothing."""
    release = asyncio.Event()
    finished = asyncio.Event()

    async def slow(_: Any) -> str:
        await release.wait()
        finished.set()
        return "late"

    async def fail(_: Any) -> str:
        raise ValueError("branch failed")

    parallel = RunnableParallel(slow=RunnableLambda(slow), fail=RunnableLambda(fail))

    async def main() -> None:
        with pytest.raises(ValueError, match="branch failed"):
            await parallel.ainvoke("x", traced.config)
        assert traced.handler.open_runs == 0
        release.set()
        await finished.wait()
        await asyncio.sleep(0)

    asyncio.run(main())
    assert traced.handler.open_runs == 0
    spans = {s.name: s for s in traced.spans()}
    assert spans["slow"].status.status_code is StatusCode.ERROR
    assert spans["slow"].attributes[semconv.ERROR_TYPE] == "ValueError"
    assert len(traced.spans()) == 3
