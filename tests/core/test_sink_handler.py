"""`SinkCallbackHandler`, the base of the sinks' drop-in handlers: each handler's sink receives
the runs that handler traced and no others, the app's own global pipeline still sees them, and
trace ids stay unique when a library reseeds `random`.

The model is the in-process `FakeChatModel` (the stand-in for a paid LLM API).
"""

from __future__ import annotations

import gc
import random
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace

from otel_bridge import DeliveryReport, FinishedTrace, SinkCallbackHandler, TraceExporter
from otel_bridge.sink_handler import DROP_IN_GRACE_PERIOD, drop_in_exporter_options
from otel_bridge.testing import FakeChatModel
from tests.core.test_provider import fresh_global_provider  # noqa: F401  (autouse fixture)
from tests.support.recording import recording_provider
from tests.support.waiting import wait_until


class _CollectingExporter(TraceExporter):
    sink_name = "collecting"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.traces: list[FinishedTrace] = []

    def deliver(self, traces: Sequence[FinishedTrace]) -> DeliveryReport:
        self.traces.extend(traces)
        return DeliveryReport.all_delivered(traces)


def _handler(tmp_path: Path, name: str, **options: Any) -> SinkCallbackHandler:
    exporter = _CollectingExporter(spool_dir=tmp_path / name, grace_period=0.0)
    return SinkCallbackHandler(exporter, **options)


def _answers(exporter: TraceExporter) -> list[str]:
    assert isinstance(exporter, _CollectingExporter)
    return [g for t in exporter.traces for call in t.llm_calls() for g in call.generations]


def test_each_handler_feeds_its_own_sink_only(tmp_path: Path) -> None:
    first, second = _handler(tmp_path, "first"), _handler(tmp_path, "second")
    try:
        FakeChatModel(responses=["one"]).invoke("q", {"callbacks": [first]})
        FakeChatModel(responses=["two"]).invoke("q", {"callbacks": [second]})
        assert first.flush(10) and second.flush(10)
        assert _answers(first.exporter) == ["one"]
        assert _answers(second.exporter) == ["two"]
    finally:
        first.shutdown()
        second.shutdown()


def test_spans_also_reach_the_apps_global_pipeline(tmp_path: Path) -> None:
    apps_provider, apps_exporter = recording_provider()
    trace.set_tracer_provider(apps_provider)
    handler = _handler(tmp_path, "sink")
    try:
        FakeChatModel(responses=["hi"]).invoke("q", {"callbacks": [handler]})
        assert handler.flush(10)
        assert [s.name for s in apps_exporter.get_finished_spans()] == ["chat fake-chat-model"]
        assert _answers(handler.exporter) == ["hi"]
    finally:
        handler.shutdown()


def test_trace_ids_stay_unique_when_random_is_reseeded(tmp_path: Path) -> None:
    handler = _handler(tmp_path, "sink")
    try:
        for _ in range(2):
            random.seed(1337)  # what ClearML's Task.init does by default
            FakeChatModel().invoke("q", {"callbacks": [handler]})
        assert handler.flush(10)
        assert isinstance(handler.exporter, _CollectingExporter)
        assert len({t.trace_id for t in handler.exporter.traces}) == 2
    finally:
        handler.shutdown()


def test_a_given_provider_receives_the_exporter(tmp_path: Path) -> None:
    provider, memory = recording_provider()
    handler = _handler(tmp_path, "sink", tracer_provider=provider)
    try:
        FakeChatModel(responses=["given"]).invoke("q", {"callbacks": [handler]})
        assert handler.flush(10)
        assert _answers(handler.exporter) == ["given"]
        assert len(memory.get_finished_spans()) == 1
    finally:
        handler.shutdown()
        provider.shutdown()


def test_a_handler_per_request_gives_back_its_threads_and_files_and_delivers(
    tmp_path: Path,
) -> None:
    # A server app that builds a drop-in handler per request and drops it: each dropped
    # handler's trace is delivered and its delivery threads and spool connection end, instead
    # of piling up (two threads and six file descriptors a handler) until the process runs out.
    delivered: list[FinishedTrace] = []

    def ours() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t.name.startswith(("otel-bridge", "Otel"))}

    before = ours()
    for i in range(20):
        handler = _handler(tmp_path, "sink")
        assert isinstance(handler.exporter, _CollectingExporter)
        handler.exporter.traces = delivered  # one list for all, to count at the end
        FakeChatModel(responses=[f"answer {i}"]).invoke("q", {"callbacks": [handler]})
        del handler
    gc.collect()
    wait_until(lambda: not (ours() - before), what="the dropped handlers' threads to end")
    answers = [g for t in delivered for call in t.llm_calls() for g in call.generations]
    assert sorted(answers) == sorted(f"answer {i}" for i in range(20))


def test_drop_in_exporter_options_put_the_users_over_the_drop_ins_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for variable in ("OTEL_BRIDGE_DEMO_GRACE_PERIOD", "OTEL_BRIDGE_GRACE_PERIOD"):
        monkeypatch.delenv(variable, raising=False)
    assert drop_in_exporter_options("demo", None, tables_per="flush") == {
        "tables_per": "flush",
        "grace_period": DROP_IN_GRACE_PERIOD,
    }
    assert drop_in_exporter_options(
        "demo", {"tables_per": "trace", "grace_period": 3.0}, tables_per="flush"
    ) == {"tables_per": "trace", "grace_period": 3.0}
    monkeypatch.setenv("OTEL_BRIDGE_DEMO_GRACE_PERIOD", "4")
    assert drop_in_exporter_options("demo", {"spool_dir": "x"}) == {"spool_dir": "x"}
