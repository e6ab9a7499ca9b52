"""UpTrainSpanExporter end to end: real chains, the real handler, the real uptrain library and the
core's spool and retry. The judge is the one stand-in: `FakeJudge`, a local OpenAI-compatible HTTP
server answering uptrain's grading prompts deterministically, in place of a paid LLM API."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from otel_bridge_uptrain import (
    SCORE_HISTOGRAM,
    CheckPlan,
    UpTrainSpanExporter,
    compressions,
    multi_queries,
    rag_turns,
)

from otel_bridge import semconv
from otel_bridge.delivery import RetryPolicy
from otel_bridge.spool import Spool
from tests.chains import (
    CHAT_ANSWER,
    MULTI_QUERY_VARIANTS,
    QUESTION,
    RAG_ANSWER,
    chat_messages,
    chat_model,
    compression_retriever,
    multi_query_rag_chain,
    rag_chain,
)
from tests.support.fake_openai import FakeJudge
from tests.support.processes import run_python
from tests.support.recording import metric_points, recording_provider

from .conftest import MakeExporter, closed_port, hosted_judge_down, run_through, wait_for

RAG_CHECKS = {"context_relevance", "factual_accuracy", "response_completeness"}
# The grading prompts one RAG row costs: factual accuracy first splits the response into facts.
RAG_PROMPTS = ["context_relevance", "fact_evaluate", "fact_generate", "response_completeness"]


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def evaluations(results: InMemorySpanExporter) -> list[ReadableSpan]:
    return [
        span
        for span in results.get_finished_spans()
        if semconv.GEN_AI_EVALUATION_NAME in (span.attributes or {})
    ]


def evaluated(span: ReadableSpan) -> tuple[int, int]:
    """The (trace id, span id) an evaluation span links to."""
    (link,) = span.links
    return link.context.trace_id, link.context.span_id


def scores_by_name(spans: Sequence[ReadableSpan]) -> dict[str, Any]:
    return {
        attrs(span)[semconv.GEN_AI_EVALUATION_NAME]: span.attributes.get(
            semconv.GEN_AI_EVALUATION_SCORE_VALUE
        )
        for span in spans
        if span.attributes
    }


# --- what is evaluated and what comes back ------------------------------------------------------


def test_a_rag_trace_is_scored_and_each_score_is_a_span_linked_to_the_rag_span(
    make_exporter: MakeExporter, judge: FakeJudge, results: InMemorySpanExporter
) -> None:
    exporter = make_exporter()
    trace = run_through(exporter, rag_chain(), QUESTION)
    (turn,) = rag_turns(trace)

    assert exporter.force_flush(60_000)

    spans = evaluations(results)
    assert scores_by_name(spans) == dict.fromkeys(RAG_CHECKS, 1.0)
    for span in spans:
        assert evaluated(span) == (trace.trace_id, turn.span_id)
        # A new trace of its own: linked to the evaluated span, never parented to it.
        assert span.parent is None and span.context.trace_id != trace.trace_id
        assert attrs(span)["uptrain.project_name"] == "langchain"
        assert attrs(span)["uptrain.evaluation_name"] == "rag"
        assert attrs(span)[semconv.GEN_AI_EVALUATION_EXPLANATION]
    # What the judge was asked, exactly as the trace holds it.
    (relevance,) = judge.graded("context_relevance")
    assert relevance.fields["Query"] == QUESTION
    assert relevance.fields["Extracted Context"] == turn.context
    (completeness,) = judge.graded("response_completeness")
    assert completeness.fields["Question"] == QUESTION
    assert completeness.fields["Response"] == RAG_ANSWER
    (facts,) = judge.graded("fact_generate")
    assert facts.fields["Response"] == RAG_ANSWER
    (fact_check,) = judge.graded("fact_evaluate")
    assert fact_check.fields["Context"] == turn.context
    assert all(r.body is not None and r.body["model"] == "gpt-3.5-turbo" for r in judge.graded())


def test_scores_follow_the_judges_grades(
    make_exporter: MakeExporter, judge: FakeJudge, results: InMemorySpanExporter
) -> None:
    judge.grades.update(context_relevance="B", response_completeness="C", factual_accuracy="C")
    exporter = make_exporter()
    run_through(exporter, rag_chain(), QUESTION)

    assert exporter.force_flush(60_000)

    assert scores_by_name(evaluations(results)) == {
        "context_relevance": 0.5,
        "factual_accuracy": 0.0,
        "response_completeness": 0.0,
    }


def test_multi_query_and_compression_shapes_get_their_checks(
    make_exporter: MakeExporter, judge: FakeJudge, results: InMemorySpanExporter
) -> None:
    exporter = make_exporter()
    multi = run_through(exporter, multi_query_rag_chain(), QUESTION)
    compressed = run_through(exporter, compression_retriever(), QUESTION)

    assert exporter.force_flush(60_000)

    spans = evaluations(results)
    (multi_query,) = multi_queries(multi)
    (compression,) = compressions(compressed)
    by_target: dict[tuple[int, int], set[str]] = {}
    for span in spans:
        by_target.setdefault(evaluated(span), set()).add(
            str(attrs(span)[semconv.GEN_AI_EVALUATION_NAME])
        )
    (turn,) = rag_turns(multi)
    assert by_target == {
        (multi.trace_id, turn.span_id): RAG_CHECKS,
        (multi.trace_id, multi_query.span_id): {"multi_query_accuracy"},
        (compressed.trace_id, compression.span_id): {"context_conciseness", "context_reranking"},
    }
    (variants,) = judge.graded("multi_query_accuracy")
    assert variants.fields["Question"] == QUESTION
    assert variants.fields["Variants"] == repr(list(MULTI_QUERY_VARIANTS))
    (concise,) = judge.graded("context_conciseness")
    assert concise.fields["Original Context"] == compression.original_context
    assert concise.fields["Concise Context"] == compression.compressed_context
    (reranked,) = judge.graded("context_reranking")
    assert reranked.fields["Reranked Context"] == compression.compressed_context


def test_a_plain_chat_call_gets_the_configurable_default_set(
    make_exporter: MakeExporter, judge: FakeJudge, results: InMemorySpanExporter
) -> None:
    exporter = make_exporter(checks=dataclasses.replace(CheckPlan(), llm=("response_conciseness",)))
    trace = run_through(exporter, chat_model(), chat_messages())
    (call,) = trace.llm_calls()

    assert exporter.force_flush(60_000)

    (span,) = evaluations(results)
    assert evaluated(span) == (trace.trace_id, call.span_id)
    assert attrs(span)[semconv.GEN_AI_EVALUATION_NAME] == "response_conciseness"
    (asked,) = judge.graded()
    assert asked.fields == {
        "Question": "Say hello in French.",
        "Response": CHAT_ANSWER,
        "Output": "",
    }


def test_non_llm_operators_run_as_overrides(
    make_exporter: MakeExporter, judge: FakeJudge, results: InMemorySpanExporter
) -> None:
    from uptrain.operators import RougeScore

    rouge = RougeScore(col_in_generated="response", col_in_source="context", score_type="f1")
    exporter = make_exporter(checks=dataclasses.replace(CheckPlan(), rag=(rouge,)))
    run_through(exporter, rag_chain(), QUESTION)

    assert exporter.force_flush(60_000)

    (span,) = evaluations(results)
    assert attrs(span)[semconv.GEN_AI_EVALUATION_NAME] == "rouge_score"
    assert float(attrs(span)[semconv.GEN_AI_EVALUATION_SCORE_VALUE]) > 0
    assert judge.graded() == []


def test_an_unusable_grade_becomes_an_error_span_not_a_made_up_score(
    make_exporter: MakeExporter, judge: FakeJudge, results: InMemorySpanExporter
) -> None:
    judge.grades["response_completeness"] = "Z"  # not a choice uptrain accepts
    exporter = make_exporter(
        checks=dataclasses.replace(CheckPlan(), rag=("response_completeness",))
    )
    run_through(exporter, rag_chain(), QUESTION)

    assert exporter.force_flush(60_000)

    (span,) = evaluations(results)
    assert semconv.GEN_AI_EVALUATION_SCORE_VALUE not in attrs(span)
    assert span.status.status_code is StatusCode.ERROR
    assert attrs(span)[semconv.ERROR_TYPE] == "uptrain.no_grade"


def test_traces_evaluated_concurrently_do_not_mix(
    make_exporter: MakeExporter, judge: FakeJudge, results: InMemorySpanExporter
) -> None:
    # The judge grades anything asked or said about the Danube C and the rest A, so a score
    # landing on the wrong trace shows.
    judge.grader = lambda check, fields: (
        "C" if any("Danube" in fields.get(f, "") for f in ("Question", "Query", "Facts")) else "A"
    )
    exporter = make_exporter()
    questions = {
        "rhine": (QUESTION, RAG_ANSWER),
        "danube": ("Where does the Danube end?", "The Danube ends in the Black Sea."),
    }
    traces: dict[str, Any] = {}
    barrier = threading.Barrier(len(questions))

    def run(name: str) -> None:
        question, answer = questions[name]
        barrier.wait()
        traces[name] = run_through(exporter, rag_chain(chat_model(answer)), question)

    threads = [threading.Thread(target=run, args=(name,)) for name in questions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert exporter.force_flush(60_000)

    spans = evaluations(results)
    for name, trace in traces.items():
        (turn,) = rag_turns(trace)
        mine = [span for span in spans if evaluated(span) == (trace.trace_id, turn.span_id)]
        assert scores_by_name(mine) == dict.fromkeys(RAG_CHECKS, 0.0 if name == "danube" else 1.0)
        question = questions[name][0]
        relevance = next(
            s for s in mine if attrs(s)[semconv.GEN_AI_EVALUATION_NAME] == "context_relevance"
        )
        assert repr(question) in str(attrs(relevance)[semconv.GEN_AI_EVALUATION_EXPLANATION])
    assert len(spans) == 2 * len(RAG_CHECKS)


# --- sampling and filters -----------------------------------------------------------------------


def test_sampled_out_and_filtered_traces_are_not_evaluated(
    make_exporter: MakeExporter, judge: FakeJudge, results: InMemorySpanExporter
) -> None:
    none_sampled = make_exporter(sample_rate=0.0, spool_name="uptrain-none")
    run_through(none_sampled, rag_chain(), QUESTION)
    filtered = make_exporter(
        trace_filter=lambda trace: "Danube" in str(trace.root_input()), spool_name="uptrain-filter"
    )
    run_through(filtered, rag_chain(), QUESTION)
    danube = run_through(filtered, rag_chain(), "Where does the Danube end?")

    assert none_sampled.force_flush(60_000) and filtered.force_flush(60_000)

    assert {evaluated(span)[0] for span in evaluations(results)} == {danube.trace_id}


def test_a_trace_filter_that_raises_skips_the_trace_and_says_so(
    make_exporter: MakeExporter,
    judge: FakeJudge,
    results: InMemorySpanExporter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken_filter(trace: Any) -> bool:
        raise KeyError("tenant")

    exporter = make_exporter(trace_filter=broken_filter)
    run_through(exporter, rag_chain(), QUESTION)

    assert exporter.force_flush(60_000)

    assert evaluations(results) == [] and judge.requests == []
    assert "trace_filter raised" in caplog.text


def test_evaluation_spans_sent_back_into_the_same_pipeline_are_not_evaluated(
    judge: FakeJudge, tmp_path: Any
) -> None:
    provider, memory = recording_provider()
    exporter = UpTrainSpanExporter(
        api_key="sk-judge",
        api_base=judge.url,
        tracer_provider=provider,  # the provider that also feeds this exporter
        log_results=False,
        spool_dir=tmp_path,
        grace_period=0.01,
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        from otel_bridge import OTelCallbackHandler

        rag_chain().invoke(QUESTION, config={"callbacks": [OTelCallbackHandler(provider)]})
        assert exporter.force_flush(60_000)
        asked = len(judge.requests)
        assert exporter.force_flush(60_000)  # delivers the evaluation spans' own traces
        assert len(evaluations(memory)) == len(RAG_CHECKS)
        assert len(judge.requests) == asked
        assert exporter.spool.dead_letters() == []
    finally:
        provider.shutdown()


# --- failures -----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [503, 429])
def test_a_judge_outage_delays_evaluation_and_loses_nothing(
    make_exporter: MakeExporter, judge: FakeJudge, results: InMemorySpanExporter, status: int
) -> None:
    exporter = make_exporter()
    judge.fail_until_recovered(status)
    trace = run_through(exporter, rag_chain(), QUESTION)

    exporter.force_flush(500)
    assert wait_for(lambda: judge.requests), "the exporter never asked the judge"
    assert evaluations(results) == []
    assert exporter.spool.counts().outbox == 1
    assert exporter.spool.dead_letters() == []
    assert {r.status for r in judge.requests} == {status}

    judge.recover()
    assert exporter.force_flush(60_000)

    spans = evaluations(results)
    assert scores_by_name(spans) == dict.fromkeys(RAG_CHECKS, 1.0)
    assert {evaluated(span)[0] for span in spans} == {trace.trace_id}
    assert exporter.spool.counts().outbox == 0


def attempts(exporter: UpTrainSpanExporter) -> int:
    """Delivery attempts made so far on what the exporter's outbox holds."""
    return sum(item.attempts for item in exporter.spool.due(time.time(), 10, ignore_backoff=True))


