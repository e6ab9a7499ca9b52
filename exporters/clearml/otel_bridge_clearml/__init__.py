"""otel-bridge sink for ClearML: finished LangChain traces as ClearML task tables, scalars,
console lines and media, plus a drop-in `ClearMLCallbackHandler`."""

from otel_bridge_clearml.encoder import (
    ActionRecord,
    MediaItem,
    ScalarPoint,
    SessionRow,
    StepCounters,
    TraceReport,
    encode_trace,
)
from otel_bridge_clearml.exporter import ClearMLSpanExporter
from otel_bridge_clearml.handler import ClearMLCallbackHandler
from otel_bridge_clearml.settings import ClearMLSettings
from otel_bridge_clearml.text_analysis import TextAnalysis, TextAnalyzer

__all__ = [
    "ActionRecord",
    "ClearMLCallbackHandler",
    "ClearMLSettings",
    "ClearMLSpanExporter",
    "MediaItem",
    "ScalarPoint",
    "SessionRow",
    "StepCounters",
    "TextAnalysis",
    "TextAnalyzer",
    "TraceReport",
    "encode_trace",
]
