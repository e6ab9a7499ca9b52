"""The file sink writes from the spool's protobuf: OTLP JSON lines equal to protobuf's own JSON
mapping of the same message, and `format: proto` framed as the Collector's file exporter frames
it (each message after its size in 4 bytes, big-endian), read back equal and written once
across a restart."""

from __future__ import annotations

import json
import logging
import struct
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status, TracesData
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import NonRecordingSpan, set_span_in_context

from otel_bridge import otlp
from otel_bridge.file_sink import ENV_FILE_FORMAT, FileSpanExporter
from otel_bridge.langchain_views import FinishedTrace
from otel_bridge.otlp_json import traces_data_json
from otel_bridge.receiver import ConfigError, build_sinks, parse_config
from otel_bridge.trace_files import read_trace_file
from tests.contract import make_spans
from tests.support.recording import recording_provider


def _exporter(tmp_path: Path, path: Path, **options: Any) -> FileSpanExporter:
    settings: dict[str, Any] = {"grace_period": 0.01, "max_trace_age": 60.0, **options}
    return FileSpanExporter(path, spool_dir=tmp_path / "spool", **settings)


def _every_field_request() -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add(schema_url="https://schema/r")
    resource_spans.resource.attributes.add(key="service.name").value.string_value = "svc ✓"
    resource_spans.resource.dropped_attributes_count = 2
    scope_spans = resource_spans.scope_spans.add(schema_url="https://schema/s")
    scope_spans.scope.name = "scope"
    scope_spans.scope.version = "1.0"
    scope_spans.scope.attributes.add(key="scope.attr").value.bool_value = True
    scope_spans.scope.dropped_attributes_count = 1
    span = scope_spans.spans.add(
        trace_id=b"\x01" * 16,
        span_id=b"\x02" * 8,
        parent_span_id=b"\x03" * 8,
        trace_state="a=b",
        name='quote " backslash \\ newline \n tab \t é 😀',
        kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=1_700_000_000_123_456_789,
        end_time_unix_nano=2**64 - 1,
        dropped_attributes_count=3,
        dropped_events_count=4,
        dropped_links_count=5,
        flags=0x301,
    )
    values: list[tuple[str, str, Any]] = [
        ("s", "string_value", "text"),
        ("empty", "string_value", ""),
        ("t", "bool_value", True),
        ("f", "bool_value", False),
        ("i", "int_value", -(2**63)),
        ("zero", "int_value", 0),
        ("d", "double_value", 2.5),
        ("nan", "double_value", float("nan")),
        ("inf", "double_value", float("inf")),
        ("-inf", "double_value", float("-inf")),
        ("b", "bytes_value", b"\x00\xffbytes"),
    ]
    for key, kind, value in values:
        setattr(span.attributes.add(key=key).value, kind, value)
    array = span.attributes.add(key="array").value.array_value
    array.values.add().string_value = "x"
    array.values.add().int_value = 7
    array.values.add()  # an empty AnyValue
    span.attributes.add(key="empty array").value.array_value.SetInParent()
    kvlist = span.attributes.add(key="kvlist").value.kvlist_value
    kvlist.values.add(key="inner").value.double_value = -0.5
    span.attributes.add(key="no value")
    event = span.events.add(time_unix_nano=5, name="event", dropped_attributes_count=1)
    event.attributes.add(key="e").value.string_value = "v"
    span.events.add()
    link = span.links.add(
        trace_id=b"\x04" * 16, span_id=b"\x05" * 8, trace_state="c=d", flags=0x100
    )
    link.attributes.add(key="l").value.int_value = 1
    link.dropped_attributes_count = 6
    span.status.message = "broke"
    span.status.code = Status.STATUS_CODE_ERROR
    scope_spans.spans.add(trace_id=b"\x01" * 16, span_id=b"\x06" * 8)  # defaults only
    request.resource_spans.add().scope_spans.add().scope.SetInParent()
    return request


def _normalized(text: str) -> Any:
    # NaN != NaN: compare its spelling instead.
    return json.loads(text, parse_constant=lambda name: f"constant {name}")


def test_the_json_line_is_protobufs_json_mapping_of_the_message() -> None:
    request = _every_field_request()
    line = traces_data_json(request)
    assert "\n" not in line
    assert _normalized(line) == _normalized(otlp.encode_json(request))
    assert otlp.decode_json(line) == otlp.decode_json(otlp.encode_json(request))
    assert traces_data_json(TracesData()) == "{}"
    # Resources and scopes already written are not mistaken for one another.
    request.resource_spans[0].resource.attributes[0].value.string_value = "other service"
    request.resource_spans[0].scope_spans[0].scope.version = "2.0"
    assert _normalized(traces_data_json(request)) == _normalized(otlp.encode_json(request))


def _proto_messages(path: Path) -> list[bytes]:
    data = path.read_bytes()
    messages, offset = [], 0
    while offset < len(data):
        (size,) = struct.unpack(">I", data[offset : offset + 4])
        messages.append(data[offset + 4 : offset + 4 + size])
        offset += 4 + size
    assert offset == len(data)
    return messages


def _sorted(spans: Any) -> list[Any]:
    return sorted(spans, key=lambda span: span.span_id)