def test_a_judge_that_is_down_then_comes_back_evaluates_the_trace_once(
    make_exporter: MakeExporter, results: InMemorySpanExporter
) -> None:
    port = closed_port()
    exporter = make_exporter(api_base=f"http://127.0.0.1:{port}/v1")
    trace = run_through(exporter, rag_chain(), QUESTION)

    exporter.force_flush(500)
    assert wait_for(lambda: attempts(exporter) >= 1), "the exporter never tried the judge"
    assert evaluations(results) == []
    assert exporter.spool.counts().outbox == 1
    assert exporter.spool.dead_letters() == []

    with FakeJudge(api_key="sk-judge", port=port) as judge:
        assert exporter.force_flush(60_000)
        spans = evaluations(results)
        assert scores_by_name(spans) == dict.fromkeys(RAG_CHECKS, 1.0)
        assert len(spans) == len(RAG_CHECKS)
        assert {evaluated(span)[0] for span in spans} == {trace.trace_id}
        assert sorted(str(request.check) for request in judge.graded()) == RAG_PROMPTS
        # Nothing left to deliver, so nothing is asked twice.
        assert exporter.force_flush(5_000)
        assert len(judge.requests) == len(RAG_PROMPTS)
    assert exporter.spool.counts().outbox == 0
    assert exporter.spool.dead_letters() == []


