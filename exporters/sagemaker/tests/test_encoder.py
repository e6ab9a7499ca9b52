"""The pure encoder on traces of real LangChain chains (run through the real handler; the LLM
API is the in-process FakeChatModel/FakeLLM): records, metric points with steps, parameters."""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import pytest
from langchain_classic.chains import LLMChain
from langchain_core.prompts import PromptTemplate
from otel_bridge_sagemaker.encoder import (
    PARAMETER_CHAIN_NAME,
    PARAMETER_MAX_TOKENS,
    PARAMETER_MODEL,
    PARAMETER_TEMPERATURE,
    RECORD_SCHEMA,
    MetricPoint,
    encode_batch,
    records_to_jsonl,
    trace_records,
)

from otel_bridge import semconv
from otel_bridge.langchain_views import FinishedTrace
from otel_bridge.testing import FakeLLM
from otel_bridge.trace_tree import SpanRecord
from tests.chains import (
    AGENT_ANSWER,
    AGENT_QUESTION,
    CHAT_ANSWER,
    COMPLETION,
    QUESTION,
    RAG_ANSWER,
    ChainFailedError,
    agent,
    chat_messages,
    chat_model,
    classic_agent,
    completion_chain,
    failing_chain,
    rag_chain,
    trace_of,
)

NOW = time.time()
WRITER = "writer-1"


