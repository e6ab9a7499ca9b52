"""Configuration precedence (argument > OTEL_BRIDGE_SAGEMAKER_* > generic variable > default),
name validation, and the `opentelemetry_traces_exporter` entry point."""

from __future__ import annotations

from pathlib import Path

import pytest
from otel_bridge_sagemaker import SageMakerSettings, SageMakerSpanExporter
from otel_bridge_sagemaker.settings import (
    DEFAULT_EXPERIMENT_NAME,
    ENV_ARTIFACT_BUCKET,
    ENV_ARTIFACT_PREFIX,
    ENV_AWS_ENDPOINT_URL,
    ENV_ENDPOINT_URL,
    ENV_EXPERIMENT_NAME,
    ENV_RUN_NAME,
    ENV_SERVICE_NAME,
)

# setting, argument name, specific variable, generic variable (None: there is none), default
PRECEDENCE = [
    ("experiment_name", ENV_EXPERIMENT_NAME, ENV_SERVICE_NAME, DEFAULT_EXPERIMENT_NAME),
    ("endpoint_url", ENV_ENDPOINT_URL, ENV_AWS_ENDPOINT_URL, None),
    ("artifact_bucket", ENV_ARTIFACT_BUCKET, None, None),
    ("artifact_prefix", ENV_ARTIFACT_PREFIX, None, None),
    ("run_name", ENV_RUN_NAME, None, None),
]


@pytest.mark.parametrize(("setting", "specific", "generic", "default"), PRECEDENCE)
def test_precedence(setting: str, specific: str, generic: str | None, default: str | None) -> None:
    everything = {specific: "from-specific"} | ({generic: "from-generic"} if generic else {})

    assert (
        getattr(SageMakerSettings.resolve(**{setting: "from-arg"}, environ=everything), setting)
        == "from-arg"
    )
    assert getattr(SageMakerSettings.resolve(environ=everything), setting) == "from-specific"
    if generic:
        assert (
            getattr(SageMakerSettings.resolve(environ={generic: "from-generic"}), setting)
            == "from-generic"
        )
    resolved = SageMakerSettings.resolve(environ={})
    if setting == "run_name":
        assert resolved.run_name_generated and resolved.run_name.startswith("langchain-")
        assert SageMakerSettings.resolve(environ={}).run_name != resolved.run_name
    else:
        assert getattr(resolved, setting) == default


def test_an_empty_variable_counts_as_unset() -> None:
    settings = SageMakerSettings.resolve(environ={ENV_EXPERIMENT_NAME: "", ENV_SERVICE_NAME: "svc"})
    assert settings.experiment_name == "svc"


def test_names_are_lower_cased_and_the_service_name_is_made_a_valid_name() -> None:
    settings = SageMakerSettings.resolve(
        run_name="Run-1", environ={ENV_SERVICE_NAME: "Checkout_Service v2"}
    )
    assert (settings.experiment_name, settings.run_name) == ("checkout-service-v2", "run-1")
    assert settings.trial_component_name == "checkout-service-v2-run-1"
    assert not settings.run_name_generated


@pytest.mark.parametrize(
    ("kwargs", "environ", "source"),
    [
        ({"experiment_name": "bad_name"}, {}, "experiment_name"),
        ({}, {ENV_EXPERIMENT_NAME: "has space"}, ENV_EXPERIMENT_NAME),
        ({}, {ENV_RUN_NAME: "x" * 60}, ENV_RUN_NAME),
        ({"run_name": "-leading"}, {}, "run_name"),
    ],
)
def test_an_invalid_name_says_where_it_came_from(
    kwargs: dict[str, str], environ: dict[str, str], source: str
) -> None:
    with pytest.raises(ValueError, match=source):
        SageMakerSettings.resolve(**kwargs, environ=environ)


def test_the_exporter_builds_from_the_environment_alone(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OTEL_BRIDGE_SPOOL_DIR", str(tmp_path))
    monkeypatch.setenv(ENV_EXPERIMENT_NAME, "from-env")
    monkeypatch.setenv(ENV_RUN_NAME, "run-7")
    monkeypatch.setenv(ENV_ARTIFACT_BUCKET, "bucket-from-env")
    exporter = SageMakerSpanExporter()
    try:
        assert exporter.trial_component_name == "from-env-run-7"
        assert exporter.settings.artifact_bucket == "bucket-from-env"
        assert exporter.spool.path.parent == tmp_path
    finally:
        exporter.shutdown()


def test_run_and_names_together_are_refused() -> None:
    with pytest.raises(ValueError, match="either"):
        SageMakerSpanExporter(run=object(), experiment_name="exp")


def test_the_entry_point_resolves_through_the_sdk_configurator() -> None:
    from opentelemetry.sdk._configuration import _import_exporters

    trace_exporters, _, _ = _import_exporters(["sagemaker"], [], [])

    assert trace_exporters == {"sagemaker": SageMakerSpanExporter}