def test_a_judge_down_while_the_app_exits_keeps_the_trace_for_the_next_start(
    make_exporter: MakeExporter, results: InMemorySpanExporter, tmp_path: Path
) -> None:
    """The drop-in handler in a child process whose only delivery attempt is made at interpreter
    exit, where the event loop refuses the connect with a RuntimeError instead of an OpenAI
    error; uptrain turns that into missing grades, which must not count as evaluated."""
    port = closed_port()
    spool_dir = tmp_path / "app-spool"
    _exit_child(spool_dir, f"http://127.0.0.1:{port}/v1", "sk-judge", "judge-down")

    with _left_in(spool_dir) as left:
        (item,) = left.due(time.time(), 10, ignore_backoff=True)
        assert item.attempts == 1, "the exporter did not try the judge while exiting"
        assert left.dead_letters() == []

    with FakeJudge(api_key="sk-judge", port=port) as judge:
        exporter = make_exporter(api_base=judge.url, spool_dir=spool_dir)
        assert exporter.force_flush(60_000)
        spans = evaluations(results)
        assert scores_by_name(spans) == dict.fromkeys(RAG_CHECKS, 1.0)
        assert len(spans) == len(RAG_CHECKS)
        assert {format(evaluated(span)[0], "032x") for span in spans} == {item.key}
        assert sorted(str(request.check) for request in judge.graded()) == RAG_PROMPTS
    assert exporter.spool.counts().outbox == 0
    assert exporter.spool.dead_letters() == []


