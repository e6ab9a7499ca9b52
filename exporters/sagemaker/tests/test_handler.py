"""The drop-in `SageMakerCallbackHandler(run)` against moto: the seed's constructor, records of
real chains (the LLM API is the in-process FakeChatModel) in the run, `flush_tracker()` again
and again, and one run per handler."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from otel_bridge_sagemaker import SageMakerCallbackHandler
from otel_bridge_sagemaker.transport import STEP_PARAMETER

from otel_bridge.handler import OTelCallbackHandler
from tests.chains import AGENT_QUESTION, QUESTION, RAG_ANSWER, agent, chat_model, rag_chain

from .aws import Aws

pytestmark = pytest.mark.moto


@pytest.fixture(autouse=True)
def spool_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The seed's constructor takes only the run, so the spool location comes from the env."""
    monkeypatch.setenv("OTEL_BRIDGE_SPOOL_DIR", str(tmp_path))
    monkeypatch.setenv("OTEL_BRIDGE_GRACE_PERIOD", "0")
    return tmp_path


def _generations(records: list[dict[str, Any]]) -> list[str]:
    return [g for r in records if r["record"] == "llm_end" for g in r["generations"]]


def test_flush_tracker_delivers_and_keeps_working_after_a_flush(
    aws: Aws, sagemaker_run: Any
) -> None:
    handler = SageMakerCallbackHandler(sagemaker_run)
    try:
        assert isinstance(handler, OTelCallbackHandler)
        assert handler.run is sagemaker_run
        name = sagemaker_run.experiment_config["RunName"]

        rag_chain().invoke(QUESTION, {"callbacks": [handler]})
        assert handler.metrics["llm_starts"] == 1  # the original's callback counters
        assert handler.flush_tracker()
        assert set(handler.metrics.values()) == {0}  # set back to 0, as the original's were
        assert _generations(aws.records(name)) == [RAG_ANSWER]

        agent().invoke({"messages": [("user", AGENT_QUESTION)]}, {"callbacks": [handler]})
        assert handler.flush_tracker()  # the seed's raised FileNotFoundError from here on
        assert handler.flush_tracker()  # nothing pending: still fine

        records = aws.records(name)
        assert Counter(r["record"] for r in records)["trace"] == 2
        assert {"chain_start", "tool_start", "tool_end", "agent_action"} <= {
            r["record"] for r in records
        }
        # Steps count on across flushes: 1 + 2 model calls and 2 traces.
        assert aws.parameters(name)[STEP_PARAMETER] == 5.0
    finally:
        handler.shutdown()


def test_each_handler_logs_only_its_own_calls_into_its_own_run(
    aws: Aws, bucket: str, experiment_name: str
) -> None:
    from sagemaker.core.experiments.run import Run

    # The SDK allows one `with Run` at a time; the other run is used without entering it.
    run_b = Run(experiment_name=f"{experiment_name}-b", run_name="b", artifact_bucket=bucket)
    with Run(experiment_name=experiment_name, run_name="a", artifact_bucket=bucket) as run_a:
        first, second = SageMakerCallbackHandler(run_a), SageMakerCallbackHandler(run_b)
        try:
            chat_model("for a").invoke("hi", {"callbacks": [first]})
            chat_model("for b").invoke("hi", {"callbacks": [second]})
            chat_model("for b again").invoke("hi", {"callbacks": [second]})
            assert first.flush_tracker() and second.flush_tracker()
        finally:
            first.shutdown()
            second.shutdown()

    assert _generations(aws.records(run_a.experiment_config["RunName"])) == ["for a"]
    assert sorted(_generations(aws.records(run_b.experiment_config["RunName"]))) == [
        "for b",
        "for b again",
    ]


def test_delivery_still_works_after_the_run_context_has_exited(
    aws: Aws, bucket: str, experiment_name: str
) -> None:
    from sagemaker.core.experiments.run import Run

    with Run(experiment_name=experiment_name, run_name="closed", artifact_bucket=bucket) as run:
        handler = SageMakerCallbackHandler(run)
        chat_model("late answer").invoke("hi", {"callbacks": [handler]})
    try:
        # Run's log_* methods refuse outside `with`; the exporter does not depend on them.
        assert handler.flush_tracker()
    finally:
        handler.shutdown()

    name = run.experiment_config["RunName"]
    assert _generations(aws.records(name)) == ["late answer"]
    assert aws.trial_component(name)["Status"]["PrimaryStatus"] == "Completed"


def test_everything_is_in_the_run_when_its_with_block_ends(
    aws: Aws, bucket: str, experiment_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The original wrote inside the run; the drop-in delivers when the run closes: records and
    metrics are there as soon as `with Run(...)` ends, with no flush call (a 30 s grace period
    rules out delivery by timing)."""
    from sagemaker.core.experiments.run import Run

    monkeypatch.setenv("OTEL_BRIDGE_GRACE_PERIOD", "30")
    with Run(experiment_name=experiment_name, run_name="with", artifact_bucket=bucket) as run:
        handler = SageMakerCallbackHandler(run)
        rag_chain().invoke(QUESTION, {"callbacks": [handler]})
    try:
        name = run.experiment_config["RunName"]
        assert _generations(aws.records(name)) == [RAG_ANSWER]
        assert aws.metric_summaries(name), "no metric reached the run before it closed"
        assert aws.trial_component(name)["Status"]["PrimaryStatus"] == "Completed"
    finally:
        handler.shutdown()


def test_jsonf_logs_a_json_artifact_into_the_run_like_the_original(
    aws: Aws, bucket: str, experiment_name: str
) -> None:
    from sagemaker.core.experiments.run import Run

    with Run(experiment_name=experiment_name, run_name="jsonf", artifact_bucket=bucket) as run:
        handler = SageMakerCallbackHandler(run)
        try:
            handler.jsonf({"answer": 42}, handler.temp_dir, "custom_record")
        finally:
            handler.shutdown()
    artifacts = aws.trial_component(run.experiment_config["RunName"])["OutputArtifacts"]
    assert "custom_record" in artifacts
