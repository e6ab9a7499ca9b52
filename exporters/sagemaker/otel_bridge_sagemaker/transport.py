"""Thin transport to one SageMaker Experiments run: trial component state and parameters,
BatchPutMetrics, and S3 records, with AWS failures mapped to the core's retryable/permanent errors.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    HTTPClientError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from otel_bridge.sink import (
    PermanentError,
    RetryableError,
    http_status_is_retryable,
    retry_after_seconds,
)
from otel_bridge_sagemaker.encoder import MetricPoint, ParameterValue

RECORDS_ARTIFACT = "langchain-records"
# The artifact names the S3 prefix that holds every JSON Lines file of the run, so the run
# uses one of its output artifacts however many flush windows it sees.
RECORDS_MEDIA_TYPE = "s3/uri"
STEP_PARAMETER = "otel_bridge.next_metric_step"
# The records files of the last batches whose writes completed (newest first, one per line):
# a batch whose final write reached SageMaker but whose answer was lost is recognised there
# instead of being written twice, even if a few other batches completed meanwhile.
RECENT_RECORDS_PARAMETER = "otel_bridge.recent_records_files"
_RECENT_RECORDS_KEPT = 8
MAX_RUN_OUTPUT_ARTIFACTS = 30  # sagemaker.core.experiments.run.MAX_RUN_TC_ARTIFACTS_LEN

# One retry policy for the whole exporter: the core's. botocore's own retries would multiply
# its attempts and hide throttling from it, so every client makes exactly one attempt.
CLIENT_CONFIG = Config(
    retries={"total_max_attempts": 1, "mode": "standard"},
    connect_timeout=10,
    read_timeout=30,
)

# Error codes worth retrying: botocore's standard retry mode lists (botocore/retries/standard.py,
# ThrottledRetryableChecker and TransientRetryableChecker) plus expired credentials, which the
# credential provider refreshes before the next attempt.
_THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
    }
)
_TRANSIENT_CODES = frozenset(
    {
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "ExpiredToken",
        "ExpiredTokenException",
        "RequestExpired",
    }
)
# BatchPutMetrics reports per-point failures in its body (sagemaker-metrics API reference).
_RETRYABLE_METRIC_ERRORS = frozenset({"INTERNAL_ERROR", "CONFLICT_ERROR"})
_METRICS_PER_REQUEST = 10  # botocore model: RawMetricDataList max 10
# A batch of traces makes hundreds of small BatchPutMetrics requests; a few in flight hide the
# round trips without tripping SageMaker's request-rate throttling more than necessary.
_PARALLEL_METRIC_REQUESTS = 4
_MAX_PARAMETER_STRING = 2500  # botocore model: StringParameterValue max length


@dataclass(frozen=True, slots=True)
class RunTarget:
    """Where one run's data goes."""

    trial_component_name: str
    bucket: str
    records_prefix: str  # S3 key prefix of the JSON Lines files, ending with "/"

    @property
    def records_uri(self) -> str:
        return f"s3://{self.bucket}/{self.records_prefix}"


@dataclass(frozen=True, slots=True)
class MetricsSent:
    """What one `put_metrics` call achieved: the points SageMaker took, and the first failure
    (None when it took them all). A retry sends only the points not in `accepted`."""

    accepted: tuple[MetricPoint, ...]
    failure: RetryableError | PermanentError | None = None


@dataclass(frozen=True, slots=True)
class RunState:
    """What the trial component holds before a delivery writes to it."""

    parameters: Mapping[str, Mapping[str, Any]]  # boto shape: name -> {StringValue|NumberValue}
    output_artifacts: Mapping[str, Mapping[str, Any]]  # boto shape: name -> {Value, MediaType}
    next_step: int
    recent_records_keys: tuple[str, ...]


