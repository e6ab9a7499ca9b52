"""Fixtures for the SageMaker exporter tests: the moto server `make test` starts (MOTO_ENDPOINT_URL),
fake AWS credentials, a fresh bucket and experiment per test, and read-back helpers."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from otel_bridge_sagemaker import SageMakerSpanExporter
from otel_bridge_sagemaker.settings import (
    ENV_ARTIFACT_BUCKET,
    ENV_ARTIFACT_PREFIX,
    ENV_ENDPOINT_URL,
    ENV_EXPERIMENT_NAME,
    ENV_RUN_NAME,
    ENV_SERVICE_NAME,
)

from otel_bridge.delivery import RetryPolicy
from tests.support.factories import shut_down_after

from .aws import REGION, Aws

# Retries quick enough for a test to see several, with a deadline no test reaches.
FAST_RETRY = RetryPolicy(initial_backoff=0.01, max_backoff=0.05, deadline=120.0)


@pytest.fixture(scope="session")
def moto_url() -> str:
    url = os.environ.get("MOTO_ENDPOINT_URL")
    if not url:
        pytest.fail(
            "MOTO_ENDPOINT_URL is not set: the SageMaker exporter tests need the moto server that "
            "`make test` starts; run them as `scripts/services.sh run -- .venv/bin/python -m pytest "
            "exporters/sagemaker/tests`",
            pytrace=False,
        )
    return url


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, moto_url: str) -> str:
    """Fake credentials and every AWS client pointed at moto, as a user's environment would."""
    for name in (
        ENV_EXPERIMENT_NAME,
        ENV_RUN_NAME,
        ENV_ARTIFACT_BUCKET,
        ENV_ARTIFACT_PREFIX,
        ENV_ENDPOINT_URL,
        ENV_SERVICE_NAME,
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    return moto_url


@pytest.fixture
def aws(aws_env: str) -> Aws:
    return Aws(
        sagemaker=boto3.client("sagemaker", region_name=REGION),
        s3=boto3.client("s3", region_name=REGION),
        metrics=boto3.client("sagemaker-metrics", region_name=REGION),
    )


@pytest.fixture
def bucket(aws: Aws) -> str:
    name = f"otel-bridge-{uuid.uuid4().hex[:12]}"
    aws.s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def experiment_name() -> str:
    return f"exp-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def sagemaker_sdk() -> None:
    """Imports the SageMaker SDK up front: the import alone takes seconds on a busy machine,
    and tests with a flush timeout should not spend it inside the exporter's first delivery."""
    import sagemaker.core.experiments.run  # noqa: F401


@pytest.fixture
def sagemaker_run(sagemaker_sdk: None, experiment_name: str, bucket: str) -> Iterator[Any]:
    """A real `sagemaker.core.experiments.run.Run`, used inside its `with` block as users do."""
    from sagemaker.core.experiments.run import Run

    with Run(experiment_name=experiment_name, run_name="run-1", artifact_bucket=bucket) as run:
        yield run


@pytest.fixture
def make_exporter(
    tmp_path: Path, aws_env: str, sagemaker_sdk: None
) -> Iterator[Callable[..., SageMakerSpanExporter]]:
    defaults = {"spool_dir": tmp_path / "spool", "grace_period": 0.0, "retry": FAST_RETRY}
    yield from shut_down_after(lambda **options: SageMakerSpanExporter(**{**defaults, **options}))
