"""otel-bridge sink that evaluates finished LangChain traces with UpTrain and emits the scores as
OpenTelemetry spans linked to the evaluated spans."""

from __future__ import annotations

from otel_bridge_uptrain._exporter import UpTrainSpanExporter
from otel_bridge_uptrain._handler import UpTrainCallbackHandler
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

__all__ = [
    "SCORE_HISTOGRAM",
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
