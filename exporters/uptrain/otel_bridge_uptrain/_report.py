"""What the UpTrain sink tells front ends such as `otel-bridge demo` about itself."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from otel_bridge.langchain_views import FinishedTrace
from otel_bridge.plugins import SinkReport, needs_one_of
from otel_bridge_uptrain.settings import API_KEY

__all__ = ["SINK_REPORT"]


def _evaluations(traces: Sequence[FinishedTrace]) -> str:
    from otel_bridge_uptrain._rag_views import rag_turns

    turns = sum(len(rag_turns(trace)) for trace in traces)
    return f"{len(traces)} traces ({turns} RAG turns)"


def _destination(exporter: Any) -> str:
    return f"{exporter.model} as the judge, scores as spans linked to each trace"


SINK_REPORT = SinkReport(
    title="UpTrain",
    verb="evaluate",
    verb_past="evaluated",
    work=_evaluations,
    needs=needs_one_of(
        API_KEY.variables,
        "set OPENAI_API_KEY (or OTEL_BRIDGE_UPTRAIN_API_KEY and OTEL_BRIDGE_UPTRAIN_API_BASE "
        "for any OpenAI-compatible judge)",
    ),
    destination=_destination,
)
