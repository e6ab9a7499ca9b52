"""The built-in `file` sink: the shared exporter contract, its settings, and what it writes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanKind,
    Status,
    StatusCode,
    set_span_in_context,
)

import otel_bridge.file_sink
from otel_bridge import otlp
from otel_bridge.delivery import RetryPolicy
from otel_bridge.file_sink import ENV_FILE_PATH, FileSpanExporter
from otel_bridge.langchain_views import FinishedTrace
from otel_bridge.otlp import DEFAULT_FILE_NAME, read_traces, traces_from_json_lines
from otel_bridge.trace_files import requests_in_file
from tests.contract import ExporterContract, MakeExporter, make_spans
from tests.support.recording import recording_provider


class TestFileSinkContract(ExporterContract):
    @pytest.fixture
    def make_exporter(self, tmp_path: Path) -> MakeExporter:
        def make(**options: Any) -> FileSpanExporter:
            return FileSpanExporter(tmp_path / "contract.jsonl", **options)

        return make


def _exporter(tmp_path: Path, path: Path | None = None, **options: Any) -> FileSpanExporter:
    settings: dict[str, Any] = {"grace_period": 0.01, "max_trace_age": 60.0, **options}
    return FileSpanExporter(path, spool_dir=tmp_path / "spool", **settings)


def test_path_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(ENV_FILE_PATH, raising=False)
    default = _exporter(tmp_path)
    default.shutdown()
    assert default.path == tmp_path / DEFAULT_FILE_NAME
    monkeypatch.setenv(ENV_FILE_PATH, str(tmp_path / "from-env.jsonl"))
    from_env = _exporter(tmp_path)
    from_env.shutdown()
    assert from_env.path == tmp_path / "from-env.jsonl"
    argument = _exporter(tmp_path, tmp_path / "argument.jsonl")
    argument.shutdown()
    assert argument.path == tmp_path / "argument.jsonl"


def test_writes_one_line_per_trace_that_reads_back_equal(tmp_path: Path) -> None:
    exporter = _exporter(tmp_path, tmp_path / "out" / "traces.jsonl")
    spans = make_spans()
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    assert exporter.force_flush(10_000)
    exporter.shutdown()
    lines = (tmp_path / "out" / "traces.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1
    (read,) = read_traces(tmp_path / "out" / "traces.jsonl")
    expected = FinishedTrace.from_spans(spans)
    assert read.trace_id == expected.trace_id
    assert sorted(read.spans, key=lambda s: s.span_id) == sorted(
        expected.spans, key=lambda s: s.span_id
    )


def test_already_delivered_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "traces.jsonl"
    first = _exporter(tmp_path, path)
    spans = make_spans()
    first.export(spans)
    assert first.force_flush(10_000)
    first.shutdown()
    key = format(FinishedTrace.from_spans(spans).trace_id, "032x")
    second = _exporter(tmp_path, path)
    try:
        assert second.already_delivered([key, "0" * 32]) == {key}
    finally:
        second.shutdown()


def test_an_unwritable_file_delays_delivery_and_loses_nothing(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where a directory should be", encoding="utf-8")
    path = blocker / "traces.jsonl"
    exporter = _exporter(
        tmp_path, path, retry=RetryPolicy(initial_backoff=0.01, max_backoff=0.05, jitter=0.0)
    )
    try:
        assert exporter.export(make_spans()) is SpanExportResult.SUCCESS
        assert not exporter.force_flush(300)
        blocker.unlink()
        assert exporter.force_flush(10_000)
        assert len(read_traces(path)) == 1
    finally:
        exporter.shutdown()


def test_resent_spans_are_written_once_and_late_spans_still_land(tmp_path: Path) -> None:
    """An OTLP client retrying a request can resend spans whose trace was already delivered."""
    path = tmp_path / "traces.jsonl"
    exporter = _exporter(tmp_path, path, max_trace_age=0.2)
    try:
        spans = make_spans()
        for _ in range(2):
            exporter.export(spans)
            assert exporter.force_flush(10_000)
        root = next(span for span in spans if span.parent is None)
        assert root.context is not None
        provider, memory = recording_provider()
        parent = set_span_in_context(NonRecordingSpan(root.context))
        provider.get_tracer("late").start_span("late", context=parent).end()
        exporter.export(memory.get_finished_spans())
        deadline = time.monotonic() + 30
        while len(path.read_text(encoding="utf-8").splitlines()) < 2:
            assert time.monotonic() < deadline, "the late span was never written"
            exporter.force_flush(1_000)
            time.sleep(0.05)
    finally:
        exporter.shutdown()
    (trace,) = read_traces(path)
    assert sorted(span.name for span in trace.spans) == ["child", "grandchild", "late", "root"]


def test_a_line_cut_short_by_a_crash_is_cut_back(tmp_path: Path) -> None:
    """A last line without its newline that is not JSON was cut by a crash (never acknowledged:
    its spans come again): it is removed, so every reader of the file can read it whole."""
    path = tmp_path / "traces.jsonl"
    path.write_text('{"resourceSpans":[{"scopeSp', encoding="utf-8")
    exporter = _exporter(tmp_path, path)
    try:
        exporter.export(make_spans())
        assert exporter.force_flush(10_000)
    finally:
        exporter.shutdown()
    (trace,) = read_traces(path)
    assert len(trace.spans) == 3
    assert len(_lines(path)) == 1


def _rich_spans() -> list[ReadableSpan]:
    """One trace whose spans carry what the OTLP mapping treats apart: kinds, an error status
    with its description, events, links, and array attributes."""
    provider, memory = recording_provider()
    tracer = provider.get_tracer("rich", "2.0")
    with tracer.start_as_current_span("root", kind=SpanKind.SERVER) as root:
        root.set_attribute("tags", ["a", "b"])
        root.add_event("started", {"n": 3, "ok": True})
        linked = root.get_span_context()
        with tracer.start_as_current_span(
            "call", kind=SpanKind.CLIENT, links=[Link(linked, {"why": "retry"})]
        ) as call:
            call.set_attribute("gen_ai.usage.input_tokens", 12)
            call.set_attribute("ratio", 0.25)
            call.set_status(Status(StatusCode.ERROR, "upstream said no"))
    provider.shutdown()
    return list(memory.get_finished_spans())


def test_a_request_from_the_receiver_lands_as_the_same_spans_do(tmp_path: Path) -> None:
    """The receiver hands decoded requests to `export_request`, which spools them without
    making SDK spans; the file ends up the same as through `export` of the decoded spans."""
    request = otlp.request_from_spans(_rich_spans())
    through_spans = _exporter(tmp_path / "a", tmp_path / "spans.jsonl")
    through_request = _exporter(tmp_path / "b", tmp_path / "request.jsonl")
    assert through_spans.export(otlp.spans_from_request(request)) is SpanExportResult.SUCCESS
    assert through_request.export_request(request) is SpanExportResult.SUCCESS
    for exporter in (through_spans, through_request):
        assert exporter.force_flush(10_000)
        exporter.shutdown()
    (expected,) = read_traces(tmp_path / "spans.jsonl")
    (received,) = read_traces(tmp_path / "request.jsonl")
    assert received.spans == expected.spans
    assert {span.kind for span in received.spans} == {"SERVER", "CLIENT"}
    call = next(span for span in received.spans if span.name == "call")
    assert (call.status_code, call.status_description) == ("ERROR", "upstream said no")
    assert call.links and call.links[0].attributes == {"why": "retry"}


def test_export_request_called_directly_skips_spans_with_invalid_ids(
    tmp_path: Path,
) -> None:
    """Called directly (not from the receiver), `export_request` leaves out spans whose ids
    OTLP rejects, and spools the rest."""
    spans = _rich_spans()
    request = otlp.request_from_spans(spans)
    scope_spans = request.resource_spans[0].scope_spans[0]
    scope_spans.spans.add(trace_id=bytes(16), span_id=b"\x01" * 8, name="zero trace id")
    scope_spans.spans.add(trace_id=b"\x02" * 16, span_id=b"\x03" * 7, name="short span id")
    exporter = _exporter(tmp_path / "spool", tmp_path / "out.jsonl")
    assert exporter.export_request(request) is SpanExportResult.SUCCESS
    assert exporter.force_flush(10_000)
    exporter.shutdown()
    written = [span for trace in read_traces(tmp_path / "out.jsonl") for span in trace.spans]
    assert sorted(span.name for span in written) == sorted(span.name for span in spans)


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def test_the_spans_remembered_are_bounded_to_the_traces_written_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Resent spans of the traces written last are dropped; the sink's memory holds no more
    than `remembered_spans` (here two traces of three), so a resend of an older trace is what
    the spool's resend window has to catch."""
    monkeypatch.setattr(FileSpanExporter, "remembered_spans", 6)
    path = tmp_path / "traces.jsonl"
    exporter = _exporter(tmp_path, path)
    try:
        traces = [FinishedTrace.from_spans(make_spans()) for _ in range(4)]
        for trace in traces:
            exporter.deliver([trace])
        exporter.deliver([traces[3], traces[2]])  # the last two: remembered, not written again
        assert len(_lines(path)) == 4
        exporter.deliver([traces[0]])  # forgotten: written again
        assert len(_lines(path)) == 5
        keys = [format(trace.trace_id, "032x") for trace in traces]
        assert exporter.already_delivered(keys) == {keys[0], keys[3]}
    finally:
        exporter.shutdown()


