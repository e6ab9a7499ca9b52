"""`FinishedTrace.runs()` / `run_of()`: the per-run view over real handler output for real
LangChain chains (tests/chains.py), and over malformed attributes.

The only stand-in is the LLM API: the chains use otel_bridge.testing's fake models.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_classic.chains import LLMChain
from langchain_core.callbacks import CallbackManagerForChainRun, dispatch_custom_event
from langchain_core.prompts import PromptTemplate
from langchain_core.runnables import Runnable, RunnableLambda
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt

import otel_bridge
from otel_bridge import semconv
from otel_bridge.langchain_views import FinishedTrace, RunEvent, TracedMessage, TracedRun
from otel_bridge.testing import FakeLLM
from otel_bridge.trace_tree import EventRecord, SpanRecord
from tests import chains
from tests.contract import make_spans

# Deep enough that json.loads gives up with RecursionError rather than ValueError.
_TOO_DEEP = "[" * 100_000


@pytest.fixture(scope="module")
def rag() -> FinishedTrace:
    return chains.trace_of(
        chains.rag_chain(),
        chains.QUESTION,
        {"tags": ["rag"], "metadata": {"user": "ada", "session": 7}},
    )


def _one(runs: tuple[TracedRun, ...], run_type: str) -> TracedRun:
    (run,) = [run for run in runs if run.run_type == run_type]
    return run


# --- what every run carries ------------------------------------------------------------------


def test_one_run_per_langchain_span_in_start_order(rag: FinishedTrace) -> None:
    runs = rag.runs()

    assert [run.span for run in runs] == [s for s in rag.spans if semconv.RUN_ID in s.attributes]
    starts = [run.start_time_ns for run in runs]
    assert starts == sorted(starts)
    assert all(run.latency_s == run.span.duration_s for run in runs)
    assert all(run.status == "ok" and run.error_type is None for run in runs)


def test_runs_link_to_their_parent_runs(rag: FinishedTrace) -> None:
    runs = rag.runs()
    by_run_id = {run.run_id: run for run in runs}

    root = runs[0]
    assert (root.run_type, root.name, root.parent_run_id) == ("chain", "RunnableSequence", None)
    assert root.span == rag.run_root()
    for run in runs[1:]:
        parent = by_run_id[run.parent_run_id]
        assert rag.parent(run.span) == parent.span
    assert len(by_run_id) == len(runs)


def test_chain_runs_decode_their_inputs_and_outputs(rag: FinishedTrace) -> None:
    root = rag.runs()[0]
    prompt = _one(rag.runs(), semconv.RUN_TYPE_PROMPT)

    assert (root.inputs, root.outputs) == (chains.QUESTION, chains.RAG_ANSWER)
    assert prompt.inputs["question"] == chains.QUESTION
    assert "Rhine" in prompt.inputs["context"]
    assert prompt.outputs["messages"][0]["role"] == "system"


def test_a_retriever_run_carries_its_documents(rag: FinishedTrace) -> None:
    retriever = _one(rag.runs(), semconv.RUN_TYPE_RETRIEVER)

    assert retriever.inputs == chains.QUESTION
    assert [d.metadata["source"] for d in retriever.documents] == ["rhine.txt", "danube.txt"]
    assert retriever.documents[0].page_content == chains.DOCUMENTS[0].page_content
    assert "InMemoryVectorStore" in retriever.tags


def test_a_chat_model_run_gives_messages_in_and_generations_out(rag: FinishedTrace) -> None:
    model = _one(rag.runs(), semconv.RUN_TYPE_CHAT_MODEL)

    assert [m.role for m in model.inputs] == ["system", "user"]
    assert model.inputs[1] == TracedMessage(role="user", content=chains.QUESTION)
    assert model.outputs == (chains.RAG_ANSWER,)
    assert model.model == "fake-rag-model"
    assert model.documents == ()


def test_a_completion_run_gives_its_prompt_as_a_user_message() -> None:
    trace = chains.trace_of(chains.completion_chain(), {"topic": "tracing"})

    model = _one(trace.runs(), semconv.RUN_TYPE_LLM)

    assert model.inputs == (TracedMessage(role="user", content="Tell a story about tracing."),)
    assert model.outputs == (chains.COMPLETION,)


def test_tags_and_metadata_of_the_config_reach_every_run(rag: FinishedTrace) -> None:
    root, *inner = rag.runs()

    assert root.tags == ("rag",)
    assert dict(root.metadata) == {"user": "ada", "session": 7}
    assert all(dict(run.metadata) == {"user": "ada", "session": 7} for run in inner)
    assert "seq:step:1" in inner[0].tags


def test_failed_runs_say_so_with_the_error_type() -> None:
    trace = chains.trace_of(
        chains.failing_chain(), {"question": "x"}, expect_error=chains.ChainFailedError
    )

    by_name = {run.name: run for run in trace.runs()}

    assert (by_name["_fail"].status, by_name["_fail"].error_type) == ("error", "ChainFailedError")
    assert by_name["RunnableSequence"].status == "error"
    assert (by_name["ChatPromptTemplate"].status, by_name["ChatPromptTemplate"].error_type) == (
        "ok",
        None,
    )


def test_run_of_answers_for_runs_only(rag: FinishedTrace) -> None:
    plain = FinishedTrace.from_spans(make_spans())

    assert [rag.run_of(span) for span in rag.spans] == list(rag.runs())
    assert [plain.run_of(span) for span in plain.spans] == [None, None, None]
    assert plain.runs() == ()


def test_run_is_exported_from_the_package() -> None:
    assert otel_bridge.TracedRun is TracedRun and otel_bridge.RunEvent is RunEvent
    assert {"TracedRun", "RunEvent"} <= set(otel_bridge.__all__)


# --- events ------------------------------------------------------------------------------------


def test_agent_action_and_finish_events_come_decoded() -> None:
    trace = chains.trace_of(chains.classic_agent(), {"input": chains.AGENT_QUESTION})

    executor = _one(trace.runs(), semconv.RUN_TYPE_AGENT)
    action, finish = executor.events

    assert action.name == semconv.EVENT_AGENT_ACTION
    assert action.attributes["tool"] == "get_weather"
    assert action.attributes["tool_input"] == {"city": "Paris"}
    assert "get_weather" in action.attributes["log"]
    assert finish.name == semconv.EVENT_AGENT_FINISH
    assert finish.attributes["return_values"] == {"output": chains.AGENT_ANSWER}
    assert finish.attributes["log"] == chains.AGENT_ANSWER
    assert action.timestamp_ns < finish.timestamp_ns <= executor.end_time_ns


def test_text_events_of_a_classic_llm_chain() -> None:
    chain = LLMChain(
        llm=FakeLLM(responses=[chains.COMPLETION]),
        prompt=PromptTemplate.from_template("Tell a story about {topic}."),
    )
    trace = chains.trace_of(chain, {"topic": "rivers"})

    (event,) = _one(trace.runs(), semconv.RUN_TYPE_CHAIN).events

    assert event.name == semconv.EVENT_TEXT
    assert "Tell a story about rivers." in event.attributes["text"]


def _flaky_lookup() -> Runnable:
    """A step that reports progress as a custom event and retries a dropped connection once,
    telling LangChain's run manager about the retry as LangChain's own retrying models do."""
    failures = [ConnectionError("connection reset")]

    def lookup(city: str, run_manager: CallbackManagerForChainRun) -> str:
        dispatch_custom_event("progress", {"city": city, "done": 0.5})

        def attempt() -> str:
            if failures:
                raise failures.pop()
            return f"{city}: sunny"

        retrying = Retrying(
            stop=stop_after_attempt(2),
            retry=retry_if_exception_type(ConnectionError),
            before_sleep=run_manager.on_retry,
            reraise=True,
        )
        return retrying(attempt)

    return RunnableLambda(lookup, name="lookup")


def test_custom_and_retry_events_come_decoded() -> None:
    trace = chains.trace_of(_flaky_lookup(), "Paris")

    (run,) = trace.runs()
    custom, retry = run.events

    assert (run.outputs, run.status) == ("Paris: sunny", "ok")
    assert custom.name == semconv.EVENT_CUSTOM
    assert custom.attributes == {"name": "progress", "data": {"city": "Paris", "done": 0.5}}
    assert retry.name == semconv.EVENT_RETRY
    assert retry.attributes["attempt"] == 1
    assert retry.attributes[semconv.ERROR_TYPE] == "ConnectionError"


def test_streamed_model_runs_carry_the_first_token_event() -> None:
    trace = chains.trace_of(chains.chat_model(streaming=True), "hi")

    (run,) = trace.runs()

    assert [event.name for event in run.events] == [semconv.EVENT_FIRST_TOKEN]


# --- malformed attributes ------------------------------------------------------------------


def _with(span: SpanRecord, **changes: Any) -> SpanRecord:
    return dataclasses.replace(span, attributes={**span.attributes, **changes})


def test_a_malformed_attribute_costs_that_field_only(rag: FinishedTrace) -> None:
    root = rag.runs()[0]
    broken = _with(
        root.span,
        **{
            semconv.LANGCHAIN_INPUT: _TOO_DEEP,  # json.loads raises RecursionError on it
            semconv.RUN_TAGS: 42,
            semconv.RUN_ID: 7,
        },
    )
    trace = FinishedTrace.from_records([broken, *(s for s in rag.spans if s is not root.span)])

    run = trace.runs()[0]

    assert (run.inputs, run.tags, run.run_id) == (None, (), None)
    assert (run.outputs, run.name, run.status) == (chains.RAG_ANSWER, "RunnableSequence", "ok")
    assert dict(run.metadata) == {"user": "ada", "session": 7}
    assert trace.runs()[1:] == rag.runs()[1:]


def test_content_cut_by_the_length_bound_stays_text(rag: FinishedTrace) -> None:
    root = rag.runs()[0]
    cut = _with(root.span, **{semconv.LANGCHAIN_OUTPUT: '{"answer": "The Rhi'})

    run = FinishedTrace.from_records([cut]).run_of(cut)

    assert run is not None and run.outputs == '{"answer": "The Rhi'


_JSONISH = st.sampled_from(
    [
        "",
        "[",
        '{"a":',
        "null",
        '"text"',
        "[1, 2]",
        '[{"role": 5, "parts": [7, {"type": "tool_call"}, {"type": "text", "content": [1]}]}]',
        '[{"page_content": null, "metadata": [1]}, 3, "loose"]',
        '{"output": {"nested": true}}',
    ]
)
_VALUES = st.one_of(
    st.just(_TOO_DEEP),
    _JSONISH,
    st.text(max_size=30),
    st.integers(),
    st.floats(allow_nan=True),
    st.booleans(),
    st.lists(st.text(max_size=8), max_size=3).map(tuple),
    st.lists(st.integers(), max_size=3).map(tuple),
)
# Any of the attribute names of the handler/reader contract, each holding anything.
_ATTRIBUTES = st.fixed_dictionaries(
    {},
    optional={
        value: _VALUES
        for name, value in vars(semconv).items()
        if name.isupper() and isinstance(value, str) and "." in value
    },
)
_RUN_TYPES = st.one_of(
    st.sampled_from(
        [
            semconv.RUN_TYPE_CHAIN,
            semconv.RUN_TYPE_LLM,
            semconv.RUN_TYPE_CHAT_MODEL,
            semconv.RUN_TYPE_TOOL,
            semconv.RUN_TYPE_RETRIEVER,
            semconv.RUN_TYPE_AGENT,
        ]
    ),
    _VALUES,
)
_EVENTS = st.lists(
    st.builds(
        lambda name, attributes: (name, attributes),
        st.sampled_from(
            [
                semconv.EVENT_AGENT_ACTION,
                semconv.EVENT_AGENT_FINISH,
                semconv.EVENT_TEXT,
                semconv.EVENT_CUSTOM,
                semconv.EVENT_RETRY,
                "exception",
            ]
        ),
        st.dictionaries(
            st.sampled_from(["tool", "tool_input", "log", "return_values", "text", "data", "name"]),
            _VALUES,
            max_size=4,
        ),
    ),
    max_size=3,
)


@settings(max_examples=150, deadline=None)
@given(
    spans=st.lists(
        st.tuples(
            st.one_of(st.none(), _VALUES),  # run id: absent, or anything
            _RUN_TYPES,
            _ATTRIBUTES,
            _EVENTS,
            st.sampled_from(["UNSET", "OK", "ERROR"]),
        ),
        min_size=1,
        max_size=5,
    )
)
def test_malformed_attributes_never_raise(
    spans: list[tuple[Any, Any, dict[str, Any], list[tuple[str, dict[str, Any]]], str]],
) -> None:
    records = [
        SpanRecord(
            trace_id=9,
            span_id=index + 1,
            parent_span_id=index or None,
            name=f"span {index}",
            kind="INTERNAL",
            start_time_ns=100 + index,
            end_time_ns=200,
            attributes={
                **({} if run_id is None else {semconv.RUN_ID: run_id}),
                semconv.RUN_TYPE: run_type,
                **attributes,
            },
            status_code=status,
            events=tuple(EventRecord(name, 150, values) for name, values in events),
        )
        for index, (run_id, run_type, attributes, events, status) in enumerate(spans)
    ]
    trace = FinishedTrace.from_records(records)

    runs = trace.runs()

    failed = {error.span_id for error in trace.errors()}
    assert [run.span for run in runs] == list(trace.spans)  # a malformed run is still a run
    for run in runs:
        assert trace.run_of(run.span) == run
        assert (run.status == "error") == (run.span_id in failed)
        assert (run.error_type is None) == (run.status == "ok")
        assert run.run_id is None or isinstance(run.run_id, str)
        assert all(isinstance(tag, str) for tag in run.tags)
        assert all(event.name != "exception" for event in run.events)
