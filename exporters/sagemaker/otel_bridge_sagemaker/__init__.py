"""otel-bridge sink for SageMaker Experiments: finished LangChain traces as run metrics,
parameters and JSON Lines artifacts, plus a drop-in `SageMakerCallbackHandler`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from otel_bridge.plugins import lazy_exports
from otel_bridge_sagemaker._report import SINK_REPORT

if TYPE_CHECKING:
    from otel_bridge_sagemaker.encoder import RECORD_SCHEMA
    from otel_bridge_sagemaker.exporter import SageMakerSpanExporter
    from otel_bridge_sagemaker.handler import SageMakerCallbackHandler
    from otel_bridge_sagemaker.settings import SageMakerSettings

# Everything but SINK_REPORT is imported on first use: front ends list the installed sinks
# through their entry points' modules (this one) without importing each sink's client library.
__getattr__ = lazy_exports(
    __name__,
    {
        "RECORD_SCHEMA": ".encoder",
        "SageMakerSpanExporter": ".exporter",
        "SageMakerCallbackHandler": ".handler",
        "SageMakerSettings": ".settings",
    },
)

__all__ = [
    "RECORD_SCHEMA",
    "SINK_REPORT",
    "SageMakerCallbackHandler",
    "SageMakerSettings",
    "SageMakerSpanExporter",
]
