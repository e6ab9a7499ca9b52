"""What the SageMaker sink tells front ends such as `otel-bridge demo` about itself."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from otel_bridge.langchain_views import FinishedTrace
from otel_bridge.plugins import SinkReport
from otel_bridge_sagemaker.settings import (
    ENV_AWS_ENDPOINT_URL,
    ENV_ENDPOINT_URL,
    ENV_EXPERIMENT_NAME,
)

__all__ = ["SINK_REPORT"]


def _trace_count(traces: Sequence[FinishedTrace]) -> str:
    return f"{len(traces)} traces"


def _needs(environ: Mapping[str, str]) -> str:
    # Opt-in: a front end must not create experiments in an AWS account just because one is set
    # up, so the sink runs only when pointed at an experiment or an endpoint.
    if any(
        environ.get(variable)
        for variable in (ENV_EXPERIMENT_NAME, ENV_ENDPOINT_URL, ENV_AWS_ENDPOINT_URL)
    ):
        return ""
    return (
        f"set {ENV_EXPERIMENT_NAME} (AWS credentials and region the usual "
        f"way, or {ENV_ENDPOINT_URL} for a SageMaker-compatible endpoint)"
    )


def _destination(exporter: Any) -> str:
    return f"metrics, parameters and artifacts of run {exporter.trial_component_name!r}"


SINK_REPORT = SinkReport(
    title="SageMaker",
    verb="log",
    verb_past="logged",
    work=_trace_count,
    needs=_needs,
    destination=_destination,
)
