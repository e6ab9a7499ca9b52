"""A tool error LangChain handles is an error of the tool, and of nothing around it.

`handle_tool_error` (bool, str, callable) and `handle_validation_error` turn the error into the
tool's output, reported through `on_tool_end`; LangGraph's `ToolNode` reports the tool's error
through `on_tool_error` and carries on. The tool span must be ERROR with `error.type` and the
error text as status description; the calling chain, the agent and the next model call stay OK.
Real tools, a real `ToolNode` in a real `StateGraph`, a real `create_agent` agent on the fake chat
model (the paid-API stand-in), real SDK spans.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import StructuredTool, ToolException, tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from otel_bridge import semconv
from otel_bridge.handler import OTelCallbackHandler
from otel_bridge.testing import FakeChatModel

pytestmark = pytest.mark.usefixtures("no_warnings_logged")

CALL = {"name": "lookup", "args": {"term": "x"}, "id": "call-1", "type": "tool_call"}


def _lookup(term: str) -> str:
    raise ToolException(f"no entry for {term}")


def _tool(**options: Any) -> StructuredTool:
    return StructuredTool.from_function(
        _lookup, name="lookup", description="Look a term up.", **options
    )


def _count(term: int) -> str:
    return str(term)


def _counting_tool(**options: Any) -> StructuredTool:
    return StructuredTool.from_function(_count, name="count", description="Count.", **options)


@pytest.fixture
def handler(provider: TracerProvider) -> OTelCallbackHandler:
    return OTelCallbackHandler(tracer_provider=provider)


def _tool_span(exporter: InMemorySpanExporter, name: str = "execute_tool lookup") -> ReadableSpan:
    (span,) = [s for s in exporter.get_finished_spans() if s.name == name]
    return span


def _assert_tool_error(span: ReadableSpan, error_type: str, description: str) -> None:
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[semconv.ERROR_TYPE] == error_type
    assert span.status.description == description


def _describe(error: ToolException) -> str:
    return f"described: {error}"


@pytest.mark.parametrize(
    ("flag", "description"),
    [
        (True, "no entry for x"),
        ("the lookup service is down", "the lookup service is down"),
        (_describe, "described: no entry for x"),
    ],
    ids=["bool", "str", "callable"],
)
@pytest.mark.parametrize("as_tool_call", [True, False], ids=["tool_call", "plain_input"])
def test_a_handled_tool_error_makes_the_tool_span_an_error(
    handler: OTelCallbackHandler,
    exporter: InMemorySpanExporter,
    flag: bool | str | Callable[[ToolException], str],
    description: str,
    as_tool_call: bool,
) -> None:
    lookup = _tool(handle_tool_error=flag)
    config = {"callbacks": [handler]}
    result = lookup.invoke(CALL if as_tool_call else {"term": "x"}, config)
    assert (result.content if as_tool_call else result) == description
    span = _tool_span(exporter)
    _assert_tool_error(span, "ToolException", description)
    (event,) = span.events
    assert event.name == "exception"
    assert event.attributes["exception.type"].endswith("ToolException")
    assert event.attributes["exception.escaped"] == "False"


@pytest.mark.parametrize(
    ("flag", "description"),
    [
        (True, "Tool input validation error"),
        ("give an integer", "give an integer"),
        (lambda error: f"invalid: {error.error_count()} error", "invalid: 1 error"),
    ],
    ids=["bool", "str", "callable"],
)
def test_a_handled_validation_error_makes_the_tool_span_an_error(
    handler: OTelCallbackHandler, exporter: InMemorySpanExporter, flag: Any, description: str
) -> None:
    count = _counting_tool(handle_validation_error=flag)
    call = {"name": "count", "args": {"term": "not a number"}, "id": "c", "type": "tool_call"}
    assert count.invoke(call, {"callbacks": [handler]}).status == "error"
    _assert_tool_error(_tool_span(exporter, "execute_tool count"), "ValidationError", description)


def test_a_tool_returning_an_error_message_itself_is_an_error(
    handler: OTelCallbackHandler, exporter: InMemorySpanExporter
) -> None:
    @tool
    def lookup(term: str, tool_call_id: str = "") -> ToolMessage:
        """Look a term up."""
        return ToolMessage("not found", tool_call_id="call-1", status="error")

    lookup.invoke(CALL, {"callbacks": [handler]})
    _assert_tool_error(_tool_span(exporter), "tool_error", "not found")


def test_successful_tools_and_unrelated_runs_stay_ok(
    handler: OTelCallbackHandler, exporter: InMemorySpanExporter
) -> None:
    failing = _tool(handle_tool_error=True)
    count = _counting_tool()
    # A handled error reached by a run without this handler leaves nothing behind for the next.
    failing.invoke({"term": "x"})
    assert count.invoke({"term": 3}, {"callbacks": [handler]}) == "3"
    span = _tool_span(exporter, "execute_tool count")
    assert span.status.status_code is StatusCode.UNSET
    assert semconv.ERROR_TYPE not in span.attributes


def test_tool_node_errors_are_errors_of_the_tool_only(
    handler: OTelCallbackHandler, exporter: InMemorySpanExporter
) -> None:
    def crash(term: str) -> str:
        raise ValueError(f"crashed on {term}")

    crashing = StructuredTool.from_function(crash, name="crash", description="Crash.")
    graph = StateGraph(MessagesState)
    graph.add_node("tools", ToolNode([crashing, _counting_tool()], handle_tool_errors=True))
    graph.add_edge(START, "tools")
    graph.add_edge("tools", END)
    calls = [
        {"name": "crash", "args": {"term": "x"}, "id": "a"},
        {"name": "count", "args": {"term": "nan"}, "id": "b"},
    ]
    result = graph.compile().invoke(
        {"messages": [AIMessage(content="", tool_calls=calls)]}, {"callbacks": [handler]}
    )
    assert [m.status for m in result["messages"][1:]] == ["error", "error"]
    spans = list(exporter.get_finished_spans())
    crash_span = _tool_span(exporter, "execute_tool crash")
    assert crash_span.status.status_code is StatusCode.ERROR
    assert crash_span.attributes[semconv.ERROR_TYPE] == "ValueError"
    count_span = _tool_span(exporter, "execute_tool count")
    assert count_span.status.status_code is StatusCode.ERROR
    assert count_span.attributes[semconv.ERROR_TYPE] == "ValidationError"
    others = [s for s in spans if not s.name.startswith("execute_tool")]
    assert others and all(s.status.status_code is StatusCode.UNSET for s in others)


def test_an_agent_goes_on_after_a_handled_tool_error_and_stays_ok(
    handler: OTelCallbackHandler, exporter: InMemorySpanExporter
) -> None:
    model = FakeChatModel(
        responses=[
            AIMessage(
                content="", tool_calls=[{"name": "lookup", "args": {"term": "x"}, "id": "1"}]
            ),
            "It could not be found.",
        ]
    )
    agent = create_agent(model, tools=[_tool(handle_tool_error=True)])
    result = agent.invoke({"messages": [("user", "look x up")]}, {"callbacks": [handler]})
    assert result["messages"][-1].content == "It could not be found."
    _assert_tool_error(_tool_span(exporter), "ToolException", "no entry for x")
    others = [s for s in exporter.get_finished_spans() if s.name != "execute_tool lookup"]
    models = [s for s in others if s.name.startswith("chat ")]
    assert len(models) == 2
    assert all(s.status.status_code is StatusCode.UNSET for s in others), [
        s.name for s in others if s.status.status_code is not StatusCode.UNSET
    ]


def test_a_handled_error_of_an_async_tool_call_is_an_error_too(
    handler: OTelCallbackHandler, exporter: InMemorySpanExporter
) -> None:
    async def lookup(term: str) -> str:
        raise ToolException(f"no entry for {term}")

    tool_ = StructuredTool.from_function(
        coroutine=lookup, name="lookup", description="Look a term up.", handle_tool_error=True
    )
    result = asyncio.run(tool_.ainvoke(CALL, {"callbacks": [handler]}))
    assert result.status == "error"
    _assert_tool_error(_tool_span(exporter), "ToolException", "no entry for x")
