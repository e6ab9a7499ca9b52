"""The Label Studio exporter's settings (`otel_bridge.settings`' rule: argument >
OTEL_BRIDGE_LABELSTUDIO_<NAME> > LABEL_STUDIO_<NAME>, the variables langchain_community's
handler reads > default), resolved and validated once into `LabelStudioSettings`."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from otel_bridge.settings import Found, Setting
from otel_bridge_labelstudio._encoder import TaskGranularity, check_trace_url_template
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

SINK = "labelstudio"
API_KEY: Setting[str | None] = Setting(
    "api_key",
    None,
    "a personal access token or a legacy token (Account & Settings in Label Studio)",
    "required",
    sink=SINK,
    generic=("LABEL_STUDIO_API_KEY",),
)
URL: Setting[str] = Setting(
    "url", DEFAULT_URL, "the Label Studio server", sink=SINK, generic=("LABEL_STUDIO_URL",)
)
PROJECT_ID: Setting[int | str | None] = Setting(
    "project_id",
    None,
    "the project tasks go to",
    "find or create by name",
    sink=SINK,
    generic=("LABEL_STUDIO_PROJECT_ID",),
)
PROJECT_NAME: Setting[str] = Setting(
    "project_name",
    DEFAULT_PROJECT_NAME,
    "the project found or created (an strftime pattern)",
    sink=SINK,
)
MODE: Setting[str | LabelStudioMode] = Setting(
    "mode", LabelStudioMode.PROMPT, "`prompt` or `chat`", "`prompt`", sink=SINK
)
TRACE_URL_TEMPLATE: Setting[str | None] = Setting(
    "trace_url_template",
    None,
    "a link to the trace in your tracing UI, with `{trace_id}` / `{span_id}`",
    sink=SINK,
)
SETTINGS: tuple[Setting[Any], ...] = (
    API_KEY,
    URL,
    PROJECT_ID,
    PROJECT_NAME,
    Setting(
        "project_config",
        None,
        "the labeling config XML (validated now)",
        "the mode's default labeling config",
    ),
    MODE,
    Setting(
        "task_per", TaskGranularity.LLM_CALL, "one task per LLM call, or per trace", "`llm_call`"
    ),
    Setting(
        "trace_filter",
        None,
        "which traces become tasks: `TraceFilter(errors_only, tags, metadata, sample_ratio)`",
        "all traces",
    ),
    TRACE_URL_TEMPLATE,
    Setting("timeout", 10.0, "seconds per HTTP request"),
    Setting(
        "check_connection",
        True,
        "check the server, key and project once at start: a warning when they are not usable"
        " (the drop-in handler raises, like the original)",
    ),
)

ENV_API_KEY, GENERIC_ENV_API_KEY = API_KEY.variables
ENV_URL, GENERIC_ENV_URL = URL.variables
ENV_PROJECT_ID, GENERIC_ENV_PROJECT_ID = PROJECT_ID.variables
(ENV_PROJECT_NAME,) = PROJECT_NAME.variables
(ENV_MODE,) = MODE.variables
(ENV_TRACE_URL_TEMPLATE,) = TRACE_URL_TEMPLATE.variables


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
    key = API_KEY.resolve(api_key, environ=environ)
    if not key:
        raise ValueError(
            "Label Studio API key is missing: pass api_key=... or set "
            f"{ENV_API_KEY} or {GENERIC_ENV_API_KEY} (a personal access token or a legacy "
            "token from Account & Settings in Label Studio)"
        )
    found_url = URL.lookup(url, environ=environ)
    if found_url is None:
        _logger.info(
            "Label Studio URL not given (url=..., %s or %s); using %s",
            ENV_URL,
            GENERIC_ENV_URL,
            DEFAULT_URL,
        )
    resolved_url = DEFAULT_URL if found_url is None else found_url.value
    if not resolved_url.startswith(("http://", "https://")):
        raise ValueError(
            f"Label Studio URL must start with http:// or https://, got {resolved_url!r}"
        )
    resolved_mode = parse_mode(MODE.resolve(mode, environ=environ))
    name = PROJECT_NAME.resolve(project_name, environ=environ)
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
    template = TRACE_URL_TEMPLATE.resolve(trace_url_template, environ=environ)
    if template is not None:
        check_trace_url_template(template)
    return LabelStudioSettings(
        api_key=key,
        url=resolved_url.rstrip("/"),
        project_id=_project_id(PROJECT_ID.lookup(project_id, environ=environ)),
        project_name=name,
        project_title=title,
        project_config=config,
        mode=resolved_mode,
        trace_url_template=template,
    )


def _project_id(found: Found[int | str | None] | None) -> int | None:
    if found is None or found.value is None:
        return None
    try:
        return int(found.value)
    except ValueError:
        raise ValueError(
            f"{found.source} must be a Label Studio project number, got {found.value!r}"
        ) from None
