"""Settings precedence: argument > OTEL_BRIDGE_CLEARML_* > generic variable > default, and clear
errors that name the offending argument or variable."""

from __future__ import annotations

import pytest
from otel_bridge_clearml.settings import (
    DEFAULT_PROJECT_NAME,
    ENV_COMPLEXITY_METRICS,
    ENV_PROJECT_NAME,
    ENV_SERVICE_NAME,
    ENV_SPACY_MODEL,
    ENV_STREAM_LOGS,
    ENV_TAGS,
    ENV_TASK_NAME,
    ENV_TASK_TYPE,
    ENV_VISUALIZE,
    ClearMLSettings,
)


def test_defaults_are_the_seed_handlers() -> None:
    settings = ClearMLSettings.resolve(environ={})
    assert settings == ClearMLSettings(
        task_type="inference",
        project_name="langchain_callback_demo",
        tags=(),
        task_name=None,
        visualize=False,
        complexity_metrics=False,
        stream_logs=False,
        spacy_model="en_core_web_sm",
    )


@pytest.mark.parametrize(
    ("argument", "environ", "expected"),
    [
        ("arg", {ENV_PROJECT_NAME: "specific", ENV_SERVICE_NAME: "generic"}, "arg"),
        (None, {ENV_PROJECT_NAME: "specific", ENV_SERVICE_NAME: "generic"}, "specific"),
        (None, {ENV_SERVICE_NAME: "generic"}, "generic"),
        (None, {}, DEFAULT_PROJECT_NAME),
    ],
)
def test_project_name_precedence(
    argument: str | None, environ: dict[str, str], expected: str
) -> None:
    assert ClearMLSettings.resolve(project_name=argument, environ=environ).project_name == expected


def test_every_setting_reads_its_variable_and_arguments_win() -> None:
    environ = {
        ENV_TASK_TYPE: "qc",
        ENV_TASK_NAME: "from env",
        ENV_TAGS: "a, b,,c",
        ENV_VISUALIZE: "true",
        ENV_COMPLEXITY_METRICS: "1",
        ENV_STREAM_LOGS: "yes",
        ENV_SPACY_MODEL: "/models/en",
    }
    from_env = ClearMLSettings.resolve(environ=environ)
    assert (from_env.task_type, from_env.task_name, from_env.tags) == (
        "qc",
        "from env",
        ("a", "b", "c"),
    )
    assert from_env.visualize and from_env.complexity_metrics and from_env.stream_logs
    assert from_env.spacy_model == "/models/en"
    overridden = ClearMLSettings.resolve(
        task_type="testing",
        task_name="arg",
        tags=[],
        visualize=False,
        complexity_metrics=False,
        stream_logs=False,
        spacy_model="other",
        environ=environ,
    )
    assert (overridden.task_type, overridden.task_name, overridden.tags) == ("testing", "arg", ())
    assert not (overridden.visualize or overridden.complexity_metrics or overridden.stream_logs)
    assert overridden.spacy_model == "other"


def test_a_bad_task_type_names_its_source() -> None:
    with pytest.raises(ValueError, match=ENV_TASK_TYPE):
        ClearMLSettings.resolve(environ={ENV_TASK_TYPE: "inferense"})
    with pytest.raises(ValueError, match="task_type='inferense'"):
        ClearMLSettings.resolve(task_type="inferense", environ={})


def test_a_bad_flag_names_its_variable() -> None:
    with pytest.raises(ValueError, match=f"{ENV_STREAM_LOGS}='maybe'"):
        ClearMLSettings.resolve(environ={ENV_STREAM_LOGS: "maybe"})


def test_tags_given_as_one_string_are_rejected() -> None:
    with pytest.raises(ValueError, match="list of strings"):
        ClearMLSettings.resolve(tags="a,b", environ={})