def test_format_proto_writes_size_prefixed_traces_data_that_reads_back_equal(
    tmp_path: Path,
) -> None:
    path = tmp_path / "traces.binpb"
    exporter = _exporter(tmp_path, path, format="proto")
    spans = make_spans()
    request = _every_field_request()
    del request.resource_spans[0].scope_spans[0].spans[1:]
    try:
        assert exporter.export(spans) is SpanExportResult.SUCCESS
        assert exporter.export_request(request) is SpanExportResult.SUCCESS
        assert exporter.force_flush(10_000)
    finally:
        exporter.shutdown()
    messages = [TracesData.FromString(message) for message in _proto_messages(path)]
    assert len(messages) == 2
    written = {
        span.span_id: span
        for message in messages
        for resource_spans in message.resource_spans
        for scope_spans in resource_spans.scope_spans
        for span in scope_spans.spans
    }
    sent = request.resource_spans[0].scope_spans[0].spans[0]
    assert written[sent.span_id] == sent  # every field, as it came in
    by_id = {trace.trace_id: trace for trace in read_trace_file(path)}
    expected = FinishedTrace.from_spans(spans)
    assert _sorted(by_id[expected.trace_id].spans) == _sorted(expected.spans)
    assert by_id[int.from_bytes(sent.trace_id, "big")].spans[0].name == sent.name


def _write_once(exporter: FileSpanExporter, spans: Any) -> None:
    """One process's life: export `spans`, see them written, shut down."""
    try:
        exporter.export(spans)
        assert exporter.force_flush(10_000)
    finally:
        exporter.shutdown()


def _late_child_of(spans: Any) -> Any:
    root = next(span for span in spans if span.parent is None)
    provider, memory = recording_provider()
    parent = set_span_in_context(NonRecordingSpan(root.context))
    provider.get_tracer("late").start_span("late", context=parent).end()
    return memory.get_finished_spans()


@pytest.mark.parametrize("file_format", ["proto", "json"])
def test_each_span_is_written_once_across_a_restart(tmp_path: Path, file_format: str) -> None:
    """After a restart the sink reads back what it wrote: spans sent again are not written
    twice, a late span of a written trace still is."""
    path = tmp_path / "traces.out"
    spans = make_spans()
    _write_once(_exporter(tmp_path / "a", path, format=file_format), spans)
    second = _exporter(tmp_path / "b", path, format=file_format, max_trace_age=0.2)
    try:
        key = format(FinishedTrace.from_spans(spans).trace_id, "032x")
        assert second.already_delivered([key, "0" * 32]) == {key}
        second.export(spans)
        second.export(_late_child_of(spans))
        assert second.force_flush(10_000)
    finally:
        second.shutdown()
    (trace,) = read_trace_file(path)
    assert sorted(span.name for span in trace.spans) == ["child", "grandchild", "late", "root"]
    if file_format == "proto":
        assert len(_proto_messages(path)) == 2


def test_a_message_cut_short_by_a_crash_is_removed_at_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "traces.binpb"
    _write_once(_exporter(tmp_path / "a", path, format="proto"), make_spans())
    whole = path.read_bytes()
    with path.open("ab") as file:
        file.write(struct.pack(">I", 500) + b"\x0a" * 20)  # a message cut short
    second = _exporter(tmp_path / "b", path, format="proto")
    try:
        with caplog.at_level(logging.WARNING, logger="otel_bridge.file_sink"):
            second.export(make_spans())
            assert second.force_flush(10_000)
    finally:
        second.shutdown()
    assert "cut short" in caplog.text
    assert path.read_bytes().startswith(whole)
    assert len(_proto_messages(path)) == 2
    assert len(read_trace_file(path)) == 2


@pytest.mark.parametrize(("existing", "file_format"), [("json", "proto"), ("proto", "json")])
def test_a_file_of_the_other_format_is_not_appended_to(
    tmp_path: Path, existing: str, file_format: str
) -> None:
    path = tmp_path / "traces.out"
    _write_once(_exporter(tmp_path / "a", path, format=existing), make_spans())
    before = path.read_bytes()
    other = _exporter(tmp_path / "b", path, format=file_format)
    try:
        other.export(make_spans())
        assert not other.force_flush(500)  # held in the spool, retried
    finally:
        other.shutdown()
    assert path.read_bytes() == before


def test_format_precedence_and_validation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_FILE_FORMAT, raising=False)
    made = []
    try:
        made.append(_exporter(tmp_path / "a", tmp_path / "a.out"))
        assert made[-1].format == "json"
        monkeypatch.setenv(ENV_FILE_FORMAT, "PROTO")
        made.append(_exporter(tmp_path / "b", tmp_path / "b.out"))
        assert made[-1].format == "proto"
        made.append(_exporter(tmp_path / "c", tmp_path / "c.out", format="json"))
        assert made[-1].format == "json"
        with pytest.raises(ValueError, match="format='xml'"):
            _exporter(tmp_path / "d", tmp_path / "d.out", format="xml")
        monkeypatch.setenv(ENV_FILE_FORMAT, "xml")
        with pytest.raises(ValueError, match=ENV_FILE_FORMAT):
            _exporter(tmp_path / "e", tmp_path / "e.out")
    finally:
        for exporter in made:
            exporter.shutdown()


def test_the_serve_yaml_sets_the_format(tmp_path: Path) -> None:
    config = parse_config(
        {
            "spool_dir": str(tmp_path / "spool"),
            "sinks": {"file": {"path": str(tmp_path / "t.binpb"), "format": "proto"}},
        }
    )
    (sink,) = build_sinks(config)
    try:
        assert isinstance(sink.exporter, FileSpanExporter)
        assert sink.exporter.format == "proto"
    finally:
        sink.exporter.shutdown()
    with pytest.raises(ConfigError, match=r"^sinks\.file: format='xml' is not valid"):
        build_sinks(parse_config({"sinks": {"file": {"format": "xml"}}}))
