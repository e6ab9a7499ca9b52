"""otel-bridge sink for SageMaker Experiments: finished LangChain traces as run metrics,
parameters and JSON Lines artifacts, plus a drop-in `SageMakerCallbackHandler`."""

from __future__ import annotations

from otel_bridge_sagemaker.encoder import RECORD_SCHEMA
from otel_bridge_sagemaker.exporter import SageMakerSpanExporter
from otel_bridge_sagemaker.handler import SageMakerCallbackHandler
from otel_bridge_sagemaker.settings import SageMakerSettings

__all__ = [
    "RECORD_SCHEMA",
    "SageMakerCallbackHandler",
    "SageMakerSettings",
    "SageMakerSpanExporter",
]
