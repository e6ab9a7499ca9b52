"""Where the exporter's settings come from: argument > OTEL_BRIDGE_LABELSTUDIO_* > LABEL_STUDIO_* > default."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from otel_bridge_labelstudio._encoder import check_trace_url_template
from otel_bridge_labelstudio._label_config import (
    LabelStudioMode,
    bind_label_config,
    default_label_config,
    parse_mode,
)

_logger = logging.getLogger(__name__)

DEFAULT_URL = "http://localhost:8080"
DEFAULT_PROJECT_NAME = "LangChain-%Y-%m-%d"
# The project title lengths Label Studio accepts.
_MIN_TITLE_LENGTH = 3
_MAX_TITLE_LENGTH = 50

ENV_API_KEY = "OTEL_BRIDGE_LABELSTUDIO_API_KEY"
ENV_URL = "OTEL_BRIDGE_LABELSTUDIO_URL"
ENV_PROJECT_ID = "OTEL_BRIDGE_LABELSTUDIO_PROJECT_ID"
ENV_PROJECT_NAME = "OTEL_BRIDGE_LABELSTUDIO_PROJECT_NAME"
ENV_MODE = "OTEL_BRIDGE_LABELSTUDIO_MODE"
ENV_TRACE_URL_TEMPLATE = "OTEL_BRIDGE_LABELSTUDIO_TRACE_URL_TEMPLATE"
# The variables langchain_community's LabelStudioCallbackHandler reads.
GENERIC_ENV_API_KEY = "LABEL_STUDIO_API_KEY"
GENERIC_ENV_URL = "LABEL_STUDIO_URL"
GENERIC_ENV_PROJECT_ID = "LABEL_STUDIO_PROJECT_ID"


@dataclass(frozen=True, slots=True)
class LabelStudioSettings:
    """Resolved, validated settings; `project_title` is `project_name` after strftime."""

    api_key: str
    url: str
    project_id: int | None
    project_name: str
    project_title: str
    project_config: str
    mode: LabelStudioMode
    trace_url_template: str | None


def resolve_settings(
    *,
    api_key: str | None,
    url: str | None,
    project_id: int | str | None,
    project_name: str | None,
    project_config: str | None,
    mode: str | LabelStudioMode | None,
    trace_url_template: str | None,
    environ: Mapping[str, str] | None = None,
    today: datetime | None = None,
) -> LabelStudioSettings:
    """Apply the precedence and fail early, naming the argument or variable at fault."""
    env = os.environ if environ is None else environ
    key = api_key or env.get(ENV_API_KEY) or env.get(GENERIC_ENV_API_KEY)
    if not key:
        raise ValueError(
            "Label Studio API key is missing: pass api_key=... or set "
            f"{ENV_API_KEY} or {GENERIC_ENV_API_KEY} (a personal access token or a legacy "
            "token from Account & Settings in Label Studio)"
        )
    resolved_url = url or env.get(ENV_URL) or env.get(GENERIC_ENV_URL)
    if not resolved_url:
        _logger.info(
            "Label Studio URL not given (url=..., %s or %s); using %s",
            ENV_URL,
            GENERIC_ENV_URL,
            DEFAULT_URL,
        )
        resolved_url = DEFAULT_URL
    if not resolved_url.startswith(("http://", "https://")):
        raise ValueError(
            f"Label Studio URL must start with http:// or https://, got {resolved_url!r}"
        )
    resolved_mode = parse_mode(mode or env.get(ENV_MODE) or LabelStudioMode.PROMPT)
    name = project_name or env.get(ENV_PROJECT_NAME) or DEFAULT_PROJECT_NAME
    title = (today or datetime.today()).strftime(name)
    if not _MIN_TITLE_LENGTH <= len(title) <= _MAX_TITLE_LENGTH:
        raise ValueError(
            f"Label Studio project title {title!r} (from project_name={name!r}) has "
            f"{len(title)} characters; Label Studio accepts {_MIN_TITLE_LENGTH} to "
            f"{_MAX_TITLE_LENGTH}"
        )
    config = project_config or default_label_config(resolved_mode)
    # A bad config or link must fail here, in the user's constructor call, not later in the
    # delivery thread.
    bind_label_config(config, resolved_mode)
    template = trace_url_template or env.get(ENV_TRACE_URL_TEMPLATE) or None
    if template is not None:
        check_trace_url_template(template)
    return LabelStudioSettings(
        api_key=key,
        url=resolved_url.rstrip("/"),
        project_id=_project_id(project_id, env),
        project_name=name,
        project_title=title,
        project_config=config,
        mode=resolved_mode,
        trace_url_template=template,
    )


def _project_id(argument: int | str | None, env: Mapping[str, str]) -> int | None:
    for source, value in (
        ("project_id", argument),
        (ENV_PROJECT_ID, env.get(ENV_PROJECT_ID)),
        (GENERIC_ENV_PROJECT_ID, env.get(GENERIC_ENV_PROJECT_ID)),
    ):
        if value is None or value == "":
            continue
        try:
            return int(value)
        except ValueError:
            raise ValueError(
                f"{source} must be a Label Studio project number, got {value!r}"
            ) from None
    return None
