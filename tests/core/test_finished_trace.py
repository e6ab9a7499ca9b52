"""FinishedTrace helpers over real handler output for real LangChain chains (tests/chains.py).

The only stand-in is the LLM API: the chains use otel_bridge.testing's fake models.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from opentelemetry import trace as trace_api
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from otel_bridge import semconv
from otel_bridge.langchain_views import FinishedTrace
from tests import chains
from tests.support.arbitrary_traces import arbitrary_traces, record
from tests.support.recording import recording_provider
from tests.support.spool_batches import request_of


@pytest.fixture(scope="module")
def rag() -> FinishedTrace:
    return chains.tagged_rag_trace()


@pytest.fixture(scope="module")
def agent() -> FinishedTrace:
    return chains.trace_of(chains.agent(), {"messages": [("user", chains.AGENT_QUESTION)]})


# --- LLM calls ------------------------------------------------------------------------------


def test_llm_call_of_a_chat_model_in_a_rag_chain(rag: FinishedTrace) -> None:
    (call,) = rag.llm_calls()
    assert call.run_type == "chat_model"
    assert call.prompt is None
    assert [m.role for m in call.messages] == ["system", "user"]
    assert call.messages[1].content == chains.QUESTION
    assert "It flows into the North Sea near Rotterdam." in call.messages[0].content
    assert call.generations == (chains.RAG_ANSWER,)
    assert call.output_messages[0].role == "assistant"
    assert call.model == "fake-rag-model"
    assert call.provider == "fake"
    assert call.input_tokens is not None and call.input_tokens > 0
    assert call.output_tokens == len(chains.RAG_ANSWER.split())
    assert call.finish_reasons == ("stop",)
    assert call.error is None
    assert call.latency_s >= 0
    assert call.trace_id == rag.trace_id
    assert rag.span(call.span_id) is not None


def test_llm_call_of_a_text_completion_model() -> None:
    trace = chains.trace_of(chains.completion_chain(), {"topic": "otel"})
    (call,) = trace.llm_calls()
    assert call.run_type == "llm"
    assert call.prompt == "Tell a story about otel."
    assert [(m.role, m.content) for m in call.messages] == [("user", "Tell a story about otel.")]
    assert call.generations == (chains.COMPLETION,)
    assert call.temperature == pytest.approx(0.2)
    assert call.model == "fake-completion-model"


def test_plain_chat_call() -> None:
    trace = chains.trace_of(chains.chat_model(), chains.chat_messages())
    (call,) = trace.llm_calls()
    assert [(m.role, m.content) for m in call.messages] == [
        ("system", "You are a polite assistant."),
        ("user", "Say hello in French."),
    ]
    assert call.generations == (chains.CHAT_ANSWER,)
    assert trace.root.span_id == call.span_id


# --- agents and tools -----------------------------------------------------------------------


def test_tool_calls(agent: FinishedTrace) -> None:
    (call,) = agent.tool_calls()
    assert call.name == "get_weather"
    assert call.call_id == "call_weather_1"
    assert call.arguments == {"city": "Paris"}
    assert call.result == "sunny and 21 degrees in Paris"
    assert call.error is None


def test_agent_steps_from_the_model_tool_calls(agent: FinishedTrace) -> None:
    (step,) = agent.agent_steps()
    assert step.tool == "get_weather"
    assert step.tool_input == {"city": "Paris"}
    assert step.log == "Let me check the weather."
    calls = agent.llm_calls()
    assert len(calls) == 2
    assert calls[-1].generations == (chains.AGENT_ANSWER,)
    assert calls[0].output_messages[0].tool_calls[0]["id"] == "call_weather_1"
    assert calls[-1].messages[-1].role == "tool"
    assert calls[-1].messages[-1].tool_call_id == "call_weather_1"


def test_agent_steps_from_agent_action_events() -> None:
    trace = chains.trace_of(chains.classic_agent(), {"input": chains.AGENT_QUESTION})
    (step,) = trace.agent_steps()
    assert step.tool == "get_weather"
    assert step.tool_input == {"city": "Paris"}
    assert "Checking the weather tool." in step.log
    assert trace.root.attributes[semconv.RUN_NAME] == "AgentExecutor"
    assert trace.root_output() == {"output": chains.AGENT_ANSWER}
    assert [c.name for c in trace.tool_calls()] == ["get_weather"]


# --- errors, root input/output, tags, metadata ----------------------------------------------


def test_errors_of_a_failing_chain() -> None:
    trace = chains.trace_of(
        chains.failing_chain(), {"question": "?"}, expect_error=chains.ChainFailedError
    )
    errors = trace.errors()
    assert errors
    assert {e.error_type for e in errors} == {"ChainFailedError"}
    assert any("cannot handle" in e.message for e in errors)
    assert trace.root.status_code == "ERROR"


def test_root_input_output_tags_metadata(rag: FinishedTrace) -> None:
    assert rag.root_input() == chains.QUESTION
    assert rag.root_output() == chains.RAG_ANSWER
    assert rag.tags()[:2] == ("rag", "unit-test")
    metadata = rag.metadata()
    assert metadata["user"] == "ada"
    assert metadata["session"] == 7


# --- navigation and JSON --------------------------------------------------------------------


def test_navigation(rag: FinishedTrace) -> None:
    root = rag.root
    assert root.parent_span_id is None
    assert root.attributes[semconv.RUN_NAME] == "RunnableSequence"
    children = rag.children(root)
    assert [c.attributes[semconv.RUN_TYPE] for c in children] == [
        "chain",
        "prompt",
        "chat_model",
        "parser",
    ]
    assert all(rag.parent(c) == root for c in children)
    assert len(list(rag.descendants(root))) == len(rag.spans) - 1
    run_id = children[2].attributes[semconv.RUN_ID]
    assert rag.by_run_id(run_id) == children[2]
    assert rag.by_run_id("no-such-run") is None
    assert rag.run_root() == root


def test_json_round_trip_is_exact(rag: FinishedTrace, agent: FinishedTrace) -> None:
    for trace in (rag, agent):
        text = trace.to_json()
        again = FinishedTrace.from_json(text)
        assert again == trace
        assert again.to_json() == text
        assert json.loads(text)["trace_id"] == format(trace.trace_id, "032x")


def test_spans_in_any_order_give_the_same_trace(rag: FinishedTrace) -> None:
    shuffled = FinishedTrace.from_records(reversed(rag.spans))
    assert shuffled == rag


def test_from_spans_rejects_mixed_traces() -> None:
    first = chains.trace_of(chains.chat_model(), chains.chat_messages())
    second = chains.trace_of(chains.chat_model(), chains.chat_messages())
    with pytest.raises(ValueError, match="one trace id"):
        FinishedTrace.from_records([*first.spans, *second.spans])


def test_a_span_under_a_remote_parent_is_the_local_root() -> None:
    provider, memory = recording_provider()
    remote = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    context = trace_api.set_span_in_context(NonRecordingSpan(remote))
    tracer = provider.get_tracer("test")
    with (
        tracer.start_as_current_span("server", context=context),
        tracer.start_as_current_span("inner"),
    ):
        pass
    trace = FinishedTrace.from_spans(memory.get_finished_spans())
    assert trace.root.name == "server"
    assert trace.root.parent_span_id == 0xDEF
    assert trace.root.parent_is_remote
    assert not trace.span(trace.children(trace.root)[0].span_id).is_local_root  # type: ignore[union-attr]


# --- malformed attributes cost one field, never raise ---------------------------------------


def test_malformed_model_attributes_cost_only_their_field() -> None:
    trace = FinishedTrace.from_records(
        [
            record(
                {
                    semconv.RUN_TYPE: "chat_model",
                    semconv.GEN_AI_INPUT_MESSAGES: '[{"role": "user", "parts": [{"type": "te',
                    semconv.GEN_AI_OUTPUT_MESSAGES: json.dumps(
                        [{"role": "assistant", "parts": [{"type": "text", "content": "hi"}]}]
                    ),
                    semconv.GEN_AI_USAGE_INPUT_TOKENS: "many",
                    semconv.GEN_AI_RESPONSE_MODEL: 42,
                }
            )
        ]
    )
    (call,) = trace.llm_calls()
    assert call.messages == ()
    assert call.generations == ("hi",)
    assert call.input_tokens is None
    assert call.model is None


@settings(max_examples=150, deadline=None)
@given(arbitrary_traces())
def test_helpers_never_raise_on_arbitrary_attributes(trace: FinishedTrace) -> None:
    for helper in (
        trace.llm_calls,
        trace.tool_calls,
        trace.agent_steps,
        trace.errors,
        trace.root_input,
        trace.root_output,
        trace.tags,
        trace.metadata,
    ):
        helper()
    assert FinishedTrace.from_json(trace.to_json()).spans == trace.spans


def test_helpers_answer_the_same_for_spans_decoded_from_otlp(rag: FinishedTrace) -> None:
    """In-process spans and the receiver's OTLP round trip (protobuf bytes) give one answer."""
    from otel_bridge import otlp

    wire = request_of(rag.spans).SerializeToString()
    decoded = FinishedTrace.from_spans(otlp.spans_from_request(otlp.decode_protobuf(wire)))
    assert decoded.llm_calls() == rag.llm_calls()
    assert decoded.root == rag.root
    assert (decoded.tags(), decoded.metadata()) == (rag.tags(), rag.metadata())
    assert (decoded.root_input(), decoded.root_output()) == (rag.root_input(), rag.root_output())


