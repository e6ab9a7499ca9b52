"""Label Studio sink for otel-bridge: LLM calls of finished traces become review tasks, off the hot path."""

from __future__ import annotations

from typing import TYPE_CHECKING

from otel_bridge.plugins import lazy_exports
from otel_bridge_labelstudio._report import SINK_REPORT

if TYPE_CHECKING:
    from otel_bridge_labelstudio._encoder import TaskGranularity
    from otel_bridge_labelstudio._filter import TraceFilter
    from otel_bridge_labelstudio._label_config import (
        LabelConfigError,
        LabelStudioMode,
        default_label_config,
    )
    from otel_bridge_labelstudio.exporter import LabelStudioSpanExporter
    from otel_bridge_labelstudio.handler import LabelStudioCallbackHandler
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

# Everything but SINK_REPORT is imported on first use: front ends list the installed sinks
# through their entry points' modules (this one) without importing each sink's client library.
__getattr__ = lazy_exports(
    __name__,
    {
        "TaskGranularity": "._encoder",
        "LabelStudioSpanExporter": ".exporter",
        "TraceFilter": "._filter",
        "LabelStudioCallbackHandler": ".handler",
        "LabelConfigError": "._label_config",
        "LabelStudioMode": "._label_config",
        "default_label_config": "._label_config",
        "DEFAULT_PROJECT_NAME": ".settings",
        "DEFAULT_URL": ".settings",
        "ENV_API_KEY": ".settings",
        "ENV_MODE": ".settings",
        "ENV_PROJECT_ID": ".settings",
        "ENV_PROJECT_NAME": ".settings",
        "ENV_TRACE_URL_TEMPLATE": ".settings",
        "ENV_URL": ".settings",
        "GENERIC_ENV_API_KEY": ".settings",
        "GENERIC_ENV_PROJECT_ID": ".settings",
        "GENERIC_ENV_URL": ".settings",
    },
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
    "SINK_REPORT",
    "LabelConfigError",
    "LabelStudioCallbackHandler",
    "LabelStudioMode",
    "LabelStudioSpanExporter",
    "TaskGranularity",
    "TraceFilter",
    "default_label_config",
]
