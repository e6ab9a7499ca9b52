"""Where the SageMaker exporter logs, resolved once from arguments and environment variables
(argument > OTEL_BRIDGE_SAGEMAKER_* > generic variable > default).
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

ENV_EXPERIMENT_NAME = "OTEL_BRIDGE_SAGEMAKER_EXPERIMENT_NAME"
ENV_RUN_NAME = "OTEL_BRIDGE_SAGEMAKER_RUN_NAME"
ENV_ARTIFACT_BUCKET = "OTEL_BRIDGE_SAGEMAKER_ARTIFACT_BUCKET"
ENV_ARTIFACT_PREFIX = "OTEL_BRIDGE_SAGEMAKER_ARTIFACT_PREFIX"
ENV_ENDPOINT_URL = "OTEL_BRIDGE_SAGEMAKER_ENDPOINT_URL"
# Generic variables: the OTel service name names the experiment, and the AWS SDKs' global
# endpoint override (which boto3 honours for every service) points every client elsewhere.
ENV_SERVICE_NAME = "OTEL_SERVICE_NAME"
ENV_AWS_ENDPOINT_URL = "AWS_ENDPOINT_URL"

DEFAULT_EXPERIMENT_NAME = "otel-bridge"
DEFAULT_ARTIFACT_PREFIX = "trial-component-artifacts"  # the SageMaker SDK's own default

# sagemaker.core.experiments.run: names are lower-cased, joined into the trial component name
# "<experiment>-<run>" (pattern below, at most 120 characters), each at most 59 characters.
_NAME_PATTERN = re.compile(r"^[a-z0-9](-*[a-z0-9])*$")
_MAX_NAME_LENGTH = 59


@dataclass(frozen=True, slots=True)
class SageMakerSettings:
    """The resolved configuration of one `SageMakerSpanExporter`.

    `run_name_generated` is True when no run name was given: each process then logs into a
    fresh run. `artifact_bucket`/`artifact_prefix` of None mean "the run's own, else the
    SageMaker session's default bucket / the SDK's default prefix".
    """

    experiment_name: str
    run_name: str
    run_name_generated: bool
    artifact_bucket: str | None
    artifact_prefix: str | None
    endpoint_url: str | None

    @property
    def trial_component_name(self) -> str:
        return f"{self.experiment_name}-{self.run_name}"

    @classmethod
    def resolve(
        cls,
        *,
        experiment_name: str | None = None,
        run_name: str | None = None,
        artifact_bucket: str | None = None,
        artifact_prefix: str | None = None,
        endpoint_url: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> SageMakerSettings:
        """Apply the precedence; raises ValueError naming the source of an invalid name."""
        env = os.environ if environ is None else environ
        experiment, experiment_source = _first(
            (experiment_name, "experiment_name"),
            (env.get(ENV_EXPERIMENT_NAME), ENV_EXPERIMENT_NAME),
        )
        if experiment is None:
            service = env.get(ENV_SERVICE_NAME)
            # A service name is free text; only the characters SageMaker accepts survive.
            experiment = _slug(service) if service else None
            experiment_source = ENV_SERVICE_NAME
        if not experiment:
            experiment, experiment_source = DEFAULT_EXPERIMENT_NAME, "default"
        run, run_source = _first((run_name, "run_name"), (env.get(ENV_RUN_NAME), ENV_RUN_NAME))
        generated = run is None
        if run is None:
            stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
            run, run_source = f"langchain-{stamp}-{uuid.uuid4().hex[:8]}", "generated"
        return cls(
            experiment_name=_checked_name(experiment.lower(), experiment_source),
            run_name=_checked_name(run.lower(), run_source),
            run_name_generated=generated,
            artifact_bucket=_first((artifact_bucket, ""), (env.get(ENV_ARTIFACT_BUCKET), ""))[0],
            artifact_prefix=_first((artifact_prefix, ""), (env.get(ENV_ARTIFACT_PREFIX), ""))[0],
            endpoint_url=_first(
                (endpoint_url, ""),
                (env.get(ENV_ENDPOINT_URL), ""),
                (env.get(ENV_AWS_ENDPOINT_URL), ""),
            )[0],
        )


def _first(*candidates: tuple[str | None, str]) -> tuple[str | None, str]:
    """The first non-empty value and where it came from."""
    for value, source in candidates:
        if value:
            return value, source
    return None, ""


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:_MAX_NAME_LENGTH].strip("-")


def _checked_name(name: str, source: str) -> str:
    if len(name) > _MAX_NAME_LENGTH or not _NAME_PATTERN.match(name):
        raise ValueError(
            f"invalid SageMaker name {name!r} (from {source}): use at most {_MAX_NAME_LENGTH} "
            "lowercase letters, digits and hyphens, starting and ending with a letter or digit"
        )
    return name
