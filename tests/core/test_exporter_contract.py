"""The shared exporter contract run against a minimal in-memory sink, so the base is held to it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from otel_bridge.exporter import TraceExporter
from otel_bridge.sink import DeliveryReport
from otel_bridge.traces import FinishedTrace
from tests.contract import ExporterContract, MakeExporter


class MemorySink(TraceExporter):
    sink_name = "memory"

    def __init__(self, **options: Any) -> None:
        self.delivered: list[FinishedTrace] = []
        super().__init__(**options)

    def deliver(self, traces: Sequence[FinishedTrace]) -> DeliveryReport:
        self.delivered.extend(traces)
        return DeliveryReport.all_delivered(traces)


class TestMemorySinkContract(ExporterContract):
    @pytest.fixture
    def make_exporter(self) -> MakeExporter:
        return MemorySink
