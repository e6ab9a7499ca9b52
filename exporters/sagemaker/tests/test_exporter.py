"""`SageMakerSpanExporter` end to end against the real moto server: real chains traced by the real
handler (the LLM API is the in-process FakeChatModel), delivered through the core's spool, and
read back with boto3 as a user would.

moto keeps only a summary per metric (Count, Min, Max, Last, Avg, StdDev: what
DescribeTrialComponent returns), not the individual points, so the tests assert on those
summaries; a point's step is visible only through `Last` (the value at the highest step).
"""

from __future__ import annotations

import socket
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from otel_bridge_sagemaker import SageMakerSpanExporter
from otel_bridge_sagemaker.settings import ENV_ARTIFACT_BUCKET, ENV_EXPERIMENT_NAME, ENV_RUN_NAME
from otel_bridge_sagemaker.transport import MAX_RUN_OUTPUT_ARTIFACTS, STEP_PARAMETER

from otel_bridge.handler import OTelCallbackHandler
from tests.chains import (
    AGENT_ANSWER,
    AGENT_QUESTION,
    CHAT_ANSWER,
    QUESTION,
    RAG_ANSWER,
    agent,
    chat_model,
    rag_chain,
)

from .aws import Aws
from .throttling_proxy import InjectedError, ThrottlingProxy

pytestmark = pytest.mark.moto


def _wait_until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.02)


def _all_delivered(exporter: SageMakerSpanExporter) -> bool:
    counts = exporter.spool.counts()
    return counts.outbox == 0 and counts.pending_traces == 0


class Traced:
    """Runs real chains with the real handler, spans going straight into one exporter."""

    def __init__(self, exporter: SageMakerSpanExporter) -> None:
        self.exporter = exporter
        self._provider = TracerProvider()
        self._provider.add_span_processor(SimpleSpanProcessor(exporter))
        self.handler = OTelCallbackHandler(tracer_provider=self._provider)

    def invoke(self, runnable: Any, value: Any) -> Any:
        return runnable.invoke(value, {"callbacks": [self.handler]})


def test_traces_land_in_the_users_run(
    aws: Aws, sagemaker_run: Any, make_exporter: Callable[..., SageMakerSpanExporter]
) -> None:
    exporter = make_exporter(run=sagemaker_run)
    traced = Traced(exporter)
    assert traced.invoke(rag_chain(), QUESTION) == RAG_ANSWER
    traced.invoke(agent(), {"messages": [("user", AGENT_QUESTION)]})
    traced.invoke(chat_model(temperature=0.4, max_tokens=32), "Say hello in French.")

    assert exporter.force_flush(30_000)

    name = sagemaker_run.experiment_config["RunName"]
    listed = aws.sagemaker.list_trial_components(TrialName=sagemaker_run.run_group_name)
    assert [tc["TrialComponentName"] for tc in listed["TrialComponentSummaries"]] == [name]
    records = aws.records(name)
    assert Counter(r["record"] for r in records)["trace"] == 3
    generations = [g for r in records if r["record"] == "llm_end" for g in r["generations"]]
    assert {RAG_ANSWER, AGENT_ANSWER, CHAT_ANSWER} <= set(generations)
    assert [r["name"] for r in records if r["record"] == "tool_start"] == ["get_weather"]

    parameters = aws.parameters(name)
    assert parameters["langchain.model"] == "fake-chat-model"
    assert (parameters["langchain.temperature"], parameters["langchain.max_tokens"]) == (0.4, 32.0)
    # 1 + 2 + 1 model calls and 3 traces: one step each.
    assert parameters[STEP_PARAMETER] == 7.0

    metrics = aws.metric_summaries(name)
    assert metrics["trace/latency_seconds"]["Count"] == 3
    assert metrics["trace/errors"]["Max"] == 0.0
    assert metrics["fake-agent-model/latency_seconds"]["Count"] == 2
    assert metrics["fake-rag-model/output_tokens"]["Last"] == len(RAG_ANSWER.split())
    assert metrics["fake-chat-model/input_tokens"]["Count"] == 1


