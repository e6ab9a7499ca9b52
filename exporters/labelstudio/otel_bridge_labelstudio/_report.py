"""What the Label Studio sink tells front ends such as `otel-bridge demo` about itself."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from otel_bridge.langchain_views import FinishedTrace
from otel_bridge.plugins import SinkReport, needs_one_of
from otel_bridge_labelstudio.settings import API_KEY, GENERIC_ENV_API_KEY, GENERIC_ENV_URL

__all__ = ["SINK_REPORT"]


def _review_tasks(traces: Sequence[FinishedTrace]) -> str:
    return f"{sum(len(trace.llm_calls()) for trace in traces)} review tasks"


def _destination(exporter: Any) -> str:
    settings = exporter.settings
    return f"project {settings.project_title!r} at {settings.url}"


SINK_REPORT = SinkReport(
    title="Label Studio",
    verb="send",
    verb_past="sent",
    work=_review_tasks,
    needs=needs_one_of(API_KEY.variables, f"set {GENERIC_ENV_URL} and {GENERIC_ENV_API_KEY}"),
    destination=_destination,
)
