"""The handler's memory bounds: runs that never end are ended and counted; completed runs leave
nothing behind (registry, attached contexts); malformed callback sequences cost nothing.

Real SDK spans; runs are driven through LangChain's real callback manager or, for sequences
LangChain itself never produces (ends without starts, duplicate ends), through the handler's
callback methods directly.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import logging
import uuid

import pytest
from langchain_core.callbacks import CallbackManager
from langchain_core.runnables import RunnableLambda
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_bridge import semconv
from otel_bridge._run_context import RunScopedContext
from otel_bridge.handler import OTelCallbackHandler
from otel_bridge.testing import FakeChatModel
from tests.support.clock import FakeClock


def _start_chain(handler: OTelCallbackHandler, name: str) -> None:
    """Start a chain run through LangChain's callback manager and never end it.

    It starts in a context of its own, like a request whose task died with the run open.
    """
    manager = CallbackManager(handlers=[handler])
    contextvars.copy_context().run(
        manager.on_chain_start, {"name": name}, {"input": name}, name=name
    )


def test_runs_over_the_count_limit_are_ended_and_counted(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    handler = OTelCallbackHandler(tracer_provider=provider, max_open_runs=3)
    for index in range(5):
        _start_chain(handler, f"run-{index}")
    assert handler.open_runs == 3
    assert handler.evicted_runs == 2
    ended = exporter.get_finished_spans()
    assert [s.name for s in ended] == ["run-0", "run-1"]
    for span in ended:
        assert span.status.status_code == trace.StatusCode.ERROR
        assert "open-run limit" in (span.status.description or "")
        assert span.attributes[semconv.RUN_ABANDONED] is True


def test_runs_older_than_the_age_limit_are_ended_on_the_next_start(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    clock = FakeClock()
    handler = OTelCallbackHandler(tracer_provider=provider, max_run_age_s=60, clock=clock)
    _start_chain(handler, "old")
    clock.now += 30
    _start_chain(handler, "younger")
    assert handler.open_runs == 2
    clock.now += 31  # "old" is now 61 s old, "younger" 31 s
    _start_chain(handler, "new")
    assert [s.name for s in exporter.get_finished_spans()] == ["old"]
    assert handler.open_runs == 2
    clock.now += 3600
    assert handler.end_stale_runs() == 2
    assert handler.open_runs == 0
    assert handler.evicted_runs == 3
    statuses = {s.name: s.status for s in exporter.get_finished_spans()}
    assert "maximum run age" in (statuses["younger"].description or "")


def test_completed_runs_leave_nothing_behind(provider: TracerProvider) -> None:
    """Many complete runs: no open entries, no logged problems, no growing context chain."""
    handler = OTelCallbackHandler(tracer_provider=provider, capture_content=False)
    chain = RunnableLambda(lambda x: x + 1) | RunnableLambda(lambda x: x * 2)
    model = FakeChatModel(responses=["ok"])
    for index in range(500):
        chain.invoke(index, {"callbacks": [handler]})
    model.batch(["a"] * 50, {"callbacks": [handler]})

    async def many() -> None:
        for _ in range(200):
            await model.ainvoke("x", {"callbacks": [handler]})
        # Ends in async run in a copied context, so this task still holds a closed scope:
        # at most one, however many calls this task made.
        current = otel_context.get_current()
        depth = 0
        while isinstance(current, RunScopedContext):
            assert not current.is_open
            depth += 1
            current = current.below
        assert depth <= 1

    asyncio.run(many())
    assert handler.open_runs == 0
    assert handler.evicted_runs == 0
    assert not handler._logged_problems
    gc.collect()


def test_duplicate_and_orphan_callbacks_cost_nothing(
    provider: TracerProvider, exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    handler = OTelCallbackHandler(tracer_provider=provider)
    orphan = uuid.uuid4()
    with caplog.at_level(logging.WARNING):
        # Ends, errors, tokens and events for runs that never started.
        handler.on_chain_end({"x": 1}, run_id=orphan)
        handler.on_llm_error(RuntimeError("x"), run_id=orphan)
        handler.on_tool_end("out", run_id=orphan)
        handler.on_retriever_end([], run_id=orphan)
        handler.on_llm_new_token("t", run_id=orphan)
        handler.on_text("t", run_id=orphan)
        handler.on_custom_event("e", {}, run_id=orphan)
        # A run ended twice, and a run id started twice.
        run_id = uuid.uuid4()
        handler.on_chain_start({"name": "twice"}, {}, run_id=run_id)
        handler.on_chain_end({}, run_id=run_id)
        handler.on_chain_end({}, run_id=run_id)
        handler.on_chain_error(RuntimeError("late"), run_id=run_id)
        restarted = uuid.uuid4()
        handler.on_chain_start({"name": "first"}, {}, run_id=restarted)
        handler.on_chain_start({"name": "second"}, {}, run_id=restarted)
        handler.on_chain_end({}, run_id=restarted)
    assert not caplog.records
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert set(spans) == {"twice", "first", "second"}
    assert spans["twice"].status.status_code == trace.StatusCode.UNSET
    assert spans["first"].attributes[semconv.RUN_ABANDONED] is True
    assert spans["second"].status.status_code == trace.StatusCode.UNSET
    assert handler.open_runs == 0
    assert not isinstance(otel_context.get_current(), RunScopedContext) or not (
        otel_context.get_current().is_open  # type: ignore[attr-defined]
    )


def test_bound_arguments_are_validated(provider: TracerProvider) -> None:
    with pytest.raises(ValueError, match="max_runs"):
        OTelCallbackHandler(tracer_provider=provider, max_open_runs=0)
    with pytest.raises(ValueError, match="max_age_s"):
        OTelCallbackHandler(tracer_provider=provider, max_run_age_s=0)
    with pytest.raises(ValueError, match="at least 64"):
        OTelCallbackHandler(tracer_provider=provider, max_content_length=10)


def _scopes_reachable_from_current() -> int:
    current = otel_context.get_current()
    count = 0
    while isinstance(current, RunScopedContext):
        count += 1
        current = current.below
    return count


def test_many_sibling_roots_in_one_context_stay_bounded(provider: TracerProvider) -> None:
    """Root runs started back to back in one context and never ended (a huge batch that died):
    what the context keeps alive is bounded by the open-run limit, not by the number of runs."""
    handler = OTelCallbackHandler(tracer_provider=provider, max_open_runs=100)
    manager = CallbackManager(handlers=[handler])

    def start_many() -> int:
        for index in range(3000):
            manager.on_chain_start({"name": "root"}, {"i": index}, name=f"root-{index}")
        return _scopes_reachable_from_current()

    reachable = contextvars.copy_context().run(start_many)
    assert handler.open_runs == 100
    assert handler.evicted_runs == 2900
    # The 100 open roots, plus at most one closed scope below them.
    assert reachable <= 101


def test_a_finished_batch_leaves_no_scope_in_the_callers_context(
    provider: TracerProvider,
) -> None:
    handler = OTelCallbackHandler(tracer_provider=provider)
    chain = RunnableLambda(lambda x: x + 1, name="inc") | RunnableLambda(lambda x: x, name="id")

    def run_batch() -> int:
        assert chain.batch(list(range(200)), {"callbacks": [handler]}) == list(range(1, 201))
        return _scopes_reachable_from_current()

    assert contextvars.copy_context().run(run_batch) == 0
    assert handler.open_runs == 0