def test_a_given_run_wins_over_the_name_variables(
    sagemaker_run: Any,
    make_exporter: Callable[..., SageMakerSpanExporter],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ENV_EXPERIMENT_NAME, "other-experiment")
    monkeypatch.setenv(ENV_RUN_NAME, "Not_A_Valid_Name")

    exporter = make_exporter(run=sagemaker_run)

    name = sagemaker_run.experiment_config["RunName"]
    assert exporter.settings.trial_component_name == exporter.trial_component_name == name
    # The run's backlog is spooled for that run: no other process delivers it elsewhere.
    assert exporter.destination["run"] == name
    assert exporter.spool.destination == exporter.destination


def test_a_run_is_created_from_names_when_none_is_given(
    aws: Aws, bucket: str, experiment_name: str, make_exporter: Callable[..., SageMakerSpanExporter]
) -> None:
    exporter = make_exporter(
        experiment_name=experiment_name, run_name="nightly", artifact_bucket=bucket
    )
    Traced(exporter).invoke(chat_model(), "hi")

    assert exporter.force_flush(30_000)

    assert aws.sagemaker.describe_experiment(ExperimentName=experiment_name)["ExperimentArn"]
    trial = aws.sagemaker.describe_trial(TrialName=f"Default-Run-Group-{experiment_name}")
    assert trial["ExperimentName"] == experiment_name
    tc = aws.trial_component(f"{experiment_name}-nightly")
    assert tc["Status"]["PrimaryStatus"] == "InProgress" and tc["StartTime"]
    assert tc["OutputArtifacts"]["langchain-records"]["Value"].startswith(f"s3://{bucket}/")
    assert [r["record"] for r in aws.records(f"{experiment_name}-nightly")][:1] == ["trace"]


def test_the_given_sagemaker_session_creates_the_run(
    aws: Aws, bucket: str, experiment_name: str, make_exporter: Callable[..., SageMakerSpanExporter]
) -> None:
    from sagemaker.core.helper.session_helper import Session

    session = Session(boto_session=boto3.Session(region_name="us-east-1"))
    exporter = make_exporter(
        experiment_name=experiment_name,
        run_name="with-session",
        sagemaker_session=session,
        artifact_bucket=bucket,
    )
    Traced(exporter).invoke(chat_model("via session"), "hi")

    assert exporter.force_flush(30_000)

    records = aws.records(f"{experiment_name}-with-session")
    assert [g for r in records if r["record"] == "llm_end" for g in r["generations"]] == [
        "via session"
    ]


@pytest.mark.slow
def test_a_thousand_traces_keep_every_record_and_stay_under_the_artifact_limit(
    aws: Aws, sagemaker_run: Any, make_exporter: Callable[..., SageMakerSpanExporter]
) -> None:
    exporter = make_exporter(run=sagemaker_run, max_batch=250)
    traced = Traced(exporter)
    model = chat_model(*(f"answer {i}" for i in range(1000)))
    for i in range(1000):
        traced.invoke(model, f"question {i}")

    assert exporter.force_flush(120_000)

    name = sagemaker_run.experiment_config["RunName"]
    records = aws.records(name)
    kinds = Counter(r["record"] for r in records)
    assert (kinds["trace"], kinds["llm_start"], kinds["llm_end"]) == (1000, 1000, 1000)
    assert {g for r in records if r["record"] == "llm_end" for g in r["generations"]} == {
        f"answer {i}" for i in range(1000)
    }
    assert len({r["trace_id"] for r in records}) == 1000
    artifacts = aws.trial_component(name)["OutputArtifacts"]
    assert len(artifacts) == 1 < MAX_RUN_OUTPUT_ARTIFACTS
    assert aws.metric_summaries(name)["trace/latency_seconds"]["Count"] == 1000
    assert aws.parameters(name)[STEP_PARAMETER] == 2000.0


