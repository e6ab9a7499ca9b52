"""What the SageMaker sink tells front ends such as `otel-bridge demo` about itself."""

from __future__ import annotations

from typing import Any

from otel_bridge.plugins import SinkReport, count_traces, needs_one_of
from otel_bridge_sagemaker.settings import (
    ENV_AWS_ENDPOINT_URL,
    ENV_ENDPOINT_URL,
    ENV_EXPERIMENT_NAME,
)

__all__ = ["SINK_REPORT"]


def _destination(exporter: Any) -> str:
    return f"metrics, parameters and artifacts of run {exporter.trial_component_name!r}"


SINK_REPORT = SinkReport(
    title="SageMaker",
    verb="log",
    verb_past="logged",
    work=count_traces,
    # Opt-in: a front end must not create experiments in an AWS account just because one is set
    # up, so the sink runs only when pointed at an experiment or an endpoint.
    needs=needs_one_of(
        (ENV_EXPERIMENT_NAME, ENV_ENDPOINT_URL, ENV_AWS_ENDPOINT_URL),
        f"set {ENV_EXPERIMENT_NAME} (AWS credentials and region the usual way, or "
        f"{ENV_ENDPOINT_URL} for a SageMaker-compatible endpoint)",
    ),
    destination=_destination,
)