def test_an_app_that_exits_without_a_flush_is_evaluated_before_it_ends(
    judge: FakeJudge, tmp_path: Path
) -> None:
    """A RAG call through the drop-in, then the script ends, with no flush (the seed page's own
    example, run as a script, is in test_seed_parity.py). With the long grace the only attempt
    is the one at exit, where uptrain's thread pools still work: every check reaches the judge
    once before the process is gone, nothing is left queued."""
    spool_dir = tmp_path / "app-spool"
    child = _exit_child(spool_dir, judge.url, judge.api_key)
    assert "cannot schedule new futures" not in child.stderr
    assert sorted(str(request.check) for request in judge.graded()) == RAG_PROMPTS
    with _left_in(spool_dir) as left:
        assert left.counts().outbox == 0 and left.dead_letters() == []


def test_a_bad_key_is_dead_lettered_with_its_reason(
    make_exporter: MakeExporter, judge: FakeJudge, results: InMemorySpanExporter
) -> None:
    exporter = make_exporter(api_key="sk-wrong")
    run_through(exporter, rag_chain(), QUESTION)

    exporter.force_flush(5_000)

    assert wait_for(exporter.spool.dead_letters)
    (dead,) = exporter.spool.dead_letters()
    assert "401" in dead.reason and "credentials" in dead.reason
    assert evaluations(results) == []
    assert {r.authorization for r in judge.requests} == {"Bearer sk-wrong"}