def test_tool_and_retriever_spans_written_before_the_genai_names_still_read() -> None:
    """Spools and files from earlier releases hold `langchain.input`/`langchain.output` and
    `langchain.retrieval.documents` on tool and retriever spans."""
    provider, memory = recording_provider()
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("chain", attributes={semconv.RUN_TYPE: "chain"}):
        with tracer.start_as_current_span(
            "execute_tool add",
            attributes={
                semconv.RUN_TYPE: "tool",
                semconv.GEN_AI_TOOL_NAME: "add",
                semconv.LANGCHAIN_INPUT: json.dumps({"a": 1}),
                semconv.LANGCHAIN_OUTPUT: json.dumps("2"),
            },
        ):
            pass
        with tracer.start_as_current_span(
            "retriever",
            attributes={
                semconv.RUN_TYPE: "retriever",
                semconv.LANGCHAIN_INPUT: json.dumps("where?"),
                semconv.RETRIEVAL_DOCUMENTS: json.dumps(
                    [{"page_content": "here", "metadata": {}, "id": None}]
                ),
            },
        ):
            pass
    trace = FinishedTrace.from_spans(memory.get_finished_spans())
    (call,) = trace.tool_calls()
    assert (call.arguments, call.result) == ({"a": 1}, "2")
    retriever = next(run for run in trace.runs() if run.run_type == "retriever")
    assert retriever.inputs == "where?"
    assert [d.page_content for d in retriever.documents] == ["here"]
