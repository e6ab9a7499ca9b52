"""Time a LangChain chain spends on the app's thread with no handler, with langchain_community's
SageMakerCallbackHandler (uploads one S3 file per callback, in the callback) and with
otel_bridge_sagemaker's drop-in (spools, delivers in the background), all against the same moto
server; also how many of the calls' records each one leaves in the run.

    scripts/services.sh run -- .venv/bin/python bench/sagemaker_handler.py [CALLS]

The LLM API is the in-process FakeChatModel (no network), so the figures are handler overhead.
"""

from __future__ import annotations

import logging
import os
import platform
import sys
import tempfile
import time
import uuid
from typing import Any

import boto3
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable

from otel_bridge.testing import FakeChatModel


def _chain() -> Runnable:
    prompt = ChatPromptTemplate.from_template("Answer briefly: {question}")
    return prompt | FakeChatModel(responses=["a short answer"]) | StrOutputParser()


def _time_calls(calls: int, callbacks: list[Any]) -> float:
    chain = _chain()
    started = time.perf_counter()
    for i in range(calls):
        chain.invoke({"question": f"question {i}"}, {"callbacks": callbacks})
    return time.perf_counter() - started


def _run(bucket: str) -> Any:
    from sagemaker.core.experiments.run import Run

    return Run(
        experiment_name=f"bench-{uuid.uuid4().hex[:8]}", run_name="r", artifact_bucket=bucket
    )


def _artifacts(run: Any) -> int:
    name = run.experiment_config["RunName"]
    described = boto3.client("sagemaker").describe_trial_component(TrialComponentName=name)
    return len(described.get("OutputArtifacts", {}))


def _records(run: Any, bucket: str) -> int:
    s3 = boto3.client("s3")
    prefix = f"trial-component-artifacts/{run.experiment_config['RunName']}/langchain-records/"
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return sum(
        len(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read().splitlines())
        for item in listed
    )


def main() -> int:
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    endpoint = os.environ.get("MOTO_ENDPOINT_URL")
    if not endpoint:
        print("MOTO_ENDPOINT_URL is not set: run under scripts/services.sh", file=sys.stderr)
        return 2
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=endpoint,
        OTEL_BRIDGE_SPOOL_DIR=tempfile.mkdtemp(prefix="otel-bridge-bench-"),
    )
    # The seed's callbacks fail on LCEL inputs and past the artifact limit; LangChain logs
    # each failure as a warning and carries on, which would flood the output.
    logging.basicConfig(level=logging.ERROR, force=True)
    from langchain_community.callbacks.sagemaker_callback import (
        SageMakerCallbackHandler as SeedHandler,
    )
    from otel_bridge_sagemaker import SageMakerCallbackHandler

    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    _time_calls(5, [])  # warm up imports and the model

    baseline = _time_calls(calls, [])

    seed_run = _run(bucket)
    with seed_run:
        seed_handler = SeedHandler(seed_run)
        seed = _time_calls(calls, [seed_handler])
    seed_artifacts = _artifacts(seed_run)
    # The seed writes each record to its temp dir before uploading it, even when the upload
    # then fails on the artifact limit.
    seed_records = len(os.listdir(seed_handler.temp_dir))

    ours_run = _run(bucket)
    with ours_run:
        handler = SageMakerCallbackHandler(ours_run)
        ours = _time_calls(calls, [handler])
        flush_started = time.perf_counter()
        flushed = handler.flush_tracker(timeout_s=120)
        flush = time.perf_counter() - flush_started
        handler.shutdown()
    ours_records = _records(ours_run, bucket)

    def per_call(seconds: float) -> str:
        return f"{seconds / calls * 1000:8.2f} ms/call"

    print(f"machine: {platform.machine()} {platform.system()} python {platform.python_version()}")
    print(f"{calls} calls of prompt | FakeChatModel | StrOutputParser, moto at {endpoint}")
    print(f"  no handler                       {per_call(baseline)}  (app thread)")
    print(
        f"  langchain_community (seed)       {per_call(seed)}  (app thread)"
        f"  -> {seed_artifacts} of {seed_records} records kept (1 artifact each, limit 30)"
    )
    print(
        f"  otel_bridge_sagemaker drop-in    {per_call(ours)}  (app thread)"
        f"  -> {ours_records} records in 1 artifact; flush_tracker {flush:.2f} s, ok={flushed}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
