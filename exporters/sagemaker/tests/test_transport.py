"""The SageMaker transport against the real moto server: trial component state and parameters,
BatchPutMetrics, S3 records, and how AWS failures (answered by a proxy in front of moto, parsed
by the real botocore) map to retryable / permanent errors."""

from __future__ import annotations

import socket
import time
import uuid
from typing import Any

import boto3
import pytest
from otel_bridge_sagemaker.encoder import MetricPoint
from otel_bridge_sagemaker.transport import (
    CLIENT_CONFIG,
    MAX_RUN_OUTPUT_ARTIFACTS,
    RECENT_RECORDS_PARAMETER,
    RECORDS_ARTIFACT,
    STEP_PARAMETER,
    RunTarget,
    SageMakerTransport,
)

from otel_bridge.sink import PermanentError, RetryableError

from .aws import REGION, Aws
from .throttling_proxy import InjectedError, ThrottlingProxy

pytestmark = pytest.mark.moto


def _transport(endpoint_url: str, trial_component: str, bucket: str) -> SageMakerTransport:
    clients = [
        boto3.client(name, region_name=REGION, endpoint_url=endpoint_url, config=CLIENT_CONFIG)
        for name in ("sagemaker", "sagemaker-metrics", "s3")
    ]
    return SageMakerTransport(
        sagemaker_client=clients[0],
        metrics_client=clients[1],
        s3_client=clients[2],
        target=RunTarget(trial_component, bucket, f"artifacts/{trial_component}/records/"),
    )


@pytest.fixture
def trial_component(aws: Aws) -> str:
    name = f"tc-{uuid.uuid4().hex[:12]}"
    aws.sagemaker.create_trial_component(
        TrialComponentName=name, Parameters={"user.param": {"StringValue": "kept"}}
    )
    return name


def test_write_run_merges_parameters_registers_artifact_once_and_keeps_the_step(
    aws: Aws, aws_env: str, trial_component: str, bucket: str
) -> None:
    transport = _transport(aws_env, trial_component, bucket)
    first = transport.read_state()
    assert first.next_step == 0

    transport.write_run(
        first, {"langchain.model": "m-1", "langchain.temperature": 0.5}, 7, "records/a.jsonl"
    )
    second = transport.read_state()
    transport.write_run(second, {"langchain.model": "m-2"}, 9, "records/b.jsonl")

    assert aws.parameters(trial_component) == {
        "user.param": "kept",
        "langchain.model": "m-2",
        "langchain.temperature": 0.5,
        STEP_PARAMETER: 9.0,
        RECENT_RECORDS_PARAMETER: "records/b.jsonl\nrecords/a.jsonl",
    }
    state = transport.read_state()
    assert (state.next_step, state.recent_records_keys) == (
        9,
        ("records/b.jsonl", "records/a.jsonl"),
    )
    artifacts = aws.trial_component(trial_component)["OutputArtifacts"]
    assert artifacts == {
        RECORDS_ARTIFACT: {
            "Value": f"s3://{bucket}/artifacts/{trial_component}/records/",
            "MediaType": "s3/uri",
        }
    }


def test_only_the_most_recent_records_files_are_remembered(
    aws_env: str, trial_component: str, bucket: str
) -> None:
    transport = _transport(aws_env, trial_component, bucket)
    for step in range(12):
        transport.write_run(transport.read_state(), {}, step + 1, f"records/{step:03d}.jsonl")

    recent = transport.read_state().recent_records_keys

    assert recent == tuple(f"records/{step:03d}.jsonl" for step in range(11, 3, -1))


def test_trace_ids_are_read_back_from_a_records_file(
    aws_env: str, trial_component: str, bucket: str
) -> None:
    transport = _transport(aws_env, trial_component, bucket)
    key = transport.put_records("x.jsonl", b'{"trace_id":"aa"}\n{"trace_id":"bb"}\n')

    assert transport.trace_ids_in(key) == {"aa", "bb"}
    assert transport.trace_ids_in(f"{key}.missing") == frozenset()


def test_mark_in_progress_starts_a_run_once(
    aws: Aws, aws_env: str, trial_component: str, bucket: str
) -> None:
    transport = _transport(aws_env, trial_component, bucket)

    transport.mark_in_progress()
    started = aws.trial_component(trial_component)
    transport.mark_in_progress()

    assert started["Status"]["PrimaryStatus"] == "InProgress"
    assert aws.trial_component(trial_component)["StartTime"] == started["StartTime"]


def test_metrics_arrive_through_batch_put_metrics_in_chunks(
    aws: Aws, aws_env: str, trial_component: str, bucket: str
) -> None:
    transport = _transport(aws_env, trial_component, bucket)
    now = time.time()
    # 25 points: three BatchPutMetrics requests of at most 10 (the API's limit).
    points = [MetricPoint("m/latency_seconds", float(step), step, now) for step in range(25)]

    transport.put_metrics(points)

    summary = aws.metric_summaries(trial_component)["m/latency_seconds"]
    assert (summary["Count"], summary["Min"], summary["Max"], summary["Last"]) == (
        25,
        0.0,
        24.0,
        24.0,
    )


