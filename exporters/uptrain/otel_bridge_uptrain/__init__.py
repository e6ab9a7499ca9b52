"""otel-bridge sink that evaluates finished LangChain traces with UpTrain and emits the scores as
OpenTelemetry spans linked to the evaluated spans."""

from __future__ import annotations

from typing import TYPE_CHECKING

from otel_bridge.plugins import lazy_exports
from otel_bridge_uptrain._report import SINK_REPORT

if TYPE_CHECKING:
    from otel_bridge_uptrain._judge import Score
    from otel_bridge_uptrain._rag_views import (
        Compression,
        MultiQuery,
        RagTurn,
        compressions,
        multi_queries,
        rag_turns,
    )
    from otel_bridge_uptrain._results import SCORE_HISTOGRAM, Evaluation
    from otel_bridge_uptrain._selection import CheckPlan, EvaluationRequest, Shape, select
    from otel_bridge_uptrain.exporter import UpTrainSpanExporter
    from otel_bridge_uptrain.handler import UpTrainCallbackHandler

# Everything but SINK_REPORT is imported on first use: front ends list the installed sinks
# through their entry points' modules (this one) without importing each sink's client library.
__getattr__ = lazy_exports(
    __name__,
    {
        "UpTrainSpanExporter": ".exporter",
        "UpTrainCallbackHandler": ".handler",
        "Score": "._judge",
        "Compression": "._rag_views",
        "MultiQuery": "._rag_views",
        "RagTurn": "._rag_views",
        "compressions": "._rag_views",
        "multi_queries": "._rag_views",
        "rag_turns": "._rag_views",
        "SCORE_HISTOGRAM": "._results",
        "Evaluation": "._results",
        "CheckPlan": "._selection",
        "EvaluationRequest": "._selection",
        "Shape": "._selection",
        "select": "._selection",
    },
)

__all__ = [
    "SCORE_HISTOGRAM",
    "SINK_REPORT",
    "CheckPlan",
    "Compression",
    "Evaluation",
    "EvaluationRequest",
    "MultiQuery",
    "RagTurn",
    "Score",
    "Shape",
    "UpTrainCallbackHandler",
    "UpTrainSpanExporter",
    "compressions",
    "multi_queries",
    "rag_turns",
    "select",
]
