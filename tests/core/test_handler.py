"""OTelCallbackHandler: one span per run, GenAI attributes, content, errors, events, metrics.

Real LangChain runnables and real OTel SDK spans; the models are otel_bridge.testing's in-process
fakes, the stand-in for a paid LLM API.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_classic.agents import AgentExecutor, create_tool_calling_agent
from langchain_core.callbacks import CallbackManagerForChainRun
from langchain_core.callbacks.manager import dispatch_custom_event
from langchain_core.documents import Document
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langchain_core.tools import tool
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from pydantic import SecretStr
from tenacity import RetryCallState, Retrying

from otel_bridge import semconv
from otel_bridge.handler import OTelCallbackHandler
from otel_bridge.testing import FakeChatModel, FakeLLM
from tests.support.recording import metric_points, recording_provider
from tests.support.usage_model import UsageReportingChatModel


class Traced:
    """A handler on a private provider, plus readers for what it produced."""

    def __init__(self, **options: Any) -> None:
        self.provider, self.exporter = recording_provider()
        self.metric_reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.metric_reader])
        self.handler = OTelCallbackHandler(
            tracer_provider=self.provider, meter_provider=self.meter_provider, **options
        )

    @property
    def config(self) -> RunnableConfig:
        return {"callbacks": [self.handler]}

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def span(self, name: str) -> ReadableSpan:
        matches = [s for s in self.spans() if s.name == name]
        assert len(matches) == 1, f"{name!r} among {[s.name for s in self.spans()]}"
        return matches[0]

    def parent_of(self, span: ReadableSpan) -> ReadableSpan | None:
        if span.parent is None:
            return None
        return next(s for s in self.spans() if s.context.span_id == span.parent.span_id)

    def histogram_points(self, name: str) -> list[Any]:
        return metric_points(self.metric_reader, name)


@pytest.fixture
def traced() -> Iterator[Traced]:
    instance = Traced()
    yield instance
    instance.provider.shutdown()


def _json(span: ReadableSpan, key: str) -> Any:
    return json.loads(str(span.attributes[key]))


def _all_attribute_text(spans: list[ReadableSpan]) -> str:
    parts: list[str] = []
    for span in spans:
        parts.extend(f"{k}={v}" for k, v in (span.attributes or {}).items())
        for event in span.events:
            parts.extend(f"{k}={v}" for k, v in (event.attributes or {}).items())
    return "\n".join(parts)


# --- chat models -------------------------------------------------------------------------------
def test_chat_span_carries_genai_attributes(traced: Traced) -> None:
    model = FakeChatModel(
        responses=["Paris is the capital."], model_name="gpt-test", temperature=0.2, max_tokens=50
    )
    model.invoke(
        [SystemMessage(content="Be brief."), HumanMessage(content="Capital of France?")],
        {
            **traced.config,
            "tags": ["geo"],
            "metadata": {"session_id": "s-9", "team": "maps", "nested": {"no": 1}},
        },
    )
    span = traced.span("chat gpt-test")
    attributes = span.attributes
    assert attributes[semconv.RUN_TYPE] == "chat_model"
    assert attributes[semconv.RUN_NAME] == "FakeChatModel"
    assert attributes[semconv.RUN_TAGS] == ("geo",)
    assert attributes[semconv.RUN_METADATA_PREFIX + "team"] == "maps"
    assert semconv.RUN_METADATA_PREFIX + "nested" not in attributes
    assert attributes[semconv.GEN_AI_CONVERSATION_ID] == "s-9"
    assert attributes[semconv.GEN_AI_OPERATION_NAME] == "chat"
    assert attributes[semconv.GEN_AI_PROVIDER_NAME] == "fake"
    assert attributes[semconv.GEN_AI_REQUEST_MODEL] == "gpt-test"
    assert attributes[semconv.GEN_AI_RESPONSE_MODEL] == "gpt-test"
    assert attributes[semconv.GEN_AI_REQUEST_TEMPERATURE] == 0.2
    assert attributes[semconv.GEN_AI_REQUEST_MAX_TOKENS] == 50
    assert attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == 5  # "Be brief." + "Capital of France?"
    assert attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == 4
    assert attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert attributes[semconv.GEN_AI_RESPONSE_ID] == "fake-response-0"
    assert _json(span, semconv.GEN_AI_INPUT_MESSAGES) == [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": "Capital of France?"}]},
    ]
    assert _json(span, semconv.GEN_AI_OUTPUT_MESSAGES) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "Paris is the capital."}],
            "finish_reason": "stop",
        }
    ]
    assert attributes[semconv.SESSION_ID] == "s-9"
    assert semconv.USER_ID not in attributes
    assert span.status.status_code == trace.StatusCode.UNSET
    # A call to a model service is a CLIENT span (GenAI convention); the details of usage that
    # the model did not report are absent.
    assert span.kind == trace.SpanKind.CLIENT
    assert semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS not in attributes


_CACHING_USAGE = {
    "input_tokens": 120,
    "output_tokens": 30,
    "total_tokens": 150,
    "input_token_details": {"cache_read": 100, "cache_creation": 15},
    "output_token_details": {"reasoning": 22},
}


def test_cached_and_reasoning_tokens_user_and_session_from_metadata(traced: Traced) -> None:
    chain = ChatPromptTemplate.from_messages([("human", "{q}")]) | UsageReportingChatModel(
        usage=_CACHING_USAGE
    )
    chain.invoke(
        {"q": "hi"},
        {**traced.config, "metadata": {"user_id": "u-7", "session_id": "s-1"}},
    )
    (model_span,) = [s for s in traced.spans() if s.kind == trace.SpanKind.CLIENT]
    attributes = model_span.attributes
    assert attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == 120
    assert attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == 30
    assert attributes[semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 100
    assert attributes[semconv.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] == 15
    assert attributes[semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] == 22
    for span in traced.spans():
        assert span.attributes[semconv.USER_ID] == "u-7"
        assert span.attributes[semconv.SESSION_ID] == "s-1"
        if span is not model_span:
            assert span.kind == trace.SpanKind.INTERNAL


def test_tool_calls_and_tool_results_as_message_parts(traced: Traced) -> None:
    call = {"name": "add", "args": {"a": 2, "b": 3}, "id": "call-1"}
    model = FakeChatModel(responses=[AIMessage(content="", tool_calls=[call])])
    history = [
        HumanMessage(content="2+3?"),
        AIMessage(content="", tool_calls=[call]),
        ToolMessage(content="5", tool_call_id="call-1"),
    ]
    model.invoke(history, traced.config)
    span = traced.span("chat fake-chat-model")
    inputs = _json(span, semconv.GEN_AI_INPUT_MESSAGES)
    assert inputs[1] == {
        "role": "assistant",
        "parts": [
            {"type": "tool_call", "id": "call-1", "name": "add", "arguments": {"a": 2, "b": 3}}
        ],
    }
    assert inputs[2] == {
        "role": "tool",
        "parts": [{"type": "tool_call_response", "id": "call-1", "response": "5"}],
    }
    outputs = _json(span, semconv.GEN_AI_OUTPUT_MESSAGES)
    assert outputs[0]["finish_reason"] == "tool_calls"
    assert outputs[0]["parts"] == [
        {"type": "tool_call", "id": "call-1", "name": "add", "arguments": {"a": 2, "b": 3}}
    ]


def test_streaming_records_first_token_once_and_no_span_per_token(traced: Traced) -> None:
    model = FakeChatModel(responses=["one two three four"])
    assert (
        "".join(str(c.content) for c in model.stream("go", traced.config)) == "one two three four"
    )
    spans = traced.spans()
    assert [s.name for s in spans] == ["chat fake-chat-model"]
    span = spans[0]
    assert [e.name for e in span.events] == [semconv.EVENT_FIRST_TOKEN]
    ttfc = span.attributes[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK]
    assert isinstance(ttfc, float) and ttfc >= 0
    assert span.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == 4
    assert _json(span, semconv.GEN_AI_OUTPUT_MESSAGES)[0]["parts"][0]["content"] == (
        "one two three four"
    )


def test_time_to_first_chunk_uses_the_handler_clock() -> None:
    now = [100.0]
    traced = Traced(clock=lambda: now[0])
    model = FakeChatModel(responses=["a b"])
    stream = model.stream("go", traced.config)
    now[0] = 101.5
    list(stream)
    span = traced.span("chat fake-chat-model")
    # The run started at 100.0 when the stream was first advanced... the clock moved before it.
    assert span.attributes[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] == 0.0


# --- text completion -----------------------------------------------------------------------------
def test_text_completion_span(traced: Traced) -> None:
    llm = FakeLLM(responses=["four words right here"], model_name="davinci-test")
    llm.invoke("say four words", traced.config)
    span = traced.span("text_completion davinci-test")
    assert span.attributes[semconv.RUN_TYPE] == "llm"
    assert span.attributes[semconv.GEN_AI_OPERATION_NAME] == "text_completion"
    assert _json(span, semconv.LLM_PROMPTS) == ["say four words"]
    assert span.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == 3
    assert span.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == 4
    assert span.attributes[semconv.GEN_AI_RESPONSE_MODEL] == "davinci-test"
    assert _json(span, semconv.GEN_AI_OUTPUT_MESSAGES) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "four words right here"}],
            "finish_reason": "stop",
        }
    ]


# --- chains, prompts, parsers, retrievers, tools --------------------------------------------------
class _ListRetriever(BaseRetriever):
    documents: list[Document]

    def _get_relevant_documents(self, query: str, *, run_manager: Any) -> list[Document]:
        return self.documents


def test_rag_chain_tree_and_content(traced: Traced) -> None:
    retriever = _ListRetriever(
        documents=[
            Document(page_content="Paris is in France.", metadata={"source": "atlas"}, id="d1")
        ]
    )
    prompt = ChatPromptTemplate.from_messages([("human", "{context}\n\n{question}")])
    chain = (
        {
            "context": retriever | (lambda docs: "\n".join(d.page_content for d in docs)),
            "question": lambda x: x,
        }
        | prompt
        | FakeChatModel(responses=["Paris."])
        | StrOutputParser()
    )
    assert chain.invoke("Where is Paris?", traced.config) == "Paris."
    (root,) = [s for s in traced.spans() if s.parent is None]
    assert root.name == "RunnableSequence"
    assert _json(root, semconv.LANGCHAIN_INPUT) == "Where is Paris?"
    assert _json(root, semconv.LANGCHAIN_OUTPUT) == "Paris."
    retrieval = traced.span("_ListRetriever")
    assert retrieval.attributes[semconv.RUN_TYPE] == "retriever"
    # The GenAI names (trace UIs read them): the query as it is, documents with id and score.
    assert retrieval.attributes[semconv.GEN_AI_OPERATION_NAME] == "retrieval"
    assert retrieval.attributes[semconv.GEN_AI_RETRIEVAL_QUERY_TEXT] == "Where is Paris?"
    assert _json(retrieval, semconv.GEN_AI_RETRIEVAL_DOCUMENTS) == [
        {
            "id": "d1",
            "score": None,
            "content": "Paris is in France.",
            "metadata": {"source": "atlas"},
        }
    ]
    for old_name in (
        semconv.LANGCHAIN_INPUT,
        semconv.LANGCHAIN_OUTPUT,
        semconv.RETRIEVAL_DOCUMENTS,
    ):
        assert old_name not in retrieval.attributes
    assert traced.span("ChatPromptTemplate").attributes[semconv.RUN_TYPE] == "prompt"
    assert traced.span("StrOutputParser").attributes[semconv.RUN_TYPE] == "parser"
    # Every span is in the root's trace and links to its LangChain parent run.
    run_spans = {s.attributes[semconv.RUN_ID]: s for s in traced.spans()}
    for span in traced.spans():
        assert span.context.trace_id == root.context.trace_id
        parent_run = span.attributes.get(semconv.RUN_PARENT_ID)
        if parent_run is not None:
            parent = traced.parent_of(span)
            assert parent is run_spans[parent_run] or parent == run_spans[parent_run]


def test_tool_span(traced: Traced) -> None:
    @tool
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    message = add.invoke(
        {"type": "tool_call", "name": "add", "args": {"a": 2, "b": 3}, "id": "call-7"},
        traced.config,
    )
    assert message.content == "5"
    span = traced.span("execute_tool add")
    assert span.attributes[semconv.RUN_TYPE] == "tool"
    assert span.attributes[semconv.GEN_AI_OPERATION_NAME] == "execute_tool"
    assert span.attributes[semconv.GEN_AI_TOOL_NAME] == "add"
    assert span.attributes[semconv.GEN_AI_TOOL_CALL_ID] == "call-7"
    assert span.attributes[semconv.GEN_AI_TOOL_DESCRIPTION] == "Add two numbers."
    assert _json(span, semconv.GEN_AI_TOOL_CALL_ARGUMENTS) == {"a": 2, "b": 3}
    # A string result stays a string (not JSON-quoted).
    assert span.attributes[semconv.GEN_AI_TOOL_CALL_RESULT] == "5"
    assert semconv.LANGCHAIN_INPUT not in span.attributes
    assert semconv.LANGCHAIN_OUTPUT not in span.attributes


def test_retrieved_documents_carry_their_score_and_position_as_id(traced: Traced) -> None:
    retriever = _ListRetriever(
        documents=[
            Document(page_content="a", metadata={"relevance_score": 0.9}),
            Document(page_content="b", metadata={"score": 0.4}, id="doc-b"),
        ]
    )
    retriever.invoke("q", traced.config)
    span = traced.span("_ListRetriever")
    documents = _json(span, semconv.GEN_AI_RETRIEVAL_DOCUMENTS)
    assert [(d["id"], d["score"], d["content"]) for d in documents] == [
        ("0", 0.9, "a"),
        ("doc-b", 0.4, "b"),
    ]


def _add_tool() -> Any:
    @tool
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    return add


def test_create_agent_is_an_invoke_agent_span(traced: Traced) -> None:
    replies: list[str | AIMessage] = [
        AIMessage(content="", tool_calls=[{"name": "add", "args": {"a": 2, "b": 3}, "id": "c1"}]),
        "The sum is 5.",
    ]
    agent = create_agent(FakeChatModel(responses=replies), [_add_tool()], name="calculator")
    agent.invoke(
        {"messages": [("user", "2+3?")]},
        {**traced.config, "configurable": {"thread_id": "thread-1"}},
    )
    span = traced.span("invoke_agent calculator")
    assert span.attributes[semconv.RUN_TYPE] == "agent"
    assert span.attributes[semconv.GEN_AI_OPERATION_NAME] == "invoke_agent"
    assert span.attributes[semconv.GEN_AI_AGENT_NAME] == "calculator"
    assert traced.parent_of(span) is None
    tool_span = traced.span("execute_tool add")
    assert tool_span.attributes[semconv.GEN_AI_TOOL_CALL_ID] == "c1"
    # Only the agent itself is an agent span, not the graph nodes that inherit its metadata.
    assert [s.name for s in traced.spans() if s.attributes[semconv.RUN_TYPE] == "agent"] == [
        "invoke_agent calculator"
    ]
    assert {s.attributes.get(semconv.GEN_AI_CONVERSATION_ID) for s in traced.spans()} == {
        "thread-1"
    }


def test_model_spans_name_the_tools_offered_in_the_conventions_shape(traced: Traced) -> None:
    """`bind_tools` (OpenAI's nested form, what ChatOpenAI sends), Anthropic's `input_schema`
    and the older `functions=` all read as gen_ai.tool.definitions: type, name, description,
    parameters (a JSON schema), with a provider's extra fields kept."""
    FakeChatModel(responses=["ok"]).bind_tools([_add_tool()]).invoke("2+3?", traced.config)
    (offered,) = _json(traced.span("chat fake-chat-model"), semconv.GEN_AI_TOOL_DEFINITIONS)
    assert offered["type"] == "function"
    assert (offered["name"], offered["description"]) == ("add", "Add two numbers.")
    assert offered["parameters"]["properties"] == {
        "a": {"type": "integer"},
        "b": {"type": "integer"},
    }
    anthropic = {
        "name": "lookup",
        "description": "Find a city.",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        "cache_control": {"type": "ephemeral"},
    }
    legacy = {"name": "legacy", "parameters": {"type": "object"}}
    model = FakeChatModel(responses=["ok", "ok"], model_name="two")
    model.bind(tools=[anthropic]).invoke("where?", traced.config)
    model.bind(functions=[legacy]).invoke("old?", traced.config)
    first, second = [
        _json(span, semconv.GEN_AI_TOOL_DEFINITIONS)
        for span in traced.spans()
        if span.name == "chat two"
    ]
    assert first == [
        {
            "type": "function",
            "name": "lookup",
            "description": "Find a city.",
            "parameters": anthropic["input_schema"],
            "cache_control": {"type": "ephemeral"},
        }
    ]
    assert second == [{"type": "function", "name": "legacy", "parameters": {"type": "object"}}]
    # Opt-in in the convention: like prompts and answers, only with content capture on.
    quiet = Traced(capture_content=False)
    FakeChatModel(responses=["ok"]).bind_tools([_add_tool()]).invoke("2+3?", quiet.config)
    assert semconv.GEN_AI_TOOL_DEFINITIONS not in quiet.span("chat fake-chat-model").attributes
    # A model called without tools carries no definitions.
    FakeChatModel(responses=["ok"], model_name="bare").invoke("hi", traced.config)
    assert semconv.GEN_AI_TOOL_DEFINITIONS not in traced.span("chat bare").attributes


def test_agent_executor_action_and_finish_events(traced: Traced) -> None:
    replies: list[str | AIMessage] = [
        AIMessage(content="", tool_calls=[{"name": "add", "args": {"a": 2, "b": 3}, "id": "c1"}]),
        "The sum is 5.",
    ]
    prompt = ChatPromptTemplate.from_messages(
        [("human", "{input}"), MessagesPlaceholder("agent_scratchpad")]
    )
    add = _add_tool()
    model = FakeChatModel(responses=replies)
    executor = AgentExecutor(agent=create_tool_calling_agent(model, [add], prompt), tools=[add])
    assert executor.invoke({"input": "2+3?"}, traced.config)["output"] == "The sum is 5."
    span = traced.span("invoke_agent AgentExecutor")
    action, finish = span.events
    assert action.name == semconv.EVENT_AGENT_ACTION
    assert action.attributes is not None and action.attributes["tool"] == "add"
    assert json.loads(str(action.attributes["tool_input"])) == {"a": 2, "b": 3}
    assert finish.name == semconv.EVENT_AGENT_FINISH
    assert finish.attributes is not None
    assert json.loads(str(finish.attributes["return_values"])) == {"output": "The sum is 5."}


# --- events ------------------------------------------------------------------------------------
def test_retry_custom_event_and_text_become_events(traced: Traced) -> None:
    def talkative(value: str, run_manager: CallbackManagerForChainRun) -> str:
        run_manager.on_text("thinking out loud")
        # What LangChain's provider retry decorator reports before sleeping between attempts.
        retry_state = RetryCallState(retry_object=Retrying(), fn=None, args=(), kwargs={})
        try:
            raise ConnectionError("transient")
        except ConnectionError as error:
            retry_state.set_exception((type(error), error, error.__traceback__))
        run_manager.on_retry(retry_state)
        dispatch_custom_event("progress", {"step": 1})
        return value

    assert RunnableLambda(talkative, name="talkative").invoke("x", traced.config) == "x"
    talk = traced.span("talkative")
    assert [e.name for e in talk.events] == [
        semconv.EVENT_TEXT,
        semconv.EVENT_RETRY,
        semconv.EVENT_CUSTOM,
    ]
    text, retry, custom = talk.events
    assert text.attributes is not None
    assert json.loads(str(text.attributes["text"])) == "thinking out loud"
    assert retry.attributes is not None
    assert retry.attributes["attempt"] == 1
    assert retry.attributes[semconv.ERROR_TYPE] == "ConnectionError"
    assert custom.attributes is not None and custom.attributes["name"] == "progress"
    assert json.loads(str(custom.attributes["data"])) == {"step": 1}


# --- errors ------------------------------------------------------------------------------------
class _Boom(RuntimeError):
    pass


def test_model_error_marks_spans_and_propagates_unchanged(traced: Traced) -> None:
    error = _Boom("provider down")
    chain = ChatPromptTemplate.from_messages([("human", "{q}")]) | FakeChatModel(error=error)
    with pytest.raises(_Boom) as raised:
        chain.invoke({"q": "x"}, traced.config)
    assert raised.value is error
    for name in ("chat fake-chat-model", "RunnableSequence"):
        span = traced.span(name)
        assert span.status.status_code == trace.StatusCode.ERROR
        assert span.attributes[semconv.ERROR_TYPE] == "_Boom"
        (event,) = [e for e in span.events if e.name == "exception"]
        assert event.attributes is not None
        assert event.attributes["exception.message"] == "provider down"
    assert traced.handler.open_runs == 0


def test_async_tool_error(traced: Traced) -> None:
    @tool
    async def fail(x: int) -> int:
        """Always fails."""
        raise ValueError("nope")

    with pytest.raises(ValueError, match="nope"):
        asyncio.run(fail.ainvoke({"x": 1}, traced.config))
    span = traced.span("execute_tool fail")
    assert span.status.status_code == trace.StatusCode.ERROR
    assert span.attributes[semconv.ERROR_TYPE] == "ValueError"


def test_stream_error_after_some_chunks(traced: Traced) -> None:
    model = FakeChatModel(responses=["a b c"], error=_Boom("cut"), error_after_chunks=2)
    with pytest.raises(_Boom):
        list(model.stream("x", traced.config))
    span = traced.span("chat fake-chat-model")
    assert span.status.status_code == trace.StatusCode.ERROR
    assert traced.handler.open_runs == 0


# --- content capture, redaction, secrets, bounds -----------------------------------------------
def test_capture_content_off_keeps_metadata_drops_content() -> None:
    traced = Traced(capture_content=False)
    chain = ChatPromptTemplate.from_messages([("human", "{q}")]) | FakeChatModel(
        responses=["secret answer"]
    )
    chain.invoke({"q": "private question"}, traced.config)
    text = _all_attribute_text(traced.spans())
    assert "private question" not in text and "secret answer" not in text
    span = traced.span("chat fake-chat-model")
    assert span.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == 2
    for key in (
        semconv.GEN_AI_INPUT_MESSAGES,
        semconv.GEN_AI_OUTPUT_MESSAGES,
        semconv.LANGCHAIN_INPUT,
        semconv.LANGCHAIN_OUTPUT,
    ):
        assert all(key not in s.attributes for s in traced.spans())


@pytest.mark.parametrize(
    ("env", "argument", "captured"),
    [
        (None, None, True),
        ("false", None, False),
        ("False", None, False),
        ("true", None, True),
        ("false", True, True),
        ("true", False, False),
    ],
)
def test_capture_content_precedence(
    monkeypatch: pytest.MonkeyPatch, env: str | None, argument: bool | None, captured: bool
) -> None:
    if env is None:
        monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", raising=False)
    else:
        monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", env)
    traced = Traced(capture_content=argument)
    FakeChatModel(responses=["ok"]).invoke("hello", traced.config)
    span = traced.span("chat fake-chat-model")
    assert (semconv.GEN_AI_INPUT_MESSAGES in span.attributes) is captured


@pytest.mark.parametrize(
    ("argument", "specific", "generic", "expected"),
    [
        (None, None, None, 64 * 1024),
        (None, None, "300", 300),
        (None, "200", "300", 200),
        (100, "200", "300", 100),
    ],
)
def test_max_content_length_precedence(
    monkeypatch: pytest.MonkeyPatch,
    argument: int | None,
    specific: str | None,
    generic: str | None,
    expected: int,
) -> None:
    for name, value in (
        ("OTEL_BRIDGE_MAX_CONTENT_LENGTH", specific),
        ("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", generic),
    ):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    traced = Traced(max_content_length=argument)
    long_text = "word " * 40_000
    RunnableLambda(lambda x: x, name="echo").invoke({"text": long_text}, traced.config)
    span = traced.span("echo")
    value = str(span.attributes[semconv.LANGCHAIN_INPUT])
    assert len(value) <= expected
    assert len(value) > expected // 2
    # Still valid JSON, and still the same shape.
    decoded = json.loads(value)
    assert isinstance(decoded, dict) and decoded["text"].startswith("word word")


def test_redact_hook_rewrites_every_captured_string() -> None:
    traced = Traced(redact=lambda text: text.replace("alice@example.com", "<email>"))
    retriever = _ListRetriever(documents=[Document(page_content="mail alice@example.com")])
    chain = (
        {"docs": retriever, "q": lambda x: x}
        | ChatPromptTemplate.from_messages([("human", "{q} {docs}")])
        | FakeChatModel(
            respond=lambda messages: f"wrote to alice@example.com: {messages[-1].content}"
        )
    )
    chain.invoke("contact alice@example.com", traced.config)
    text = _all_attribute_text(traced.spans())
    assert "alice@example.com" not in text
    assert "<email>" in text


class _KeyedModel(FakeChatModel):
    api_key: SecretStr = SecretStr("sk-live-0123456789")

    @property
    def lc_secrets(self) -> dict[str, str]:
        return {"api_key": "FAKE_API_KEY"}


def test_api_keys_and_secret_values_never_reach_attributes(traced: Traced) -> None:
    model = _KeyedModel(responses=["fine"])
    chain = RunnableLambda(lambda x: x["question"], name="unwrap") | model
    chain.invoke(
        {
            "question": "hi",
            "openai_api_key": "sk-live-0123456789",
            "token": SecretStr("sk-live-0123456789"),
        },
        {**traced.config, "metadata": {"api_key": "sk-live-0123456789", "user": "u1"}},
    )
    text = _all_attribute_text(traced.spans())
    assert "sk-live-0123456789" not in text
    assert "langchain.run.metadata.user=u1" in text


# --- metrics and usage summary -------------------------------------------------------------------
def test_metrics_and_usage_summary(traced: Traced) -> None:
    model = FakeChatModel(responses=["two words"], model_name="m-1")
    model.invoke("one", traced.config)
    model.invoke("one two", traced.config)
    FakeLLM(responses=["x y z"], model_name="m-2").invoke("p", traced.config)
    with pytest.raises(_Boom):
        FakeChatModel(error=_Boom("x"), model_name="m-3").invoke("q", traced.config)

    assert traced.handler.usage_metadata == {
        "m-1": {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7},
        "m-2": {"input_tokens": 1, "output_tokens": 3, "total_tokens": 4},
    }
    durations = traced.histogram_points(semconv.METRIC_OPERATION_DURATION)
    by_model = {p.attributes[semconv.GEN_AI_REQUEST_MODEL]: p for p in durations}
    assert by_model["m-1"].count == 2
    assert by_model["m-1"].attributes[semconv.GEN_AI_OPERATION_NAME] == "chat"
    assert by_model["m-1"].attributes[semconv.GEN_AI_RESPONSE_MODEL] == "m-1"
    assert by_model["m-2"].attributes[semconv.GEN_AI_OPERATION_NAME] == "text_completion"
    assert by_model["m-3"].attributes[semconv.ERROR_TYPE] == "_Boom"
    tokens = {
        (p.attributes[semconv.GEN_AI_REQUEST_MODEL], p.attributes[semconv.GEN_AI_TOKEN_TYPE]): p
        for p in traced.histogram_points(semconv.METRIC_TOKEN_USAGE)
    }
    assert tokens[("m-1", "input")].sum == 3 and tokens[("m-1", "input")].count == 2
    assert tokens[("m-1", "output")].sum == 4
    assert tokens[("m-2", "output")].sum == 3


# --- options -------------------------------------------------------------------------------------
def test_ignore_options_skip_those_runs() -> None:
    traced = Traced(ignore_chain=True)
    chain = ChatPromptTemplate.from_messages([("human", "{q}")]) | FakeChatModel()
    chain.invoke({"q": "x"}, traced.config)
    assert [s.name for s in traced.spans()] == ["chat fake-chat-model"]

    traced = Traced(ignore_chat_model=True, ignore_llm=True)
    chain.invoke({"q": "x"}, traced.config)
    assert sorted(s.name for s in traced.spans()) == ["ChatPromptTemplate", "RunnableSequence"]
    assert traced.handler.open_runs == 0


def test_defaults_match_the_contract() -> None:
    handler = Traced().handler
    assert handler.raise_error is False
    assert handler.run_inline is True
    assert handler.capture_content is True


def test_handler_problems_never_reach_the_call_unless_raise_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken_redact(text: str) -> str:
        raise RuntimeError("redactor bug")

    traced = Traced(redact=broken_redact)
    with caplog.at_level(logging.WARNING, logger="otel_bridge"):
        for _ in range(3):
            assert RunnableLambda(lambda x: x, name="echo").invoke("hi", traced.config) == "hi"
    spans = traced.spans()
    assert len(spans) == 3
    assert all(semconv.LANGCHAIN_INPUT not in s.attributes for s in spans)
    assert all(s.attributes[semconv.RUN_NAME] == "echo" for s in spans)
    # One line per kind of problem (input and output each), not one per occurrence.
    ours = [r for r in caplog.records if r.name == "otel_bridge"]
    assert len(ours) == 2

    strict = Traced(redact=broken_redact, raise_error=True)
    with pytest.raises(RuntimeError, match="redactor bug"):
        RunnableLambda(lambda x: x, name="echo").invoke("hi", strict.config)


def test_suppression_key_silences_the_handler(traced: Traced) -> None:
    from opentelemetry import context
    from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY

    token = context.attach(context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
    try:
        FakeChatModel().invoke("x", traced.config)
    finally:
        context.detach(token)
    assert traced.spans() == []
    assert traced.handler.open_runs == 0
    FakeChatModel().invoke("x", traced.config)
    assert len(traced.spans()) == 1


# --- the fakes themselves ------------------------------------------------------------------------
def test_fake_chat_model_streams_tool_calls_and_usage(traced: Traced) -> None:
    call = {"name": "add", "args": {"a": 1, "b": 2}, "id": "call-9"}
    model = FakeChatModel(responses=[AIMessage(content="adding now", tool_calls=[call])])
    bound = model.bind_tools([_add_tool()])
    chunks = list(bound.stream("1+2?", traced.config))
    assert len(chunks) == 2
    merged = chunks[0] + chunks[1]
    assert merged.tool_calls == [{**call, "type": "tool_call"}]
    assert merged.usage_metadata == {"input_tokens": 1, "output_tokens": 2, "total_tokens": 3}
    span = traced.span("chat fake-chat-model")
    assert span.attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS] == ("tool_calls",)
    output = _json(span, semconv.GEN_AI_OUTPUT_MESSAGES)[0]
    assert output["parts"][-1] == {
        "type": "tool_call",
        "id": "call-9",
        "name": "add",
        "arguments": {"a": 1, "b": 2},
    }


def test_fake_models_open_client_spans_under_their_run(traced: Traced) -> None:
    model = FakeChatModel(client_span=True, client_tracer_provider=traced.provider)
    llm = FakeLLM(client_span=True, client_tracer_provider=traced.provider)
    asyncio.run(model.ainvoke("a", traced.config))
    llm.invoke("b", traced.config)
    # (Async text-completion models start their runs in child tasks: see test_instrument.py.)
    clients = [s for s in traced.spans() if s.name.startswith("POST ")]
    assert all(c.kind == trace.SpanKind.CLIENT for c in clients)
    parents = sorted(traced.parent_of(c).name for c in clients)  # type: ignore[union-attr]
    assert parents == ["chat fake-chat-model", "text_completion fake-completion-model"]
