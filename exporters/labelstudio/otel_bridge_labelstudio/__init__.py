"""Label Studio sink for otel-bridge: LLM calls of finished traces become review tasks, off the hot path."""

from __future__ import annotations

from otel_bridge_labelstudio._encoder import TaskGranularity
from otel_bridge_labelstudio._exporter import LabelStudioSpanExporter
from otel_bridge_labelstudio._filter import TraceFilter
from otel_bridge_labelstudio._handler import LabelStudioCallbackHandler
from otel_bridge_labelstudio._label_config import (
    LabelConfigError,
    LabelStudioMode,
    default_label_config,
)
from otel_bridge_labelstudio.settings import (
    DEFAULT_PROJECT_NAME,
    DEFAULT_URL,
    ENV_API_KEY,
    ENV_MODE,
    ENV_PROJECT_ID,
    ENV_PROJECT_NAME,
    ENV_TRACE_URL_TEMPLATE,
    ENV_URL,
    GENERIC_ENV_API_KEY,
    GENERIC_ENV_PROJECT_ID,
    GENERIC_ENV_URL,
)

__all__ = [
    "DEFAULT_PROJECT_NAME",
    "DEFAULT_URL",
    "ENV_API_KEY",
    "ENV_MODE",
    "ENV_PROJECT_ID",
    "ENV_PROJECT_NAME",
    "ENV_TRACE_URL_TEMPLATE",
    "ENV_URL",
    "GENERIC_ENV_API_KEY",
    "GENERIC_ENV_PROJECT_ID",
    "GENERIC_ENV_URL",
    "LabelConfigError",
    "LabelStudioCallbackHandler",
    "LabelStudioMode",
    "LabelStudioSpanExporter",
    "TaskGranularity",
    "TraceFilter",
    "default_label_config",
]
