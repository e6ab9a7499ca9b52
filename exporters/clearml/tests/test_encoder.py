"""The pure encoder: finished traces of real chains (tests/chains.py, real handler) -> ClearML
records, session rows, scalars and media, with no ClearML involved.

The only stand-in is the LLM API: `otel_bridge.testing.FakeChatModel`.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from otel_bridge_clearml.encoder import (
    ERRORS_TITLE,
    INPUT_TOKENS_TITLE,
    LATENCY_TITLE,
    MAX_CELL_CHARS,
    OUTPUT_TOKENS_TITLE,
    complexity_title,
    encode_trace,
    serialize_langchain_asset,
    table,
)
from otel_bridge_clearml.text_analysis import COMPLEXITY_METRICS, TextAnalyzer

from otel_bridge import semconv
from otel_bridge.langchain_views import FinishedTrace
from otel_bridge.testing import FakeChatModel
from otel_bridge.trace_tree import SpanRecord
from tests.chains import (
    AGENT_ANSWER,
    AGENT_QUESTION,
    QUESTION,
    RAG_ANSWER,
    agent,
    classic_agent,
    rag_chain,
    trace_of,
)
from tests.contract import make_spans


def test_a_start_and_an_end_record_per_run_with_the_seed_counters() -> None:
    trace = trace_of(rag_chain(), QUESTION)
    report = encode_trace(trace)
    runs = [s for s in trace.spans if semconv.RUN_TYPE in s.attributes]
    assert len(report.action_records) == 2 * len(runs)
    assert Counter(r.span_id for r in report.action_records) == {
        f"{s.span_id:016x}": 2 for s in runs
    }
    # Every start and every end is one step, one record each, in the order LangChain called them.
    steps = [r.counters.step for r in report.action_records]
    assert steps == list(range(1, 2 * len(runs) + 1))
    first, last = report.action_records[0], report.action_records[-1]
    assert (first.action, first.name, first.inputs) == ("on_chain_start", report.name, QUESTION)
    assert (last.action, last.span_id) == ("on_chain_end", first.span_id)
    starts = [r for r in report.action_records if r.action.endswith("_start")]
    assert [r.action for r in starts].count("on_retriever_start") == 1
    assert all(r.status is None and r.latency_s is None for r in starts)
    final = report.action_records[-1].counters
    assert final.step == 2 * len(runs) and final.starts == final.ends == len(runs)
    assert (final.llm_starts, final.llm_ends, final.retriever_starts, final.retriever_ends) == (
        1,
        1,
        1,
        1,
    )
    assert final.chain_starts == final.chain_ends == len(runs) - 2
    assert report.name == "RunnableSequence" and report.trace_id == f"{trace.trace_id:032x}"


def test_the_model_record_and_its_session_row() -> None:
    trace = trace_of(rag_chain(), QUESTION)
    report = encode_trace(trace)
    start, model = [r for r in report.action_records if r.run_type == "chat_model"]
    (call,) = trace.llm_calls()
    assert (start.action, start.model, start.inputs) == ("on_llm_start", call.model, model.inputs)
    assert (model.action, model.model, model.outputs) == (
        "on_llm_end",
        "fake-rag-model",
        RAG_ANSWER,
    )
    assert model.inputs.startswith("system: Answer from the context only.")
    assert model.inputs.endswith(f"user: {QUESTION}")
    assert (model.input_tokens, model.output_tokens) == (call.input_tokens, call.output_tokens)
    assert model.latency_s == call.latency_s
    (row,) = report.session_rows
    assert (row.prompts, row.output) == (model.inputs, RAG_ANSWER)
    assert row.output_step == model.counters.step and row.prompt_step == start.counters.step
    assert row.as_row()["token_usage_total_tokens"] == call.input_tokens + call.output_tokens


def test_an_agent_pairs_each_prompt_with_its_own_output() -> None:
    report = encode_trace(trace_of(agent(), {"messages": [("user", AGENT_QUESTION)]}))
    first, second = report.session_rows
    assert first.prompts.endswith(f"user: {AGENT_QUESTION}")
    assert '[tool call] get_weather({"city": "Paris"})' in first.output
    assert second.prompts.endswith("tool: sunny and 21 degrees in Paris")
    assert second.output == AGENT_ANSWER
    assert first.output_step < second.prompt_step
    tool_start, tool = [r for r in report.action_records if r.run_type == "tool"]
    assert (tool_start.action, tool_start.inputs) == ("on_tool_start", '{"city": "Paris"}')
    assert (tool.action, tool.inputs, tool.outputs) == (
        "on_tool_end",
        '{"city": "Paris"}',
        "sunny and 21 degrees in Paris",
    )
    assert report.action_records[-1].counters.tool_starts == 1


def test_agent_actions_and_finish_are_records_in_callback_order() -> None:
    """langchain_classic's AgentExecutor reports on_agent_action and on_agent_finish: each is a
    record of its own with the seed's columns, between the runs' start and end records."""
    report = encode_trace(trace_of(classic_agent(), {"input": AGENT_QUESTION}))
    actions = [r.action for r in report.action_records]
    assert actions[0] == "on_chain_start" and actions[-1] == "on_chain_end"
    (action,) = [r for r in report.action_records if r.action == "on_agent_action"]
    assert action.as_row()["tool"] == "get_weather"
    assert json.loads(action.details["tool_input"]) == {"city": "Paris"}
    (finish,) = [r for r in report.action_records if r.action == "on_agent_finish"]
    assert finish.details["output"] == AGENT_ANSWER
    # The action comes before its tool runs, the finish after the last model call.
    assert actions.index("on_agent_action") < actions.index("on_tool_start")
    assert actions.index("on_agent_finish") > max(
        i for i, name in enumerate(actions) if name == "on_llm_end"
    )
    assert finish.counters.agent_ends == 1 and action.counters.step < finish.counters.step
    assert actions.count("on_llm_start") == actions.count("on_llm_end") == 2


def test_scalars_per_model_call_and_errors_per_trace() -> None:
    report = encode_trace(trace_of(agent(), {"messages": [("user", AGENT_QUESTION)]}))
    by_title: dict[str, list[float]] = {}
    for point in report.scalars:
        assert point.series == "fake-agent-model"
        by_title.setdefault(point.title, []).append(point.value)
    assert len(by_title[LATENCY_TITLE]) == 2
    assert by_title[OUTPUT_TOKENS_TITLE][1] == len(AGENT_ANSWER.split())
    assert len(by_title[INPUT_TOKENS_TITLE]) == 2
    assert by_title[ERRORS_TITLE] == [0.0]


def test_a_failed_model_call() -> None:
    failing = FakeChatModel(error=RuntimeError("model is down"), model_name="flaky-model")
    report = encode_trace(trace_of(failing, "hi", expect_error=RuntimeError))
    start, record = report.action_records
    assert (start.action, start.inputs) == ("on_llm_start", "user: hi")
    assert (record.action, record.status, record.error) == ("on_llm_error", "error", "RuntimeError")
    assert record.counters.errors == 1 and record.counters.llm_ends == 0
    (row,) = report.session_rows
    assert (row.prompts, row.output, row.error) == ("user: hi", "", "RuntimeError")
    assert [p.value for p in report.scalars if p.title == ERRORS_TITLE] == [1.0]


def test_a_streamed_generation_counts_as_a_stream() -> None:
    streaming = FakeChatModel(responses=["Hello there, friend."], streaming=True)
    _, record = encode_trace(trace_of(streaming, "hi")).action_records
    assert record.counters.llm_streams == 1 and record.counters.step == 3
    assert record.outputs == "Hello there, friend."


def test_spans_that_are_not_runs_contribute_nothing() -> None:
    trace = FinishedTrace.from_spans(make_spans())
    report = encode_trace(trace)
    assert report.action_records == report.session_rows == report.scalars == report.media == ()
    assert report.name == "root"


def _run_span(
    span_id: int, parent: int | None, run_type: str, name: str, start: int, end: int
) -> SpanRecord:
    return SpanRecord(
        trace_id=1,
        span_id=span_id,
        parent_span_id=parent,
        name=name,
        kind="INTERNAL",
        start_time_ns=start,
        end_time_ns=end,
        attributes={
            semconv.RUN_TYPE: run_type,
            semconv.RUN_NAME: name,
            semconv.LANGCHAIN_INPUT: "{not json",
        },
        status_code="UNSET",
    )


def test_equal_timestamps_keep_the_callback_order() -> None:
    """A coarse clock gives parent and children the same times; the run tree decides the order."""
    trace = FinishedTrace.from_records(
        [
            _run_span(1, None, "chain", "outer", 100, 100),
            _run_span(2, 1, "chain", "first", 100, 100),
            _run_span(3, 1, "tool", "second", 100, 100),
        ]
    )
    records = {r.name: r for r in encode_trace(trace).action_records if r.action.endswith("end")}
    assert records["first"].counters.step == 3  # outer start, first start, first end
    assert records["second"].counters.step == 5
    assert records["outer"].counters.step == 6
    assert records["outer"].inputs == "{not json"  # content cut by a length bound stays text


def test_complexity_metrics_per_generation(cmudict_corpus: object) -> None:
    import textstat

    analyzer = TextAnalyzer(complexity_metrics=True)
    report = encode_trace(trace_of(rag_chain(), QUESTION), analyzer)
    (row,) = report.session_rows
    assert list(row.complexity) == list(COMPLEXITY_METRICS)
    assert row.complexity["osman"] == textstat.osman(RAG_ANSWER)
    (model,) = [r for r in report.action_records if r.action == "on_llm_end"]
    assert model.complexity == row.complexity
    titles = {p.title for p in report.scalars}
    assert (
        complexity_title("crawford") in titles and complexity_title("text_standard") not in titles
    )


def test_table_unions_columns_and_bounds_cells() -> None:
    rows = [{"a": 1, "b": None}, {"b": "x" * (MAX_CELL_CHARS + 10), "c": 2.5}]
    header, first, second = table(rows)
    assert header == ["a", "b", "c"]
    assert first == [1, "", ""]
    assert second[0] == "" and len(second[1]) == MAX_CELL_CHARS and second[1].endswith("…")
    assert second[2] == 2.5


def test_an_lcel_chain_serializes_with_dumpd() -> None:
    saved = json.loads(serialize_langchain_asset(rag_chain()))
    assert saved["lc"] == 1 and saved["id"][-1] == "RunnableSequence"
    assert "ChatPromptTemplate" in json.dumps(saved)


@pytest.mark.parametrize("text", ["", "   "])
def test_empty_generations_are_not_analyzed(text: str, cmudict_corpus: object) -> None:
    analyzer = TextAnalyzer(complexity_metrics=True)
    empty = FakeChatModel(responses=[text])
    (row,) = encode_trace(trace_of(empty, "hi"), analyzer).session_rows
    assert row.complexity == {}


_ATTRIBUTE_VALUES = st.one_of(
    st.text(max_size=40),
    st.integers(),
    st.floats(allow_nan=True),
    st.booleans(),
    st.lists(st.text(max_size=10), max_size=3).map(tuple),
)
_RUN_TYPES = st.sampled_from([*sorted(semconv.MODEL_RUN_TYPES), "chain", "tool", "retriever", "x"])
_KEYS = st.sampled_from(
    [
        semconv.LANGCHAIN_INPUT,
        semconv.LANGCHAIN_OUTPUT,
        semconv.RETRIEVAL_DOCUMENTS,
        semconv.GEN_AI_INPUT_MESSAGES,
        semconv.GEN_AI_OUTPUT_MESSAGES,
        semconv.GEN_AI_USAGE_INPUT_TOKENS,
        semconv.GEN_AI_RESPONSE_MODEL,
        semconv.ERROR_TYPE,
        semconv.LLM_PROMPTS,
        semconv.RUN_NAME,
    ]
)


@settings(max_examples=60, deadline=None)
@given(
    spans=st.lists(
        st.tuples(
            _RUN_TYPES,
            st.dictionaries(_KEYS, _ATTRIBUTE_VALUES, max_size=6),
            st.integers(0, 50),
            st.integers(0, 50),
            st.integers(0, 5),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_malformed_attributes_never_break_the_encoder(
    spans: list[tuple[str, dict[str, object], int, int, int]],
) -> None:
    records = [
        SpanRecord(
            trace_id=7,
            span_id=index + 1,
            parent_span_id=None if index == 0 else (parent % index) + 1,
            name=f"span {index}",
            kind="INTERNAL",
            start_time_ns=start,
            end_time_ns=start + length,
            attributes={semconv.RUN_TYPE: run_type, **attributes},  # type: ignore[dict-item]
            status_code="UNSET",
        )
        for index, (run_type, attributes, start, length, parent) in enumerate(spans)
    ]
    report = encode_trace(FinishedTrace.from_records(records))
    # A start and an end record per run: malformed content costs fields only.
    assert len(report.action_records) == 2 * len(records)
    table([record.as_row() for record in report.action_records])
