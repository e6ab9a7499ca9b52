"""Real-app patterns that must keep traces whole: thread pools, `to_thread`, executors without
context, interrupt and resume, fallbacks, retries, branches, `assign`, generators, and a tool
calling a chain.

Each case runs in handler mode and in instrument() mode; the models call the loopback LLM API
(the paid-API stand-in) through instrumented httpx. Every check is the same three properties:
the HTTP span sits under the model (or tool) span, one call is one trace, and nothing of it is
left current afterwards.
"""

from __future__ import annotations

import asyncio
import contextvars
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import (
    RunnableBranch,
    RunnableGenerator,
    RunnableLambda,
    RunnablePassthrough,
)
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command
from opentelemetry import trace

from tests.support.loopback_llm import (
    Setup,
    assert_clients_under,
    assert_one_trace_per_request,
    client_spans,
    parent_of,
)
from tests.support.review_graph import review_graph

pytestmark = pytest.mark.usefixtures("no_warnings_logged")

MODEL_SPAN = "chat echo-1"


def _chain(traced: Setup) -> Any:
    prompt = ChatPromptTemplate.from_messages([("human", "{question}")])
    return prompt | traced.model | StrOutputParser()


def _post(traced: Setup, text: str) -> str:
    return str(traced.client.post(traced.url, json={"messages": [text]}).json()["reply"])


def _check(traced: Setup, parent_name: str, clients: int = 1) -> None:
    spans = traced.spans()
    assert_clients_under(spans, parent_name, clients)
    assert_one_trace_per_request(spans, [s for s in spans if s.name == "request"])
    assert traced.handler.open_runs == 0
    assert not trace.get_current_span().get_span_context().is_valid


def test_a_thread_pool_given_the_context_nests_under_the_step(traced: Setup) -> None:
    def lookup(question: str) -> str:
        with ThreadPoolExecutor(2) as pool:
            context = contextvars.copy_context()
            return pool.submit(context.run, _post, traced, question).result()

    step = RunnableLambda(lookup, name="lookup")
    with traced.tracer.start_as_current_span("request"):
        assert step.invoke("q", traced.config) == "echo: q"
    _check(traced, "lookup")


def test_to_thread_nests_under_the_tool(traced: Setup) -> None:
    @tool
    async def lookup(term: str) -> str:
        """Look a term up over HTTP from a worker thread."""
        return await asyncio.to_thread(_post, traced, term)

    async def main() -> None:
        with traced.tracer.start_as_current_span("request"):
            assert await lookup.ainvoke({"term": "q"}, traced.config) == "echo: q"

    asyncio.run(main())
    _check(traced, "execute_tool lookup")


def test_executors_without_context_give_one_clean_trace_per_call(traced: Setup) -> None:
    chain = _chain(traced)

    def current_span_is_valid() -> bool:
        return trace.get_current_span().get_span_context().is_valid

    with ThreadPoolExecutor(2) as pool:
        answers = [
            f.result()
            for f in [
                pool.submit(chain.invoke, {"question": str(i)}, traced.config) for i in range(4)
            ]
        ]
        # The pool's threads carry nothing of the calls they ran.
        assert not any(pool.submit(current_span_is_valid).result() for _ in range(4))

    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        return list(
            await asyncio.gather(
                *(
                    loop.run_in_executor(None, chain.invoke, {"question": str(i)}, traced.config)
                    for i in range(4, 6)
                )
            )
        )

    answers += asyncio.run(main())
    assert answers == [f"echo: {i}" for i in range(6)]
    spans = traced.spans()
    roots = [s for s in spans if s.name == "RunnableSequence"]
    assert len(roots) == 6 and all(root.parent is None for root in roots)
    assert len({root.context.trace_id for root in roots}) == 6
    assert_clients_under(spans, MODEL_SPAN, 6)
    for client in client_spans(spans):
        assert client.context.trace_id in {root.context.trace_id for root in roots}


def test_interrupt_and_resume_are_one_trace_per_call(traced: Setup) -> None:
    app = review_graph(traced.model).compile(checkpointer=InMemorySaver())
    config = {**traced.config, "configurable": {"thread_id": str(uuid.uuid4())}}
    with traced.tracer.start_as_current_span("request"):
        paused = app.invoke({"draft": "hello", "verdict": ""}, config)
    assert "__interrupt__" in paused
    with traced.tracer.start_as_current_span("request"):
        done = app.invoke(Command(resume="approved"), config)
    assert done["verdict"] == "approved"
    _check(traced, MODEL_SPAN)


def test_fallbacks_keep_the_call_in_one_trace(traced: Setup) -> None:
    """`RunnableWithFallbacks.invoke` hands each alternative the config it was given, not its
    child config: with a handler passed in that config, LangChain starts the alternatives as
    root runs, so they sit beside the fallbacks span rather than under it (instrument() keeps
    them under it). Either way the call is one trace and the HTTP span sits under the model."""
    runnable = RunnableLambda(_fail, name="failing").with_fallbacks([_chain(traced)])
    with traced.tracer.start_as_current_span("request") as request:
        runnable.invoke({"question": "hi"}, traced.config)
    spans = traced.spans()
    assert_clients_under(spans, MODEL_SPAN, 1)
    assert {s.context.trace_id for s in spans} == {request.get_span_context().trace_id}
    assert traced.handler.open_runs == 0
    assert not trace.get_current_span().get_span_context().is_valid


def test_retries_branches_assign_and_generators(traced: Setup) -> None:
    chain = _chain(traced)
    attempts = {"count": 0}

    def flaky(question: dict[str, str]) -> dict[str, str]:
        attempts["count"] += 1
        if attempts["count"] == 1:
            raise ConnectionError("once")
        return question

    def words(chunks: Iterator[str]) -> Iterator[str]:
        for chunk in chunks:
            yield chunk.upper()

    cases: dict[str, Any] = {
        "with_retry": RunnableLambda(flaky).with_retry(wait_exponential_jitter=False) | chain,
        "RunnableBranch": RunnableBranch((lambda x: "question" in x, chain), RunnableLambda(_fail)),
        "assign": RunnablePassthrough.assign(answer=chain),
        "RunnableGenerator": chain | RunnableGenerator(words),
    }
    for runnable in cases.values():
        with traced.tracer.start_as_current_span("request"):
            runnable.invoke({"question": "hi"}, traced.config)
    _check(traced, MODEL_SPAN, len(cases))


def test_an_async_generator_step_streams_under_the_model(traced: Setup) -> None:
    async def words(chunks: AsyncIterator[str]) -> AsyncIterator[str]:
        async for chunk in chunks:
            yield chunk.upper()

    chain = _chain(traced) | RunnableGenerator(words, words)

    async def main() -> str:
        with traced.tracer.start_as_current_span("request"):
            return "".join([c async for c in chain.astream({"question": "hi"}, traced.config)])

    assert asyncio.run(main()) == "ECHO: HI "
    _check(traced, MODEL_SPAN)


def test_a_tool_that_invokes_a_chain_holds_the_chains_runs(traced: Setup) -> None:
    chain = _chain(traced)

    @tool
    def ask(question: str) -> str:
        """Ask the model."""
        return str(chain.invoke({"question": question}))

    with traced.tracer.start_as_current_span("request"):
        assert ask.invoke({"question": "q"}, traced.config) == "echo: q"
    _check(traced, MODEL_SPAN)
    spans = traced.spans()
    sequence = next(s for s in spans if s.name == "RunnableSequence")
    assert parent_of(sequence, spans).name == "execute_tool ask"  # type: ignore[union-attr]


def _fail(_: Any) -> Any:
    raise RuntimeError("primary is down")