def test_a_trace_uptrain_cannot_evaluate_is_dead_lettered_without_holding_back_others(
    make_exporter: MakeExporter, judge: FakeJudge, results: InMemorySpanExporter
) -> None:
    # factual_accuracy needs a context, which a plain chat call does not have.
    plan = dataclasses.replace(CheckPlan(), llm=("factual_accuracy",))
    exporter = make_exporter(checks=plan)
    rag = run_through(exporter, rag_chain(), QUESTION)
    run_through(exporter, chat_model(), chat_messages())

    exporter.force_flush(5_000)

    assert wait_for(exporter.spool.dead_letters)
    assert wait_for(lambda: len(evaluations(results)) == len(RAG_CHECKS))
    (dead,) = exporter.spool.dead_letters()
    assert "missing" in dead.reason and "context" in dead.reason
    assert {evaluated(span)[0] for span in evaluations(results)} == {rag.trace_id}
    assert len(evaluations(results)) == len(RAG_CHECKS)


def test_the_uptrain_server_failing_is_retried_not_dropped(
    make_exporter: MakeExporter, judge: FakeJudge
) -> None:
    exporter = hosted_judge_down(make_exporter, judge)

    exporter.force_flush(500)

    assert wait_for(lambda: judge.requests)
    assert {r.path for r in judge.requests} == {"/api/public/log_and_evaluate"}
    assert exporter.spool.counts().outbox == 1
    assert exporter.spool.dead_letters() == []


# --- results elsewhere --------------------------------------------------------------------------


def test_log_results_prints_the_seeds_lines_once(make_exporter: MakeExporter) -> None:
    stream = io.StringIO()
    exporter = make_exporter(log_results=True, log_stream=stream)
    run_through(exporter, multi_query_rag_chain(), QUESTION)

    assert exporter.force_flush(60_000)

    variants = "".join(f"  - {variant}\n" for variant in MULTI_QUERY_VARIANTS)
    assert stream.getvalue() == (
        f"\nQuestion: {QUESTION}\nResponse: {RAG_ANSWER}\n\n"
        "Context Relevance Score: 1.0\nFactual Accuracy Score: 1.0\n"
        "Response Completeness Score: 1.0\n"
        f"\nQuestion: {QUESTION}\nMulti Queries:\n{variants}\nMulti Query Accuracy Score: 1.0\n"
    )