def _by_type(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        grouped.setdefault(record["record"], []).append(record)
    return grouped


def _points(metrics: tuple[MetricPoint, ...]) -> dict[str, list[tuple[int, float]]]:
    series: dict[str, list[tuple[int, float]]] = {}
    for point in metrics:
        series.setdefault(point.name, []).append((point.step, point.value))
    return series


def test_a_chat_call_keeps_the_generated_text_and_its_messages() -> None:
    trace = trace_of(chat_model(temperature=0.7, max_tokens=64), chat_messages())

    records = _by_type(trace_records(trace))

    (start,) = records["llm_start"]
    (end,) = records["llm_end"]
    assert [(m["role"], m["content"]) for m in start["messages"]] == [
        ("system", "You are a polite assistant."),
        ("user", "Say hello in French."),
    ]
    assert (start["model"], start["temperature"], start["max_tokens"]) == (
        "fake-chat-model",
        0.7,
        64,
    )
    # The seed logged the wrong dict here and lost the generation.
    assert end["generations"] == [CHAT_ANSWER]
    assert end["output_messages"][0]["content"] == CHAT_ANSWER
    assert end["input_tokens"] > 0 and end["output_tokens"] == len(CHAT_ANSWER.split())
    assert "chain_start" not in records  # the model call is the whole trace


def test_every_record_carries_the_envelope_in_time_order() -> None:
    trace = trace_of(rag_chain(), QUESTION)

    records = trace_records(trace)

    assert [r["seq"] for r in records] == list(range(len(records)))
    assert {r["schema"] for r in records} == {RECORD_SCHEMA}
    assert {r["trace_id"] for r in records} == {format(trace.trace_id, "032x")}
    assert [r["time"] for r in records] == sorted(r["time"] for r in records)
    assert records[0]["record"] == "trace" and records[-1]["record"] == "chain_end"
    assert all(len(r["span_id"]) == 16 for r in records)


def test_a_rag_chain_gives_chain_and_llm_records() -> None:
    trace = trace_of(rag_chain(), QUESTION)

    records = _by_type(trace_records(trace))

    # The outermost chain starts first and ends last.
    assert records["chain_start"][0]["inputs"] == QUESTION
    assert records["chain_end"][-1]["outputs"] == RAG_ANSWER
    assert records["llm_end"][0]["generations"] == [RAG_ANSWER]
    assert records["llm_end"][0]["model"] == "fake-rag-model"
    assert "Rhine" in records["llm_start"][0]["messages"][0]["content"]  # the retrieved context
    (summary,) = records["trace"]
    assert (summary["llm_calls"], summary["errors"], summary["partial"]) == (1, 0, False)


def test_an_agent_gives_tool_and_agent_action_records() -> None:
    trace = trace_of(agent(), {"messages": [("user", AGENT_QUESTION)]})

    records = _by_type(trace_records(trace))

    assert [r["name"] for r in records["tool_start"]] == ["get_weather"]
    assert "Paris" in json.dumps(records["tool_start"][0]["input"])
    assert "sunny" in json.dumps(records["tool_end"][0]["output"])
    assert [r["tool"] for r in records["agent_action"]] == ["get_weather"]
    assert records["llm_end"][-1]["generations"] == [AGENT_ANSWER]
    assert len(records["llm_start"]) == len(records["llm_end"]) == 2


def test_a_completion_call_records_its_prompt() -> None:
    trace = trace_of(completion_chain(), {"topic": "tracing"})

    records = _by_type(trace_records(trace))

    assert records["llm_start"][0]["prompt"] == "Tell a story about tracing."
    assert records["llm_end"][0]["generations"] == [COMPLETION]


def test_failures_become_error_records_and_error_metrics() -> None:
    failed_chain = trace_of(failing_chain(), {"question": "x"}, expect_error=ChainFailedError)
    failed_model = trace_of(
        chat_model(error=TimeoutError("model timed out"), model_name="flaky-model"),
        "hello",
        expect_error=TimeoutError,
    )

    chain_records = _by_type(trace_records(failed_chain))
    model_records = _by_type(trace_records(failed_model))
    batch = encode_batch([failed_model], first_step=0, now_s=NOW, writer_id=WRITER)

    assert {r["error_type"] for r in chain_records["error"]} >= {"ChainFailedError"}
    assert any("cannot handle" in r["message"] for r in chain_records["error"])
    assert model_records["llm_error"][0]["error"] == "TimeoutError"
    assert "llm_end" not in model_records
    series = _points(batch.metrics)
    assert series["flaky-model/errors"] == [(1, 1.0)]
    assert series["trace/errors"] == [(1, 1.0)]


def test_steps_continue_from_the_first_step_one_per_call_and_one_per_trace() -> None:
    traces = [trace_of(chat_model(model_name=f"model-{i % 2}"), "hi") for i in range(3)]
    traces.append(trace_of(agent(), {"messages": [("user", AGENT_QUESTION)]}))

    batch = encode_batch(traces, first_step=100, now_s=NOW, writer_id=WRITER)

    # Three one-call traces (2 steps each) and the agent (2 calls + 1 trace step).
    assert batch.next_step == 100 + 3 * 2 + 3
    series = _points(batch.metrics)
    assert [step for step, _ in series["trace/latency_seconds"]] == [101, 103, 105, 108]
    assert [step for step, _ in series["model-0/latency_seconds"]] == [100, 104]
    assert [step for step, _ in series["fake-agent-model/latency_seconds"]] == [106, 107]
    for name, points in series.items():
        steps = [step for step, _ in points]
        assert steps == sorted(set(steps)), f"{name} repeats or reorders steps"
    assert [v for _, v in series["fake-agent-model/input_tokens"]] == [
        r["input_tokens"] for r in _by_type(trace_records(traces[3]))["llm_end"]
    ]


def test_the_same_traces_encode_identically_whatever_their_order() -> None:
    traces = [trace_of(chat_model(), "hi"), trace_of(rag_chain(), QUESTION)]

    first = encode_batch(traces, first_step=5, now_s=NOW, writer_id=WRITER)
    again = encode_batch(list(reversed(traces)), first_step=5, now_s=NOW, writer_id=WRITER)

    assert first == again


def test_the_records_file_is_named_by_first_step_and_writer_only() -> None:
    traces = [trace_of(chat_model(), "hi"), trace_of(rag_chain(), QUESTION)]

    def name(batch: list[FinishedTrace], first_step: int, writer: str) -> str:
        return encode_batch(batch, first_step=first_step, now_s=NOW, writer_id=writer).object_name

    # A retry of a partly written batch, even with other traces, overwrites the same file.
    assert name(traces, 5, WRITER) == name(traces[:1], 5, WRITER) == f"000000000005-{WRITER}.jsonl"
    assert name(traces, 6, WRITER) != name(traces, 5, WRITER) != name(traces, 5, "writer-2")


def test_parameters_come_from_the_latest_trace() -> None:
    early = trace_of(chat_model(temperature=0.1, max_tokens=10, model_name="old"), "hi")
    late = trace_of(completion_chain(), {"topic": "x"})

    parameters = encode_batch([late, early], first_step=0, now_s=NOW, writer_id=WRITER).parameters

    assert parameters[PARAMETER_MODEL] != "old"
    assert parameters[PARAMETER_TEMPERATURE] == 0.2
    assert parameters[PARAMETER_MAX_TOKENS] == 10.0  # the completion model sets none
    assert parameters[PARAMETER_CHAIN_NAME] == "RunnableSequence"


def test_points_too_old_for_sagemaker_take_the_delivery_time() -> None:
    trace = trace_of(chat_model(), "hi")
    a_month_later = time.time() + 30 * 24 * 3600

    batch = encode_batch([trace], first_step=0, now_s=a_month_later, writer_id=WRITER)

    assert {p.timestamp_s for p in batch.metrics} == {a_month_later}
    assert batch.records[0]["time"].startswith(time.strftime("%Y-", time.gmtime()))


def test_a_trace_that_cannot_be_encoded_is_reported_not_fatal() -> None:
    good = trace_of(chat_model(), "hi")
    empty = FinishedTrace(trace_id=7, spans=())

    batch = encode_batch([good, empty], first_step=0, now_s=NOW, writer_id=WRITER)

    assert batch.traces == (good,)
    assert list(batch.failed) == [format(7, "032x")]
    assert {r["trace_id"] for r in batch.records} == {format(good.trace_id, "032x")}


@pytest.mark.parametrize("text", ["plain", "Grüße, 你好 🚀", 'quote " and \n newline'])
def test_jsonl_is_one_utf8_object_per_line(text: str) -> None:
    records: list[dict[str, Any]] = [
        {"record": "x", "value": text},
        {"record": "y", "value": {"nested": [text]}},
    ]

    body = records_to_jsonl(records)

    lines = body.decode("utf-8").splitlines()
    assert [json.loads(line) for line in lines] == records
    assert body.endswith(b"\n")


def test_all_seed_record_types_appear_across_the_chains() -> None:
    traces = [
        trace_of(rag_chain(), QUESTION),
        trace_of(agent(), {"messages": [("user", AGENT_QUESTION)]}),
        trace_of(failing_chain(), {"question": "x"}, expect_error=ChainFailedError),
    ]

    kinds = Counter(r["record"] for t in traces for r in trace_records(t))

    expected = {"trace", "chain_start", "chain_end", "llm_start", "llm_end", "tool_start"}
    assert expected | {"tool_end", "agent_action", "error", "chain_error"} <= set(kinds)


_CHAIN_RUN_TYPES = {"chain", "prompt", "parser", "agent"}


def test_every_chain_run_nested_included_starts_and_ends() -> None:
    trace = trace_of(rag_chain(), QUESTION)
    chain_runs = {r.span_id: r for r in trace.runs() if r.run_type in _CHAIN_RUN_TYPES}

    records = trace_records(trace)
    starts = {r["span_id"]: r for r in records if r["record"] == "chain_start"}
    ends = {r["span_id"]: r for r in records if r["record"] == "chain_end"}

    assert set(starts) == set(ends) == {format(span_id, "016x") for span_id in chain_runs}
    for span_id, run in chain_runs.items():
        start, end = starts[format(span_id, "016x")], ends[format(span_id, "016x")]
        assert (start["name"], start["run_type"]) == (end["name"], end["run_type"])
        assert (start["name"], start["run_type"]) == (run.name, run.run_type)
        assert (start["inputs"], end["outputs"]) == (run.inputs, run.outputs)
        assert start["seq"] < end["seq"]
        parent = trace.parent(run.span)
        if parent is not None and parent.span_id in chain_runs:  # nested inside its parent
            assert starts[format(parent.span_id, "016x")]["seq"] < start["seq"]
            assert end["seq"] < ends[format(parent.span_id, "016x")]["seq"]
    names = {(r["name"], r["run_type"]) for r in starts.values()}
    assert {("ChatPromptTemplate", "prompt"), ("StrOutputParser", "parser")} <= names
    assert ("RunnableParallel<context,question>", "chain") in names


def test_failed_chain_runs_end_with_chain_error() -> None:
    trace = trace_of(failing_chain(), {"question": "x"}, expect_error=ChainFailedError)

    records = _by_type(trace_records(trace))

    failed = {r["name"]: r["error"] for r in records["chain_error"]}
    assert failed == {"RunnableSequence": "ChainFailedError", "_fail": "ChainFailedError"}
    assert [r["name"] for r in records["chain_end"]] == ["ChatPromptTemplate"]
    assert {r["name"] for r in records["chain_start"]} == {*failed, "ChatPromptTemplate"}


def test_a_classic_agent_gives_agent_action_and_agent_finish() -> None:
    trace = trace_of(classic_agent(), {"input": AGENT_QUESTION})

    records = trace_records(trace)
    kinds = [r["record"] for r in records]
    (finish,) = [r for r in records if r["record"] == "agent_finish"]
    (executor,) = [r for r in records if r["record"] == "chain_end" and r["run_type"] == "agent"]

    assert finish["output"] == AGENT_ANSWER
    assert finish["return_values"] == {"output": AGENT_ANSWER}
    assert finish["log"] == AGENT_ANSWER
    assert finish["span_id"] == executor["span_id"]
    assert kinds.index("agent_action") < kinds.index("agent_finish") < executor["seq"]
    assert executor["name"] == "AgentExecutor" and executor["outputs"] == {"output": AGENT_ANSWER}


def test_on_text_becomes_a_text_record() -> None:
    chain = LLMChain(
        llm=FakeLLM(responses=[COMPLETION]),
        prompt=PromptTemplate.from_template("Tell a story about {topic}."),
    )
    trace = trace_of(chain, {"topic": "rivers"})

    records = trace_records(trace)
    kinds = [r["record"] for r in records]
    (text,) = [r for r in records if r["record"] == "text"]

    assert "Tell a story about rivers." in text["text"]
    assert kinds == ["trace", "chain_start", "text", "llm_start", "llm_end", "chain_end"]


def _chain_span(span_id: int, parent: int | None, name: str) -> SpanRecord:
    return SpanRecord(
        trace_id=3,
        span_id=span_id,
        parent_span_id=parent,
        name=name,
        kind="INTERNAL",
        start_time_ns=1_000,
        end_time_ns=1_000,
        attributes={semconv.RUN_TYPE: "chain", semconv.RUN_NAME: name},
        status_code="UNSET",
    )


def test_equal_timestamps_keep_outer_runs_around_inner_ones() -> None:
    """A coarse clock gives every run the same times; the run tree decides the order."""
    trace = FinishedTrace.from_records(
        [_chain_span(3, 2, "inner"), _chain_span(2, 1, "middle"), _chain_span(1, None, "outer")]
    )

    records = trace_records(trace)

    assert [(r["record"], r.get("name")) for r in records] == [
        ("trace", None),
        ("chain_start", "outer"),
        ("chain_start", "middle"),
        ("chain_start", "inner"),
        ("chain_end", "inner"),
        ("chain_end", "middle"),
        ("chain_end", "outer"),
    ]


def test_a_model_that_reports_no_name_has_metrics_named_after_its_class() -> None:
    """Before, every such model shared one series, "unknown-model"."""
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    unnamed = trace_of(FakeListChatModel(responses=["hi"]), "hello")
    renamed = trace_of(FakeListChatModel(responses=["hi"]).with_config(run_name="drafter"), "x")
    batch = encode_batch([unnamed, renamed], first_step=1, now_s=NOW, writer_id=WRITER)
    series = _points(batch.metrics)
    assert "FakeListChatModel/latency_seconds" in series
    assert "drafter/latency_seconds" in series
    assert not [name for name in series if name.startswith(("unknown", "unnamed"))]
