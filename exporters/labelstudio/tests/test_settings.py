"""Where settings come from: argument > OTEL_BRIDGE_LABELSTUDIO_* > LABEL_STUDIO_* > default, and
clear errors naming the argument or variable at fault. No network: nothing here contacts a server."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from otel_bridge_labelstudio import LabelConfigError, LabelStudioMode, default_label_config
from otel_bridge_labelstudio.settings import LabelStudioSettings, resolve_settings

KEY = {"LABEL_STUDIO_API_KEY": "generic-key"}


def resolve(environ: dict[str, str], **arguments: Any) -> LabelStudioSettings:
    options: dict[str, Any] = {
        "api_key": None,
        "url": None,
        "project_id": None,
        "project_name": None,
        "project_config": None,
        "mode": None,
        "trace_url_template": None,
    }
    options.update(arguments)
    return resolve_settings(**options, environ=environ, today=datetime(2026, 3, 4))


# (setting, argument value, specific variable, generic variable or None, default)
PRECEDENCE = [
    ("api_key", "OTEL_BRIDGE_LABELSTUDIO_API_KEY", "LABEL_STUDIO_API_KEY", None),
    ("url", "OTEL_BRIDGE_LABELSTUDIO_URL", "LABEL_STUDIO_URL", "http://localhost:8080"),
    ("project_id", "OTEL_BRIDGE_LABELSTUDIO_PROJECT_ID", "LABEL_STUDIO_PROJECT_ID", None),
    ("project_name", "OTEL_BRIDGE_LABELSTUDIO_PROJECT_NAME", None, "LangChain-%Y-%m-%d"),
    ("mode", "OTEL_BRIDGE_LABELSTUDIO_MODE", None, LabelStudioMode.PROMPT),
    ("trace_url_template", "OTEL_BRIDGE_LABELSTUDIO_TRACE_URL_TEMPLATE", None, None),
]
VALUES = {
    "api_key": ("from-argument", "from-specific", "from-generic"),
    "url": ("http://argument:1", "http://specific:2", "http://generic:3"),
    "project_id": (11, "22", "33"),
    "project_name": ("argument-%Y", "specific-%Y", "generic-%Y"),
    "mode": ("chat", "prompt", "chat"),
    "trace_url_template": ("http://a/{trace_id}", "http://s/{trace_id}", "http://g/{trace_id}"),
}
PARSED = {"project_id": int, "mode": LabelStudioMode}


@pytest.mark.parametrize(
    ("setting", "specific", "generic", "default"), PRECEDENCE, ids=[p[0] for p in PRECEDENCE]
)
def test_argument_beats_specific_beats_generic_beats_default(
    setting: str, specific: str, generic: str | None, default: Any
) -> None:
    argument, specific_value, generic_value = VALUES[setting]
    parse = PARSED.get(setting, lambda value: value)
    env = {} if setting == "api_key" else dict(KEY)
    env[specific] = str(specific_value)
    if generic is not None:
        env[generic] = str(generic_value)

    assert getattr(resolve(env, **{setting: argument}), setting) == parse(argument)
    assert getattr(resolve(env), setting) == parse(specific_value)
    del env[specific]
    if generic is not None:
        assert getattr(resolve(env), setting) == parse(generic_value)
        del env[generic]
    if setting == "api_key":
        return  # no default: see test_missing_api_key_names_both_variables
    assert getattr(resolve(env), setting) == default


def test_missing_api_key_names_both_variables() -> None:
    with pytest.raises(ValueError, match="OTEL_BRIDGE_LABELSTUDIO_API_KEY or LABEL_STUDIO_API_KEY"):
        resolve({})


def test_project_title_is_the_name_formatted_with_today() -> None:
    assert resolve(KEY).project_title == "LangChain-2026-03-04"
    assert resolve(KEY, project_name="reviews %B").project_title == "reviews March"


@pytest.mark.parametrize("name", ["%d", "x" * 51])
def test_a_title_label_studio_would_refuse_is_refused_now(name: str) -> None:
    with pytest.raises(ValueError, match="Label Studio accepts 3 to 50"):
        resolve(KEY, project_name=name)


@pytest.mark.parametrize(
    ("source", "arguments", "env"),
    [
        ("project_id", {"project_id": "twelve"}, {}),
        ("LABEL_STUDIO_PROJECT_ID", {}, {"LABEL_STUDIO_PROJECT_ID": "twelve"}),
    ],
)
def test_a_bad_project_id_names_its_source(source: str, arguments: dict, env: dict) -> None:
    with pytest.raises(ValueError, match=f"{source} must be a Label Studio project number"):
        resolve({**KEY, **env}, **arguments)


def test_a_url_without_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="http:// or https://"):
        resolve(KEY, url="localhost:8080")


def test_default_config_follows_the_mode() -> None:
    assert resolve(KEY, mode="chat").project_config == default_label_config("chat")


def test_a_bad_custom_config_fails_at_construction() -> None:
    with pytest.raises(LabelConfigError, match="no <TextArea> tag"):
        resolve(KEY, project_config="<View><Text name='t' value='$t'/></View>")


def test_a_bad_trace_url_template_fails_at_construction() -> None:
    with pytest.raises(ValueError, match="trace URL template"):
        resolve(KEY, trace_url_template="http://tempo/{traceID}")