class SageMakerTransport:
    """Reads and writes one trial component, its metrics and its records in S3."""

    def __init__(
        self, *, sagemaker_client: Any, metrics_client: Any, s3_client: Any, target: RunTarget
    ) -> None:
        self._sagemaker = sagemaker_client
        self._metrics = metrics_client
        self._s3 = s3_client
        self.target = target

    def read_state(self) -> RunState:
        with aws_errors("DescribeTrialComponent"):
            response = self._sagemaker.describe_trial_component(
                TrialComponentName=self.target.trial_component_name
            )
        parameters = dict(response.get("Parameters") or {})
        step_value = parameters.get(STEP_PARAMETER, {}).get("NumberValue")
        recent = parameters.get(RECENT_RECORDS_PARAMETER, {})
        return RunState(
            parameters=parameters,
            output_artifacts=dict(response.get("OutputArtifacts") or {}),
            next_step=int(step_value) if step_value is not None else 0,
            recent_records_keys=tuple(
                key for key in (recent.get("StringValue") or "").split("\n") if key
            ),
        )

    def mark_in_progress(self) -> None:
        """Give a run without a start time one and the InProgress status, as `with Run` does."""
        with aws_errors("DescribeTrialComponent"):
            response = self._sagemaker.describe_trial_component(
                TrialComponentName=self.target.trial_component_name
            )
        if response.get("StartTime") is not None:
            return
        with aws_errors("UpdateTrialComponent"):
            self._sagemaker.update_trial_component(
                TrialComponentName=self.target.trial_component_name,
                StartTime=datetime.now(UTC),
                Status={"PrimaryStatus": "InProgress", "Message": "logging LangChain traces"},
            )

    def check_artifact_room(self, state: RunState) -> None:
        """Refuse before writing anything when the run has no output artifact left for the records."""
        if RECORDS_ARTIFACT in state.output_artifacts:
            return
        if len(state.output_artifacts) >= MAX_RUN_OUTPUT_ARTIFACTS:
            raise PermanentError(
                f"run {self.target.trial_component_name!r} already has {len(state.output_artifacts)} output "
                f"artifacts (SageMaker allows {MAX_RUN_OUTPUT_ARTIFACTS}); remove one so "
                f"{RECORDS_ARTIFACT!r} can be registered, then replay the dead letters"
            )

    def put_records(self, object_name: str, body: bytes) -> str:
        """Write one records file; returns its S3 key."""
        key = f"{self.target.records_prefix}{object_name}"
        with aws_errors("S3 PutObject"):
            self._s3.put_object(
                Bucket=self.target.bucket, Key=key, Body=body, ContentType="application/jsonl"
            )
        return key

    def trace_ids_in(self, key: str) -> frozenset[str]:
        """The trace ids a records file holds (none when the file is gone)."""
        with aws_errors("S3 GetObject"):
            try:
                body = self._s3.get_object(Bucket=self.target.bucket, Key=key)["Body"].read()
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") == "NoSuchKey":
                    return frozenset()
                raise
        return frozenset(_trace_ids(body))

    def put_metrics(self, points: Sequence[MetricPoint]) -> MetricsSent:
        """Send the points in requests of at most 10 (the API's limit), a few at a time, and
        say which SageMaker took: every request is made even when others fail, and a request
        answered with per-point errors (BatchPutMetrics' partial failure) took the others."""
        chunks = [
            points[start : start + _METRICS_PER_REQUEST]
            for start in range(0, len(points), _METRICS_PER_REQUEST)
        ]
        if len(chunks) <= 1:
            outcomes = [self._put_metric_chunk(chunk) for chunk in chunks]
        else:
            with ThreadPoolExecutor(
                max_workers=min(_PARALLEL_METRIC_REQUESTS, len(chunks)),
                thread_name_prefix="otel-bridge-sagemaker-metrics",
            ) as pool:
                outcomes = list(pool.map(self._put_metric_chunk, chunks))
        return MetricsSent(
            accepted=tuple(point for outcome in outcomes for point in outcome.accepted),
            failure=next((o.failure for o in outcomes if o.failure is not None), None),
        )

    def _put_metric_chunk(self, chunk: Sequence[MetricPoint]) -> MetricsSent:
        try:
            with aws_errors("BatchPutMetrics"):
                response = self._metrics.batch_put_metrics(
                    TrialComponentName=self.target.trial_component_name,
                    MetricData=[
                        {
                            "MetricName": p.name,
                            "Value": p.value,
                            "Step": p.step,
                            "Timestamp": p.timestamp_s,
                        }
                        for p in chunk
                    ],
                )
        except (RetryableError, PermanentError) as error:
            return MetricsSent(accepted=(), failure=error)
        errors = response.get("Errors") or []
        refused = {e.get("MetricIndex") for e in errors}
        if not all(isinstance(index, int) for index in refused):
            # An error that names no point: which ones were taken is unknown; none, to be safe.
            return MetricsSent(accepted=(), failure=_metric_errors_failure(errors, chunk))
        return MetricsSent(
            accepted=tuple(p for index, p in enumerate(chunk) if index not in refused),
            failure=_metric_errors_failure(errors, chunk),
        )

    def write_run(
        self,
        state: RunState,
        parameters: Mapping[str, ParameterValue],
        next_step: int,
        records_key: str,
    ) -> None:
        """Merge `parameters`, the step counter and the records file just written into the run,
        registering the records prefix as an output artifact the first time. This write
        completes a delivery.

        Sends the whole merged maps: the SageMaker API merges by key, but some compatible
        endpoints (moto) replace the map, and neither must lose the run's other parameters.
        """
        merged = dict(state.parameters)
        merged.update({name: _parameter_value(value) for name, value in parameters.items()})
        merged[STEP_PARAMETER] = {"NumberValue": float(next_step)}
        recent = [records_key, *(k for k in state.recent_records_keys if k != records_key)]
        merged[RECENT_RECORDS_PARAMETER] = {"StringValue": _joined_within_limit(recent)}
        request: dict[str, Any] = {
            "TrialComponentName": self.target.trial_component_name,
            "Parameters": merged,
        }
        if RECORDS_ARTIFACT not in state.output_artifacts:
            artifacts = dict(state.output_artifacts)
            artifacts[RECORDS_ARTIFACT] = {
                "Value": self.target.records_uri,
                "MediaType": RECORDS_MEDIA_TYPE,
            }
            request["OutputArtifacts"] = artifacts
        with aws_errors("UpdateTrialComponent"):
            self._sagemaker.update_trial_component(**request)


