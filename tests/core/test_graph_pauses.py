"""A LangGraph pause is not a failure, and the run that resumes it links back to it.

`interrupt()` in a node (or in a subgraph's node) and `Command(graph=Command.PARENT)` reach the
callbacks as `on_chain_error(GraphInterrupt | ParentCommand)`; their spans must end with status
UNSET, say how they ended, and carry the interrupt's value (bounded, only when content is
captured). Real `StateGraph`s with a real `InMemorySaver`, real SDK spans; the model is the
loopback one (the paid-API stand-in) where one is used.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from otel_bridge import semconv
from otel_bridge.handler import OTelCallbackHandler
from tests.support.loopback_llm import Setup
from tests.support.review_graph import ReviewState, review_graph

pytestmark = pytest.mark.usefixtures("no_warnings_logged")


def _nested_review_graph() -> StateGraph:
    graph = StateGraph(ReviewState)
    graph.add_node("outer_review", review_graph().compile())
    graph.add_edge(START, "outer_review")
    graph.add_edge("outer_review", END)
    return graph


def _thread(config: dict[str, Any]) -> dict[str, Any]:
    return {**config, "configurable": {"thread_id": str(uuid.uuid4())}}


def _by_name(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def _assert_paused(span: ReadableSpan) -> None:
    assert span.status.status_code is StatusCode.UNSET, (span.name, span.status)
    assert span.attributes[semconv.RUN_INTERRUPTED] is True, span.name
    assert span.attributes[semconv.RUN_CONTROL_FLOW] == "GraphInterrupt", span.name
    assert semconv.ERROR_TYPE not in span.attributes, span.name
    (event,) = [e for e in span.events if e.name == semconv.EVENT_INTERRUPT]
    assert event.attributes[semconv.INTERRUPT_ID]
    assert json.loads(str(event.attributes[semconv.INTERRUPT_VALUE]))["question"] == "approve?"


def _assert_no_errors(spans: list[ReadableSpan]) -> None:
    errors = [s.name for s in spans if s.status.status_code is StatusCode.ERROR]
    assert not errors, errors


def _root(spans: list[ReadableSpan]) -> ReadableSpan:
    (root,) = _roots(spans)
    return root


def _roots(spans: list[ReadableSpan]) -> list[ReadableSpan]:
    """The spans of LangChain root runs."""
    return [
        s
        for s in spans
        if semconv.RUN_ID in (s.attributes or {}) and semconv.RUN_PARENT_ID not in s.attributes
    ]


def test_an_interrupt_in_a_node_pauses_and_the_resume_links_back(traced: Setup) -> None:
    app = review_graph(traced.model).compile(checkpointer=InMemorySaver())
    config = _thread(traced.config)
    paused = app.invoke({"draft": "hello", "verdict": ""}, config)
    assert "__interrupt__" in paused
    first = traced.spans()
    _assert_no_errors(first)
    (review,) = _by_name(first, "review")
    _assert_paused(review)
    root = _root(first)
    assert root.name == "LangGraph" and root.attributes[semconv.RUN_INTERRUPTED] is True

    traced.exporter.clear()
    assert app.invoke(Command(resume="approved"), config)["verdict"] == "approved"
    second = traced.spans()
    _assert_no_errors(second)
    assert not any(semconv.RUN_INTERRUPTED in (s.attributes or {}) for s in second)
    resumed = _root(second)
    assert resumed.context.trace_id != root.context.trace_id
    (link,) = resumed.links
    assert link.context.span_id == root.context.span_id
    assert link.context.trace_id == root.context.trace_id
    assert link.attributes[semconv.LINK_TYPE] == semconv.LINK_TYPE_RESUME
    assert traced.handler.open_runs == 0


def test_an_interrupt_in_a_subgraph_node_pauses_every_level(traced: Setup) -> None:
    app = _nested_review_graph().compile(checkpointer=InMemorySaver())
    config = _thread(traced.config)
    app.invoke({"draft": "hello", "verdict": ""}, config)
    spans = traced.spans()
    _assert_no_errors(spans)
    # The subgraph's node, the subgraph's own graph run, and the parent's node holding it.
    for name in ("review", "outer_review"):
        (span,) = _by_name(spans, name)
        _assert_paused(span)
    subgraph = [s for s in _by_name(spans, "LangGraph") if semconv.RUN_PARENT_ID in s.attributes]
    _assert_paused(subgraph[0])

    traced.exporter.clear()
    assert app.invoke(Command(resume="ok"), config)["verdict"] == "ok"
    resumed = traced.spans()
    _assert_no_errors(resumed)
    assert len(_root(resumed).links) == 1


def test_a_command_to_the_parent_graph_is_not_an_error(traced: Setup) -> None:
    def hop(state: ReviewState) -> Command[Any]:
        return Command(graph=Command.PARENT, goto="finish", update={"draft": "hopped"})

    inner = StateGraph(ReviewState)
    inner.add_node("hop", hop)
    inner.add_edge(START, "hop")
    outer = StateGraph(ReviewState)
    outer.add_node("delegate", inner.compile())
    outer.add_node("finish", lambda state: {"verdict": state["draft"] + "!"})
    outer.add_edge(START, "delegate")
    outer.add_edge("finish", END)
    result = outer.compile().invoke({"draft": "a", "verdict": ""}, traced.config)
    assert result["verdict"] == "hopped!"
    spans = traced.spans()
    _assert_no_errors(spans)
    handed_off = [s for s in spans if semconv.RUN_CONTROL_FLOW in (s.attributes or {})]
    assert {s.name for s in handed_off} == {"hop", "LangGraph", "delegate"}
    for span in handed_off:
        assert span.attributes[semconv.RUN_CONTROL_FLOW] == "ParentCommand"
        assert semconv.RUN_INTERRUPTED not in span.attributes
        assert not any(e.name == semconv.EVENT_INTERRUPT for e in span.events)


def test_a_real_error_in_a_graph_stays_an_error(traced: Setup) -> None:
    def broken(state: ReviewState) -> dict[str, str]:
        raise ValueError("really broken")

    graph = StateGraph(ReviewState)
    graph.add_node("broken", broken)
    graph.add_edge(START, "broken")
    graph.add_edge("broken", END)
    with pytest.raises(ValueError, match="really broken"):
        graph.compile(checkpointer=InMemorySaver()).invoke(
            {"draft": "", "verdict": ""}, _thread(traced.config)
        )
    spans = traced.spans()
    for span in (_by_name(spans, "broken")[0], _root(spans)):
        assert span.status.status_code is StatusCode.ERROR
        assert span.attributes[semconv.ERROR_TYPE] == "ValueError"
        assert semconv.RUN_CONTROL_FLOW not in span.attributes
        assert semconv.RUN_INTERRUPTED not in span.attributes


def test_the_interrupt_value_obeys_the_content_switch_and_bound(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    def ask(state: ReviewState) -> dict[str, str]:
        return {"verdict": str(interrupt({"question": "approve?", "draft": state["draft"]}))}

    graph = StateGraph(ReviewState)
    graph.add_node("ask", ask)
    graph.add_edge(START, "ask")
    graph.add_edge("ask", END)
    app = graph.compile(checkpointer=InMemorySaver())

    private = OTelCallbackHandler(tracer_provider=provider, capture_content=False)
    app.invoke({"draft": "secret", "verdict": ""}, _thread({"callbacks": [private]}))
    (ask_span,) = _by_name(list(exporter.get_finished_spans()), "ask")
    (event,) = [e for e in ask_span.events if e.name == semconv.EVENT_INTERRUPT]
    assert semconv.INTERRUPT_VALUE not in event.attributes
    assert event.attributes[semconv.INTERRUPT_ID]

    exporter.clear()
    bounded = OTelCallbackHandler(tracer_provider=provider, max_content_length=200)
    app.invoke({"draft": "x" * 10_000, "verdict": ""}, _thread({"callbacks": [bounded]}))
    (ask_span,) = _by_name(list(exporter.get_finished_spans()), "ask")
    (event,) = [e for e in ask_span.events if e.name == semconv.EVENT_INTERRUPT]
    assert len(str(event.attributes[semconv.INTERRUPT_VALUE])) <= 200


def test_only_the_next_run_of_the_same_conversation_links_to_the_pause(traced: Setup) -> None:
    app = review_graph().compile(checkpointer=InMemorySaver())
    paused_config = _thread(traced.config)
    app.invoke({"draft": "a", "verdict": ""}, paused_config)
    traced.exporter.clear()
    # Another conversation's run does not follow the pause.
    other = review_graph().compile(checkpointer=InMemorySaver())
    other.invoke({"draft": "b", "verdict": ""}, _thread(traced.config))
    assert _root(traced.spans()).links == ()
    traced.exporter.clear()
    app.invoke(Command(resume="yes"), paused_config)
    assert len(_root(traced.spans()).links) == 1
    traced.exporter.clear()
    # Once resumed, the conversation's later runs are not linked again.
    app.invoke({"draft": "c", "verdict": ""}, paused_config)
    app.invoke(Command(resume="again"), paused_config)
    assert [len(r.links) for r in _roots(traced.spans())] == [0, 1]