def test_throttling_delays_delivery_and_loses_nothing(
    aws: Aws, aws_env: str, sagemaker_run: Any, make_exporter: Callable[..., SageMakerSpanExporter]
) -> None:
    with ThrottlingProxy(aws_env, fail_first=15) as proxy:
        exporter = make_exporter(run=sagemaker_run, endpoint_url=proxy.url)
        traced = Traced(exporter)
        for i in range(20):
            traced.invoke(chat_model(f"reply {i}"), f"question {i}")

        # The worker retries on its own, with the core's backoff; nothing calls force_flush.
        _wait_until(lambda: _all_delivered(exporter), "the throttled traces were delivered")

    assert proxy.failed == 15
    assert exporter.spool.counts().dead_letters == 0
    name = sagemaker_run.experiment_config["RunName"]
    records = aws.records(name)
    assert {g for r in records if r["record"] == "llm_end" for g in r["generations"]} == {
        f"reply {i}" for i in range(20)
    }
    assert Counter(r["record"] for r in records)["trace"] == 20
    # Retried batches reuse their steps, so no metric point is counted twice.
    assert aws.metric_summaries(name)["trace/errors"]["Count"] == 20
    assert aws.parameters(name)[STEP_PARAMETER] == 40.0


@pytest.mark.parametrize("operation", ["s3", "BatchPutMetrics", "UpdateTrialComponent"])
def test_a_batch_retried_after_a_partial_write_is_not_duplicated(
    aws: Aws,
    aws_env: str,
    sagemaker_run: Any,
    make_exporter: Callable[..., SageMakerSpanExporter],
    operation: str,
) -> None:
    with ThrottlingProxy(aws_env, fail_first=3, only=operation) as proxy:
        exporter = make_exporter(run=sagemaker_run, endpoint_url=proxy.url)
        traced = Traced(exporter)
        for i in range(3):
            traced.invoke(chat_model(f"reply {i}"), "q")
        _wait_until(lambda: _all_delivered(exporter), f"delivery past failing {operation}")

    assert proxy.failed == 3
    name = sagemaker_run.experiment_config["RunName"]
    records = aws.records(name)
    assert sorted(Counter(r["trace_id"] for r in records if r["record"] == "trace").values()) == [
        1,
        1,
        1,
    ]
    assert aws.metric_summaries(name)["fake-chat-model/latency_seconds"]["Count"] == 3


@pytest.mark.parametrize("seed", [3, 13])
def test_a_partial_batch_put_metrics_error_resends_only_the_refused_points(
    aws: Aws,
    aws_env: str,
    sagemaker_run: Any,
    make_exporter: Callable[..., SageMakerSpanExporter],
    seed: int,
) -> None:
    """BatchPutMetrics takes part of a request and answers per-point errors for the rest (here
    a seeded 30% of the points, INTERNAL_ERROR): the retry sends only those, with their steps,
    so every point reaches moto exactly once."""
    with ThrottlingProxy(aws_env, reject_points=0.3, seed=seed) as proxy:
        exporter = make_exporter(run=sagemaker_run, endpoint_url=proxy.url)
        traced = Traced(exporter)
        for i in range(20):
            traced.invoke(chat_model(f"reply {i}"), f"question {i}")
        traced.invoke(rag_chain(), QUESTION)
        _wait_until(lambda: _all_delivered(exporter), "every point was taken")

    assert proxy.rejected_points >= 10, "hardly any point refused: the test tested nothing"
    assert exporter.spool.counts().dead_letters == 0
    name = sagemaker_run.experiment_config["RunName"]
    summaries = aws.metric_summaries(name)
    # 21 traces, one model call each: a step per call and one per trace (a retried batch may
    # leave one step unused, so that the next batch's records file gets a name of its own).
    assert aws.parameters(name)[STEP_PARAMETER] >= 42.0
    assert summaries["trace/errors"]["Count"] == summaries["trace/latency_seconds"]["Count"] == 21
    held = sum(summary["Count"] for summary in summaries.values())
    # Each point moto holds reached it once: none of those taken was sent again.
    assert sum(proxy.forwarded_points.values()) == len(proxy.forwarded_points) == held
    records = aws.records(name)
    assert Counter(r["record"] for r in records)["trace"] == 21


