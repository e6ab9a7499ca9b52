"""`otel-bridge demo` with its sinks configured the way a user configures them: a real Label
Studio server and a real moto server (both started by `make test`), and OTLP sent to a real
`otel-bridge serve`. Each sink line must say what was delivered, and the services must hold it.

The chat model is the in-process `otel_bridge.testing.FakeChatModel` (the stand-in for a paid
LLM API).
"""

from __future__ import annotations

import socket
import subprocess
import time
import uuid
from pathlib import Path

import boto3

from otel_bridge.otlp import read_traces
from tests.integration.test_demo import clean_environment, run_cli
from tests.integration.test_examples import required_env
from tests.support.fake_openai import FakeJudge
from tests.support.serve import loopback_config, start_serve

_REGION = "us-east-1"
_DEADLINE_S = 60.0


def serve_into_file(directory: Path) -> tuple[subprocess.Popen[str], int]:
    """`otel-bridge serve` with its file sink into `directory`, on a free port."""
    directory.mkdir()
    config = loopback_config(
        directory,
        f"sinks:\n  file: {{path: {directory / 'received.jsonl'}, grace_period: 0.1}}\n",
    )
    process, ports = start_serve(config, cwd=directory, stderr=subprocess.DEVNULL)
    return process, ports["HTTP"]


def test_demo_delivers_to_every_sink_and_an_otlp_endpoint(tmp_path: Path) -> None:
    """All four sinks and OTLP configured at once; the UpTrain judge is the local
    OpenAI-compatible server of tests/support/fake_openai.py."""
    from label_studio_sdk import LabelStudio

    url = required_env("LABEL_STUDIO_URL")
    token = required_env("LABEL_STUDIO_LEGACY_TOKEN")
    moto = required_env("MOTO_ENDPOINT_URL")
    project = f"demo-{uuid.uuid4().hex[:8]}"
    experiment = f"demo-{uuid.uuid4().hex[:8]}"
    bucket = f"demo-{uuid.uuid4().hex[:8]}"
    aws = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": _REGION,
        "AWS_ENDPOINT_URL": moto,
    }
    boto3.client(
        "s3",
        region_name=_REGION,
        endpoint_url=moto,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket=bucket)

    serve, port = serve_into_file(tmp_path / "serve")
    judge = FakeJudge(api_key="sk-demo-judge")
    try:
        env = clean_environment(
            tmp_path,
            LABEL_STUDIO_URL=url,
            LABEL_STUDIO_API_KEY=token,
            OTEL_BRIDGE_LABELSTUDIO_PROJECT_NAME=project,
            OTEL_BRIDGE_SAGEMAKER_EXPERIMENT_NAME=experiment,
            OTEL_BRIDGE_SAGEMAKER_RUN_NAME="demo-run",
            OTEL_BRIDGE_SAGEMAKER_ARTIFACT_BUCKET=bucket,
            OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}",
            OTEL_BRIDGE_UPTRAIN_API_KEY=judge.api_key,
            OTEL_BRIDGE_UPTRAIN_API_BASE=judge.url,
            **aws,
        )
        result = run_cli(["demo"], cwd=tmp_path, env=env)
        assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
        out = result.stdout
        traces = read_traces(tmp_path / "otel-bridge-traces.jsonl")
        llm_calls = sum(len(trace.llm_calls()) for trace in traces)

        assert f"OTLP: sent to http://127.0.0.1:{port} (http/protobuf)" in out
        received = tmp_path / "serve" / "received.jsonl"
        deadline = time.monotonic() + _DEADLINE_S
        while not (received.exists() and len(read_traces(received)) == len(traces)):
            assert time.monotonic() < deadline, "the OTLP traces did not reach otel-bridge serve"
            time.sleep(0.1)
        assert {t.trace_id for t in read_traces(received)} == {t.trace_id for t in traces}
        graded = {request.check for request in judge.graded()}
    finally:
        judge.close()
        serve.terminate()
        serve.wait(timeout=30)

    assert f"Label Studio: sent {llm_calls} review tasks: project {project!r} at {url}" in out
    reviewer = LabelStudio(base_url=url, api_key=token)
    (found,) = [p for p in reviewer.projects.list(title=project) if p.title == project]
    assert len(list(reviewer.tasks.list(project=found.id))) == llm_calls

    component = f"{experiment}-demo-run"
    assert (
        f"SageMaker: logged {len(traces)} traces: metrics, parameters and artifacts of run {component!r}"
        in out
    )
    sagemaker = boto3.client(
        "sagemaker",
        region_name=_REGION,
        endpoint_url=moto,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    metrics = sagemaker.describe_trial_component(TrialComponentName=component)["Metrics"]
    assert {m["MetricName"] for m in metrics} >= {"fake-chat-model/input_tokens"}

    assert "ClearML: logged 4 traces: offline task" in out
    assert "UpTrain: evaluated 4 traces (2 RAG turns): gpt-3.5-turbo as the judge" in out
    assert "Context Relevance Score: 1.0" in out
    assert {"context_relevance", "response_completeness"} <= graded


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_sink_that_is_down_keeps_its_traces_for_the_next_start(tmp_path: Path) -> None:
    """Label Studio configured but unreachable: the demo still succeeds and says so."""
    env = clean_environment(
        tmp_path,
        LABEL_STUDIO_URL=f"http://127.0.0.1:{closed_port()}",
        LABEL_STUDIO_API_KEY="0123456789abcdef0123456789abcdef01234567",
    )
    result = run_cli(["demo", "--spool-dir", str(tmp_path / "spool")], cwd=tmp_path, env=env)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    line = next(line for line in result.stdout.splitlines() if line.startswith("Label Studio:"))
    assert line.startswith("Label Studio: 0 of 4 traces delivered")
    assert "the rest stays in the spool and is retried on the next start" in line
    assert list((tmp_path / "spool").glob("labelstudio-*.sqlite3"))
