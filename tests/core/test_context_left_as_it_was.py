"""Whatever way a traced runnable is called (invoke, batch, a stream closed early, ainvoke, a
gather of twenty), the caller's OpenTelemetry context is left as it was: no run's scope stays
reachable, and a span started right after is not a child of the run."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_bridge._run_context import RunScopedContext
from otel_bridge.handler import OTelCallbackHandler
from otel_bridge.testing import FakeChatModel


def _scopes_reachable(context: Context) -> list[RunScopedContext]:
    """Run scopes reachable from `context` through contexts, dicts, lists and tuples."""
    found: list[RunScopedContext] = []
    pending: list[Any] = [context]
    seen: set[int] = set()
    while pending:
        item = pending.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, RunScopedContext):
            found.append(item)
            pending.append(item.below)
            pending.append(item.beneath_roots)
        if isinstance(item, dict):
            pending.extend(dict.values(item))
        elif isinstance(item, list | tuple):
            pending.extend(item)
    return found


def _chain(handler: OTelCallbackHandler) -> Any:
    prompt = ChatPromptTemplate.from_messages([("human", "{question}")])
    model = FakeChatModel(responses=["one two three four"])
    return (prompt | model | StrOutputParser() | RunnableLambda(str.upper)).with_config(
        callbacks=[handler]
    )


def _assert_unchanged(before: Context, *, exact: bool = True) -> None:
    """The caller's context is `before` again, and holds no run's span.

    Where LangChain ended the run in another `contextvars.Context` (async), the attach token
    cannot be reset there; by design (see `_run_context`) one closed scope may then linger,
    reading exactly as `before` and holding nothing else.
    """
    current = otel_context.get_current()
    if exact:
        assert current is before
    else:
        lingering = 0
        while isinstance(current, RunScopedContext) and not current.is_open:
            lingering += 1
            current = current.below
        assert current is before
        assert lingering <= 1
        current = otel_context.get_current()
        assert dict(current.items()) == dict(before.items())
    assert [scope for scope in _scopes_reachable(current) if scope.is_open] == []
    assert [scope for scope in _scopes_reachable(current) if dict.__len__(scope)] == []


@pytest.fixture
def outer(provider: TracerProvider) -> Iterator[Context]:
    """A request span made current by the app, as a web framework would."""
    with provider.get_tracer("app").start_as_current_span("request"):
        yield otel_context.get_current()


def test_invoke_batch_and_early_closed_stream_leave_the_callers_context_as_it_was(
    provider: TracerProvider, exporter: InMemorySpanExporter, outer: Context
) -> None:
    handler = OTelCallbackHandler(tracer_provider=provider)
    chain = _chain(handler)
    assert chain.invoke({"question": "q"}) == "ONE TWO THREE FOUR"
    _assert_unchanged(outer)
    assert len(chain.batch([{"question": "a"}, {"question": "b"}, {"question": "c"}])) == 3
    _assert_unchanged(outer)
    stream = FakeChatModel(responses=["one two three four"]).stream(
        "q", config={"callbacks": [handler]}
    )
    next(stream)
    stream.close()
    _assert_unchanged(outer)
    streamed = _chain(handler).stream({"question": "q"})
    next(streamed)
    streamed.close()
    _assert_unchanged(outer)
    assert handler.open_runs == 0
    # Every run nested under the app's request span.
    request = trace.get_current_span(outer).get_span_context()
    assert all(s.context.trace_id == request.trace_id for s in exporter.get_finished_spans())


def test_ainvoke_and_a_gather_of_twenty_leave_the_callers_context_as_it_was(
    provider: TracerProvider, outer: Context
) -> None:
    handler = OTelCallbackHandler(tracer_provider=provider)
    chain = _chain(handler)

    async def main() -> None:
        before = otel_context.get_current()
        assert await chain.ainvoke({"question": "q"}) == "ONE TWO THREE FOUR"
        _assert_unchanged(before, exact=False)
        results = await asyncio.gather(*(chain.ainvoke({"question": f"q{i}"}) for i in range(20)))
        assert len(results) == 20
        _assert_unchanged(before, exact=False)
        stream = chain.astream({"question": "q"})
        await stream.__anext__()
        await stream.aclose()
        # LangChain ends the inner runs when the event loop finalizes the inner generators.
        for _ in range(200):
            if handler.open_runs == 0:
                break
            await asyncio.sleep(0)
        assert handler.open_runs == 0
        _assert_unchanged(before, exact=False)

    asyncio.run(main())
    _assert_unchanged(outer)
    assert handler.open_runs == 0


def test_a_span_started_right_after_an_async_stream_is_closed_is_not_a_child_of_its_run(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    handler = OTelCallbackHandler(tracer_provider=provider)
    model = FakeChatModel(responses=["one two three four"]).with_config(callbacks=[handler])

    async def main() -> Any:
        stream = model.astream("q")
        await stream.__anext__()
        await stream.aclose()
        with provider.get_tracer("app").start_as_current_span("after") as after:
            pass
        for _ in range(200):
            if handler.open_runs == 0:
                break
            await asyncio.sleep(0)
        return after

    after = asyncio.run(main())
    assert handler.open_runs == 0
    finished = {s.context.span_id: s.name for s in exporter.get_finished_spans()}
    parent = after.parent
    assert parent is None or finished.get(parent.span_id) is None, finished.get(parent.span_id)
