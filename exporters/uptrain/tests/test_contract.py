"""The shared SpanExporter contract, run against UpTrainSpanExporter with the real uptrain library.
Its judge is `FakeJudge`, the local stand-in for the paid LLM API (the contract's traces carry no
LLM content, so it is rarely asked)."""

from __future__ import annotations

from typing import Any

import pytest
from otel_bridge_uptrain import UpTrainSpanExporter

from otel_bridge.exporter import TraceExporter
from tests.contract import ExporterContract, MakeExporter
from tests.support.fake_openai import FakeJudge


class TestUpTrainContract(ExporterContract):
    @pytest.fixture
    def make_exporter(self, judge: FakeJudge) -> MakeExporter:
        def make(**options: Any) -> TraceExporter:
            return UpTrainSpanExporter(
                api_key="sk-judge", api_base=judge.url, log_results=False, **options
            )

        return make
