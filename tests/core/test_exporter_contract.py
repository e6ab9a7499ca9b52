"""The shared exporter contract run against a minimal in-memory sink, so the base is held to it."""

from __future__ import annotations

import pytest

from tests.contract import ExporterContract, MakeExporter, MemorySink


class TestMemorySinkContract(ExporterContract):
    @pytest.fixture
    def make_exporter(self) -> MakeExporter:
        return MemorySink
