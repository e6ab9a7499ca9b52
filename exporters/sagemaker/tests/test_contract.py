"""The shared SpanExporter contract, run against `SageMakerSpanExporter` logging into moto."""

from __future__ import annotations

from typing import Any

import pytest
from otel_bridge_sagemaker import SageMakerSpanExporter

from otel_bridge.exporter import TraceExporter
from tests.contract import ExporterContract, MakeExporter

pytestmark = pytest.mark.moto


class TestSageMakerContract(ExporterContract):
    @pytest.fixture
    def make_exporter(
        self, aws_env: str, bucket: str, experiment_name: str, sagemaker_sdk: None
    ) -> MakeExporter:
        def make(**options: Any) -> TraceExporter:
            return SageMakerSpanExporter(
                experiment_name=experiment_name,
                run_name="contract",
                artifact_bucket=bucket,
                **options,
            )

        return make