def test_a_batch_whose_final_answer_was_lost_is_recognised_not_written_again(
    aws: Aws, aws_env: str, sagemaker_run: Any, make_exporter: Callable[..., SageMakerSpanExporter]
) -> None:
    with ThrottlingProxy(
        aws_env,
        fail_first=1,
        error=InjectedError(500, "InternalFailure"),
        only="UpdateTrialComponent",
        lose_answers=True,
    ) as proxy:
        exporter = make_exporter(run=sagemaker_run, endpoint_url=proxy.url)
        traced = Traced(exporter)
        for i in range(3):
            traced.invoke(chat_model(f"reply {i}"), "q")
        _wait_until(lambda: _all_delivered(exporter), "the batch was recognised as delivered")

    assert proxy.failed == 1
    name = sagemaker_run.experiment_config["RunName"]
    trace_records = [r for r in aws.records(name) if r["record"] == "trace"]
    assert len(trace_records) == len({r["trace_id"] for r in trace_records}) == 3
    assert aws.metric_summaries(name)["trace/errors"]["Count"] == 3
    assert aws.parameters(name)[STEP_PARAMETER] == 6.0  # not advanced a second time


def test_access_denied_dead_letters_the_traces_and_a_replay_delivers_them(
    aws: Aws, aws_env: str, sagemaker_run: Any, make_exporter: Callable[..., SageMakerSpanExporter]
) -> None:
    with ThrottlingProxy(
        aws_env, fail_first=1, error=InjectedError(403, "AccessDenied"), only="s3"
    ) as proxy:
        exporter = make_exporter(run=sagemaker_run, endpoint_url=proxy.url)
        Traced(exporter).invoke(chat_model(), "hi")
        _wait_until(
            lambda: exporter.spool.counts().dead_letters == 1, "the trace was dead-lettered"
        )

        (letter,) = exporter.spool.dead_letters()
        assert "AccessDenied" in letter.reason and "PutObject" in letter.reason
        assert exporter.spool.requeue_dead_letters(time.time()) == 1
        assert exporter.force_flush(30_000)

    records = aws.records(sagemaker_run.experiment_config["RunName"])
    assert [r["record"] for r in records if r["record"] == "llm_end"] == ["llm_end"]


def test_otel_bridge_replay_delivers_dead_letters_of_an_exporter_configured_by_env(
    aws: Aws,
    aws_env: str,
    bucket: str,
    experiment_name: str,
    sagemaker_sdk: None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    from otel_bridge.cli import main

    monkeypatch.setenv("OTEL_BRIDGE_SPOOL_DIR", str(tmp_path))
    monkeypatch.setenv(ENV_EXPERIMENT_NAME, experiment_name)
    monkeypatch.setenv(ENV_RUN_NAME, "served")
    monkeypatch.setenv(ENV_ARTIFACT_BUCKET, bucket)
    with ThrottlingProxy(
        aws_env, fail_first=1, error=InjectedError(403, "AccessDenied"), only="s3"
    ) as proxy:
        exporter = SageMakerSpanExporter(endpoint_url=proxy.url, grace_period=0.0)
        try:
            Traced(exporter).invoke(chat_model("replayed"), "hi")
            _wait_until(lambda: exporter.spool.counts().dead_letters == 1, "dead-lettered")
        finally:
            exporter.shutdown()

    assert main(["replay", "--sink", "sagemaker", "--timeout", "60"]) == 0

    records = aws.records(f"{experiment_name}-served")
    assert [g for r in records if r["record"] == "llm_end" for g in r["generations"]] == [
        "replayed"
    ]


def test_an_unreachable_endpoint_keeps_traces_in_the_spool(
    make_exporter: Callable[..., SageMakerSpanExporter], sagemaker_run: Any
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    exporter = make_exporter(
        run=sagemaker_run, endpoint_url=f"http://127.0.0.1:{port}", shutdown_timeout=0.5
    )

    assert Traced(exporter).invoke(chat_model(), "hi").content == CHAT_ANSWER  # app unaffected
    assert exporter.force_flush(1_000) is False

    counts = exporter.spool.counts()
    assert (counts.outbox, counts.dead_letters) == (1, 0)
