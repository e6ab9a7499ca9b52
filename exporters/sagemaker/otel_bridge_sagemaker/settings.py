"""The SageMaker exporter's settings (`otel_bridge.settings`' rule: argument >
OTEL_BRIDGE_SAGEMAKER_<NAME> > generic variable > default), resolved once into `SageMakerSettings`.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from otel_bridge.settings import Found, Setting

DEFAULT_EXPERIMENT_NAME = "otel-bridge"
DEFAULT_ARTIFACT_PREFIX = "trial-component-artifacts"  # the SageMaker SDK's own default

SINK = "sagemaker"
EXPERIMENT_NAME: Setting[str] = Setting(
    "experiment_name",
    DEFAULT_EXPERIMENT_NAME,
    "the experiment (a service name is made a valid name)",
    sink=SINK,
    # The OTel service name names the experiment, as it names the other sinks' containers.
    generic=("OTEL_SERVICE_NAME",),
)
RUN_NAME: Setting[str | None] = Setting(
    "run_name", None, "the run", "generated per process", sink=SINK
)
ARTIFACT_BUCKET: Setting[str | None] = Setting(
    "artifact_bucket",
    None,
    "where the records files go",
    "the run's, else the session's default bucket",
    sink=SINK,
)
ENDPOINT_URL: Setting[str | None] = Setting(
    "endpoint_url",
    None,
    "a SageMaker-compatible endpoint for every client",
    "AWS",
    sink=SINK,
    # The AWS SDKs' global endpoint override, which boto3 honours for every service.
    generic=("AWS_ENDPOINT_URL",),
)
ARTIFACT_PREFIX: Setting[str | None] = Setting(
    "artifact_prefix",
    None,
    "key prefix of the records files",
    f"`{DEFAULT_ARTIFACT_PREFIX}`",
    sink=SINK,
)
SETTINGS: tuple[Setting[Any], ...] = (
    Setting("run", None, "the run to log into", "a run loaded or created from the names below"),
    EXPERIMENT_NAME,
    RUN_NAME,
    Setting(
        "sagemaker_session",
        None,
        "region and credentials",
        "the run's session / the default AWS chain",
    ),
    ARTIFACT_BUCKET,
    ENDPOINT_URL,
    ARTIFACT_PREFIX,
)

ENV_EXPERIMENT_NAME, ENV_SERVICE_NAME = EXPERIMENT_NAME.variables
(ENV_RUN_NAME,) = RUN_NAME.variables
(ENV_ARTIFACT_BUCKET,) = ARTIFACT_BUCKET.variables
(ENV_ARTIFACT_PREFIX,) = ARTIFACT_PREFIX.variables
ENV_ENDPOINT_URL, ENV_AWS_ENDPOINT_URL = ENDPOINT_URL.variables

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
        experiment = EXPERIMENT_NAME.lookup(experiment_name, environ=environ)
        if experiment is not None and experiment.source == ENV_SERVICE_NAME:
            # A service name is free text; only the characters SageMaker accepts survive.
            experiment = Found(_slug(experiment.value), experiment.source)
        if experiment is None or not experiment.value:
            experiment = Found(DEFAULT_EXPERIMENT_NAME, "default")
        run = RUN_NAME.lookup(run_name, environ=environ)
        if run is None:
            stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
            run = Found(f"langchain-{stamp}-{uuid.uuid4().hex[:8]}", "generated")
        return cls(
            experiment_name=_checked_name(experiment.value.lower(), experiment.source),
            run_name=_checked_name((run.value or "").lower(), run.source),
            run_name_generated=run.source == "generated",
            artifact_bucket=ARTIFACT_BUCKET.resolve(artifact_bucket, environ=environ),
            artifact_prefix=ARTIFACT_PREFIX.resolve(artifact_prefix, environ=environ),
            endpoint_url=ENDPOINT_URL.resolve(endpoint_url, environ=environ),
        )


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:_MAX_NAME_LENGTH].strip("-")


def _checked_name(name: str, source: str) -> str:
    if len(name) > _MAX_NAME_LENGTH or not _NAME_PATTERN.match(name):
        raise ValueError(
            f"invalid SageMaker name {name!r} (from {source}): use at most {_MAX_NAME_LENGTH} "
            "lowercase letters, digits and hyphens, starting and ending with a letter or digit"
        )
    return name
