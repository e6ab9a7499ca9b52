"""The seed page's example (LangChain docs, "SageMaker Tracking": an LLM chain, a sequential chain
and an agent with tools, each inside `with Run(experiment_name=..., run_name=...,
sagemaker_session=session) as run:` with `SageMakerCallbackHandler(run)`) run as a script in a
subprocess, unchanged but for its import lines (exporters/sagemaker/tests/seed_example.py says
exactly what changed). Each `with` block's exit writes down what its run holds at that moment
(exporters/sagemaker/tests/seed_runner.py, reading moto directly): everything traced in the block
is there, once, before the block ends, and nothing more arrives after the script ended.

Stand-ins on loopback: `FakeOpenAI` for OpenAI's completion model (OPENAI_BASE_URL), moto for
AWS (AWS_ENDPOINT_URL). One setting is added, OTEL_BRIDGE_SAGEMAKER_ARTIFACT_BUCKET: the page's
`Session(default_bucket=None)` finds its default bucket through STS at the SDK's hard-coded
regional endpoint (https://sts.<region>.amazonaws.com), which moto cannot stand in for.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fake_openai import FakeOpenAI
from tests.support.processes import run_python

from .aws import Aws

pytestmark = pytest.mark.moto

REPO_ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = Path(__file__).with_name("seed_example.py")
EXPERIMENT = "langchain-sagemaker-tracker"


@pytest.fixture
def openai_api() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key="<ADD-KEY-HERE>") as server:  # the page's placeholder key
        yield server


def test_the_seed_example_is_in_each_run_once_before_its_with_block_ends(
    aws: Aws, bucket: str, openai_api: FakeOpenAI, tmp_path: Path
) -> None:
    snapshots = tmp_path / "runs-at-exit.jsonl"
    env = {
        **os.environ,
        "OPENAI_BASE_URL": openai_api.url,
        "OTEL_BRIDGE_SPOOL_DIR": str(tmp_path / "spool"),
        "OTEL_BRIDGE_SAGEMAKER_ARTIFACT_BUCKET": bucket,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    run_python(
        "-m",
        "exporters.sagemaker.tests.seed_runner",
        str(EXAMPLE),
        str(snapshots),
        env=env,
        timeout=600,
    )

    at_exit = [json.loads(line) for line in snapshots.read_text().splitlines()]
    assert [s["run"] for s in at_exit] == ["run-scenario-1", "run-scenario-2", "run-scenario-3"]
    kinds = {s["run"]: Counter(r["record"] for r in s["records"]) for s in at_exit}
    # One trace per block, with the original's record kinds: the LLM chain's call, the
    # sequential chain's two chains and calls, the agent's calculator step and its answer.
    assert {run: counts["trace"] for run, counts in kinds.items()} == dict.fromkeys(kinds, 1)
    assert kinds["run-scenario-1"]["llm_end"] == 1
    assert kinds["run-scenario-2"]["llm_end"] == 2 and kinds["run-scenario-2"]["chain_end"] == 3
    assert {"agent_action", "tool_start", "tool_end", "agent_finish"} <= set(
        kinds["run-scenario-3"]
    )
    model_calls = {"run-scenario-1": 1, "run-scenario-2": 2, "run-scenario-3": 3}
    for snapshot in at_exit:
        assert snapshot["status"] == "Completed"
        calls = model_calls[snapshot["run"]]
        assert snapshot["metrics"]["gpt-3.5-turbo-instruct/latency_seconds"] == calls
        assert snapshot["metrics"]["trace/latency_seconds"] == 1

    # After the script ended: the same, nothing delivered twice or late into another run.
    for snapshot in at_exit:
        name = f"{EXPERIMENT}-{snapshot['run']}"
        assert Counter(r["record"] for r in aws.records(name)) == kinds[snapshot["run"]]
        assert {k: v["Count"] for k, v in aws.metric_summaries(name).items()} == snapshot["metrics"]