def test_log_results_goes_through_logging_as_the_seeds_did(
    make_exporter: MakeExporter,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Without a stream, the seed's lines are INFO records of `otel_bridge_uptrain.results` (an
    app can route or silence them with logging), printed on stdout with no prefix, once."""
    exporter = make_exporter(log_results=True)
    results_logger = logging.getLogger("otel_bridge_uptrain.results")
    results_logger.addHandler(caplog.handler)
    try:
        run_through(exporter, rag_chain(), QUESTION)
        assert exporter.force_flush(60_000)
    finally:
        results_logger.removeHandler(caplog.handler)
    (record,) = [r for r in caplog.records if r.name == "otel_bridge_uptrain.results"]
    assert record.levelno == logging.INFO
    assert record.getMessage().startswith(f"\nQuestion: {QUESTION}\nResponse: {RAG_ANSWER}")
    assert "Context Relevance Score: 1.0" in record.getMessage()
    printed = capsys.readouterr().out
    assert printed.count(f"Question: {QUESTION}") == 1
    assert "Factual Accuracy Score: 1.0" in printed


def test_log_results_false_prints_nothing(
    make_exporter: MakeExporter, capsys: pytest.CaptureFixture[str]
) -> None:
    exporter = make_exporter(log_results=False)
    run_through(exporter, rag_chain(), QUESTION)
    assert exporter.force_flush(60_000)
    assert "Question:" not in capsys.readouterr().out


def test_score_histograms_per_check(make_exporter: MakeExporter) -> None:
    reader = InMemoryMetricReader()
    exporter = make_exporter(
        meter_provider=MeterProvider(metric_readers=[reader]), score_histograms=True
    )
    run_through(exporter, rag_chain(), QUESTION)
    assert exporter.force_flush(60_000)

    assert {
        dict(p.attributes or {})[semconv.GEN_AI_EVALUATION_NAME]: (p.count, p.sum)
        for p in metric_points(reader, SCORE_HISTOGRAM)
        if isinstance(p, HistogramDataPoint)
    } == (dict.fromkeys(RAG_CHECKS, (1, 1.0)))


@contextlib.contextmanager
def _left_in(spool_dir: Path) -> Iterator[Spool]:
    """The one spool in `spool_dir` (named after the sink and its destination), opened to look
    at what an app left in it."""
    (path,) = spool_dir.glob("uptrain-*.sqlite3")
    left = Spool(path, max_bytes=1 << 30, max_traces=100, max_spans_per_trace=100)
    try:
        yield left
    finally:
        left.close()


# --- exactly once under partial failure -----------------------------------------------------------


@pytest.mark.parametrize("every", [3, 7])
def test_a_judge_failing_a_fraction_of_requests_grades_each_check_once(
    make_exporter: MakeExporter,
    judge: FakeJudge,
    results: InMemorySpanExporter,
    every: int,
) -> None:
    """The judge answers every n-th grading request 503. Retries ask only for the checks still
    missing, and each trace is published once, complete: one evaluation span per (trace, check),
    one successful grading per single-prompt check, one final fact check per trace."""
    questions = [f"{QUESTION} (variant {n})" for n in range(8)]
    exporter = make_exporter(
        grace_period=30.0,  # everything reaches the judge in the first batch, at the flush
        retry=RetryPolicy(initial_backoff=0.05, max_backoff=0.2, jitter=0.0),
    )
    traces = [run_through(exporter, rag_chain(), question) for question in questions]
    judge.fail_every(every)

    assert exporter.force_flush(120_000)

    spans = evaluations(results)
    per_check = Counter(
        (evaluated(span)[0], attrs(span)[semconv.GEN_AI_EVALUATION_NAME]) for span in spans
    )
    assert per_check == Counter(
        {(trace.trace_id, check): 1 for trace in traces for check in RAG_CHECKS}
    )
    assert set(scores_by_name(spans).values()) == {1.0}
    graded = Counter(str(request.check) for request in judge.graded())
    assert graded["context_relevance"] == graded["response_completeness"] == len(questions)
    assert graded["fact_evaluate"] == len(questions)
    refused = [request for request in judge.requests if request.status != 200]
    assert refused, "the judge never failed: the test did not test anything"
    assert exporter.spool.counts().outbox == 0 and exporter.spool.dead_letters() == []


def _exit_child(spool_dir: Path, api_base: str, api_key: str, *mode: str) -> Any:
    """Run exporters/uptrain/tests/exit_child.py (the seed's usage, no flush) against the judge at
    `api_base`; it must exit 0."""
    env = {
        **os.environ,
        "OTEL_BRIDGE_UPTRAIN_API_BASE": api_base,
        "OTEL_BRIDGE_UPTRAIN_API_KEY": api_key,
    }
    return run_python(
        "-m", "exporters.uptrain.tests.exit_child", str(spool_dir), *mode, env=env, timeout=300
    )