def test_a_restart_reads_back_only_the_end_of_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(otel_bridge.file_sink, "_TAIL_BLOCK", 512)  # several blocks
    monkeypatch.setattr(FileSpanExporter, "remembered_spans", 9)
    path = tmp_path / "traces.jsonl"
    traces = [FinishedTrace.from_spans(make_spans()) for _ in range(20)]
    path.write_text(
        "not OTLP JSON, at the start of a long file\n"
        + "".join(otlp.trace_to_json_line(trace) + "\n" for trace in traces),
        encoding="utf-8",
    )
    keys = [format(trace.trace_id, "032x") for trace in traces]
    exporter = _exporter(tmp_path, path)
    try:
        with caplog.at_level("WARNING", logger="otel_bridge.file_sink"):
            assert exporter.already_delivered(keys) == set(keys[-3:])
        assert "not OTLP JSON" not in caplog.text  # the first line was never read
        exporter.deliver(traces[-3:])
        assert len(_lines(path)) == 21
    finally:
        exporter.shutdown()


def test_a_restart_after_a_crash_mid_write_ignores_the_cut_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "traces.jsonl"
    written, cut = (FinishedTrace.from_spans(make_spans()) for _ in range(2))
    cut_line = otlp.trace_to_json_line(cut)
    path.write_text(
        otlp.trace_to_json_line(written) + "\n" + cut_line[: len(cut_line) // 2], encoding="utf-8"
    )
    exporter = _exporter(tmp_path, path)
    try:
        with caplog.at_level("WARNING", logger="otel_bridge.file_sink"):
            keys = [format(trace.trace_id, "032x") for trace in (written, cut)]
            assert exporter.already_delivered(keys) == {keys[0]}
        assert "a line cut short" in caplog.text
        exporter.deliver([written, cut])
    finally:
        exporter.shutdown()
    first, last = _lines(path)
    (again,) = traces_from_json_lines([last])
    assert (again.trace_id, len(again.spans)) == (cut.trace_id, 3)
    assert traces_from_json_lines([first])[0].trace_id == written.trace_id


@pytest.mark.parametrize("file_format", ["json", "proto"])
def test_a_request_resent_after_a_restart_is_not_written_twice(
    tmp_path: Path, file_format: str
) -> None:
    """A request is written at once, one line (message) a request; a client resending it after
    the acknowledgement was lost (and the sink restarted meanwhile) adds only the spans the file
    lacks, and a span the request repeats is written once."""
    path = tmp_path / f"out.{file_format}"
    spans = make_spans()
    request = otlp.request_from_spans(spans)
    first = _exporter(tmp_path / "a", path, format=file_format)
    assert first.export_request(request) is SpanExportResult.SUCCESS
    first.shutdown()
    late = otlp.request_from_spans(_rich_spans())
    resent = otlp.request_from_spans(spans)
    resent.MergeFrom(late)
    resent.MergeFrom(late)  # within one request, a span twice
    again = _exporter(tmp_path / "b", path, format=file_format)
    assert again.export_request(resent) is SpanExportResult.SUCCESS
    assert again.export_request(request) is SpanExportResult.SUCCESS  # nothing new: no line
    again.shutdown()
    requests = list(requests_in_file(path))
    assert len(requests) == 2
    names = [span.name for req in requests for span in otlp.spans_from_request(req)]
    assert sorted(names) == sorted(span.name for span in spans + _rich_spans())


def test_a_request_the_file_cannot_take_is_refused(tmp_path: Path) -> None:
    """A full or read-only disk answers FAILURE (the receiver's 503), and the next request that
    can be written lands."""
    path = tmp_path / "out" / "traces.jsonl"
    exporter = _exporter(tmp_path / "spool", path)
    try:
        path.parent.mkdir()
        path.mkdir()  # a directory where the file should be: appending fails
        request = otlp.request_from_spans(make_spans())
        assert exporter.export_request(request) is SpanExportResult.FAILURE
        path.rmdir()
        assert exporter.export_request(request) is SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()
    (trace,) = read_traces(path)
    assert len(trace.spans) == 3
