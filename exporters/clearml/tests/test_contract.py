"""The shared SpanExporter contract, run against `ClearMLSpanExporter` logging into real ClearML
in offline mode (each exporter creates its task on first delivery and closes it on shutdown)."""

from __future__ import annotations

from typing import Any

import pytest
from otel_bridge_clearml import ClearMLSpanExporter

from otel_bridge.exporter import TraceExporter
from tests.contract import ExporterContract, MakeExporter


class TestClearMLContract(ExporterContract):
    @pytest.fixture
    def make_exporter(self) -> MakeExporter:
        def make(**options: Any) -> TraceExporter:
            return ClearMLSpanExporter(project_name="contract", task_name="contract", **options)

        return make
