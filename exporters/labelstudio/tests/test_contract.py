"""The shared SpanExporter contract, run against `LabelStudioSpanExporter` and the real server."""

from __future__ import annotations

from typing import Any

import pytest
from otel_bridge_labelstudio import LabelStudioSpanExporter

from otel_bridge.exporter import TraceExporter
from tests.contract import ExporterContract, MakeExporter


class TestLabelStudioContract(ExporterContract):
    @pytest.fixture
    def make_exporter(
        self, label_studio_url: str, legacy_token: str, project_name: str
    ) -> MakeExporter:
        def make(**options: Any) -> TraceExporter:
            return LabelStudioSpanExporter(
                url=label_studio_url, api_key=legacy_token, project_name=project_name, **options
            )

        return make
