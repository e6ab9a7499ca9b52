"""otel-bridge sink for ClearML: finished LangChain traces as ClearML task tables, scalars,
console lines and media, plus a drop-in `ClearMLCallbackHandler`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from otel_bridge.plugins import lazy_exports
from otel_bridge_clearml._report import SINK_REPORT

if TYPE_CHECKING:
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

# Everything but SINK_REPORT is imported on first use: front ends list the installed sinks
# through their entry points' modules (this one) without importing each sink's client library.
__getattr__ = lazy_exports(
    __name__,
    {
        "ActionRecord": ".encoder",
        "MediaItem": ".encoder",
        "ScalarPoint": ".encoder",
        "SessionRow": ".encoder",
        "StepCounters": ".encoder",
        "TraceReport": ".encoder",
        "encode_trace": ".encoder",
        "ClearMLSpanExporter": ".exporter",
        "ClearMLCallbackHandler": ".handler",
        "ClearMLSettings": ".settings",
        "TextAnalysis": ".text_analysis",
        "TextAnalyzer": ".text_analysis",
    },
)

__all__ = [
    "SINK_REPORT",
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