def test_metrics_sent_again_with_the_same_steps_do_not_add_points(
    aws: Aws, aws_env: str, trial_component: str, bucket: str
) -> None:
    transport = _transport(aws_env, trial_component, bucket)
    points = [MetricPoint("tokens", 3.0, step, time.time()) for step in range(4)]

    transport.put_metrics(points)
    transport.put_metrics(points)

    assert aws.metric_summaries(trial_component)["tokens"]["Count"] == 4


def test_records_land_in_s3_under_the_prefix(
    aws: Aws, aws_env: str, trial_component: str, bucket: str
) -> None:
    transport = _transport(aws_env, trial_component, bucket)

    key = transport.put_records("window-1.jsonl", b'{"a":1}\n')

    assert key == f"artifacts/{trial_component}/records/window-1.jsonl"
    assert aws.s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b'{"a":1}\n'


def test_a_run_without_room_for_the_records_artifact_is_a_permanent_error(
    aws: Aws, aws_env: str, trial_component: str, bucket: str
) -> None:
    aws.sagemaker.update_trial_component(
        TrialComponentName=trial_component,
        OutputArtifacts={
            f"user-{i}": {"Value": f"s3://{bucket}/u{i}"} for i in range(MAX_RUN_OUTPUT_ARTIFACTS)
        },
    )
    transport = _transport(aws_env, trial_component, bucket)

    with pytest.raises(PermanentError, match="30 output artifacts"):
        transport.check_artifact_room(transport.read_state())


def test_metrics_for_a_missing_trial_component_are_a_permanent_error(
    aws_env: str, bucket: str
) -> None:
    transport = _transport(aws_env, "no-such-run", bucket)

    sent = transport.put_metrics([MetricPoint("m", 1.0, 0, time.time())])

    assert sent.accepted == ()
    assert isinstance(sent.failure, PermanentError) and "VALIDATION_ERROR" in sent.failure.reason


def test_describing_a_missing_trial_component_is_a_permanent_error(
    aws_env: str, bucket: str
) -> None:
    with pytest.raises(PermanentError, match="DescribeTrialComponent"):
        _transport(aws_env, "no-such-run", bucket).read_state()


def _call(transport: SageMakerTransport, operation: str) -> Any:
    if operation == "DescribeTrialComponent":
        return transport.read_state()
    if operation == "BatchPutMetrics":
        sent = transport.put_metrics([MetricPoint("m", 1.0, 0, time.time())])
        if sent.failure is not None:
            raise sent.failure
        return sent
    return transport.put_records("x.jsonl", b"{}\n")


# Each AWS protocol's error as the real botocore parses it from the proxy's answer.
@pytest.mark.parametrize(
    ("operation", "error", "expected"),
    [
        ("DescribeTrialComponent", InjectedError(), RetryableError),  # 400 ThrottlingException
        ("BatchPutMetrics", InjectedError(), RetryableError),  # 400 ThrottlingException
        ("PutObject", InjectedError(), RetryableError),  # 503 SlowDown
        ("DescribeTrialComponent", InjectedError(500, "InternalFailure"), RetryableError),
        ("DescribeTrialComponent", InjectedError(503, "ServiceUnavailable"), RetryableError),
        ("BatchPutMetrics", InjectedError(502, "BadGateway"), RetryableError),
        ("PutObject", InjectedError(500, "InternalError"), RetryableError),
        ("DescribeTrialComponent", InjectedError(400, "AccessDeniedException"), PermanentError),
        ("DescribeTrialComponent", InjectedError(400, "ValidationException"), PermanentError),
        ("BatchPutMetrics", InjectedError(403, "AccessDeniedException"), PermanentError),
        ("PutObject", InjectedError(403, "AccessDenied"), PermanentError),
        ("PutObject", InjectedError(404, "NoSuchBucket"), PermanentError),
    ],
)
def test_aws_errors_map_to_retryable_or_permanent(
    aws_env: str,
    trial_component: str,
    bucket: str,
    operation: str,
    error: InjectedError,
    expected: type[Exception],
) -> None:
    with ThrottlingProxy(aws_env, fail_first=1, error=error) as proxy:
        transport = _transport(proxy.url, trial_component, bucket)
        with pytest.raises(expected) as raised:
            _call(transport, operation)
        assert proxy.failed == 1
        assert isinstance(raised.value, RetryableError | PermanentError)
        assert raised.value.reason  # says what failed
        _call(transport, operation)  # the proxy lets the next request through: not sticky


def test_an_unreachable_endpoint_is_retryable(trial_component: str, bucket: str) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    transport = _transport(f"http://127.0.0.1:{port}", trial_component, bucket)

    with pytest.raises(RetryableError, match="DescribeTrialComponent"):
        transport.read_state()


@pytest.mark.parametrize(
    ("header", "seconds"), [("7", 7.0), ("inf", None), ("-3", None), ("99999999", 3600.0)]
)
def test_retry_after_is_read_by_the_sink_contract(
    aws_env: str, trial_component: str, bucket: str, header: str, seconds: float | None
) -> None:
    """The hint goes through otel_bridge.sink.retry_after_seconds: unusable values give None
    (the worker's backoff applies) and a long one is bounded."""
    error = InjectedError(503, "ServiceUnavailable", retry_after=header)
    with ThrottlingProxy(aws_env, fail_first=1, error=error) as proxy:
        transport = _transport(proxy.url, trial_component, bucket)
        with pytest.raises(RetryableError) as raised:
            transport.read_state()
    assert raised.value.retry_after == seconds