@contextlib.contextmanager
def aws_errors(action: str) -> Iterator[None]:
    """Translate botocore failures of `action` into RetryableError / PermanentError."""
    try:
        yield
    except ClientError as error:
        raise classify_client_error(action, error) from error
    except (NoCredentialsError, PartialCredentialsError) as error:
        raise PermanentError(
            f"{action}: no usable AWS credentials ({error}); set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
            "AWS_PROFILE or a role"
        ) from error
    except NoRegionError as error:
        raise PermanentError(
            f"{action}: no AWS region; set AWS_REGION or AWS_DEFAULT_REGION"
        ) from error
    except (BotoConnectionError, HTTPClientError, CredentialRetrievalError) as error:
        raise RetryableError(f"{action}: {error}") from error
    except BotoCoreError as error:
        raise PermanentError(f"{action}: {error}") from error


def classify_client_error(action: str, error: ClientError) -> RetryableError | PermanentError:
    details = error.response.get("Error", {})
    code = str(details.get("Code", ""))
    message = str(details.get("Message", ""))
    metadata = error.response.get("ResponseMetadata", {})
    status = int(metadata.get("HTTPStatusCode") or 0)
    reason = f"{action}: {code or 'HTTP ' + str(status)}: {message}".rstrip(": ")
    # Past botocore's retryable codes, the sink contract's HTTP classifier decides; a ClientError
    # without a status (0) is an answer we cannot read, not a missing one: permanent.
    retryable_status = status != 0 and http_status_is_retryable(status)
    if code in _THROTTLING_CODES or code in _TRANSIENT_CODES or retryable_status:
        headers = metadata.get("HTTPHeaders") or {}
        return RetryableError(reason, retry_after=retry_after_seconds(headers.get("retry-after")))
    return PermanentError(reason)


def _metric_errors_failure(
    errors: Sequence[Mapping[str, Any]], chunk: Sequence[MetricPoint]
) -> RetryableError | PermanentError | None:
    if not errors:
        return None
    codes = sorted({str(e.get("Code")) for e in errors})
    first = errors[0]
    index = first.get("MetricIndex")
    point = chunk[index] if isinstance(index, int) and 0 <= index < len(chunk) else None
    reason = f"BatchPutMetrics rejected {len(errors)} point(s) ({', '.join(codes)})" + (
        f", first {point.name!r} step {point.step}" if point is not None else ""
    )
    if set(codes) <= _RETRYABLE_METRIC_ERRORS:
        return RetryableError(reason)
    return PermanentError(reason)


def _trace_ids(body: bytes) -> Iterator[str]:
    for line in body.splitlines():
        try:
            record = json.loads(line)
        except ValueError:  # a file we did not write whole: its other lines still count
            continue
        if isinstance(record, dict) and isinstance(record.get("trace_id"), str):
            yield record["trace_id"]


def _joined_within_limit(keys: Sequence[str]) -> str:
    kept: list[str] = []
    for key in keys[:_RECENT_RECORDS_KEPT]:
        if sum(len(k) + 1 for k in [*kept, key]) > _MAX_PARAMETER_STRING:
            break
        kept.append(key)
    return "\n".join(kept)


def _parameter_value(value: ParameterValue) -> dict[str, Any]:
    if isinstance(value, str):
        return {"StringValue": value}
    return {"NumberValue": float(value)}
