"""Trace files as `otel-bridge tree` reads them: OTLP JSON lines and the Collector file exporter's
length-prefixed protobuf, plain or gzip, with a damaged line or record named by number.

The Collector's own `format: proto` output is read in tests/integration/test_cli.py; here the
records are written the way its file exporter writes them (4 big-endian length bytes, then the
ExportTraceServiceRequest).
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan

from otel_bridge.otlp import encode_json, request_from_spans
from otel_bridge.trace_files import TraceFileError, read_trace_file
from tests.support.recording import recording_provider


def make_traces(count: int) -> list[ReadableSpan]:
    """`count` traces of a root and one child each, as the SDK ends them."""
    provider, spans = recording_provider()
    tracer = provider.get_tracer("test")
    for number in range(count):
        with (
            tracer.start_as_current_span(f"root-{number}"),
            tracer.start_as_current_span(f"child-{number}"),
        ):
            pass
    provider.shutdown()
    return list(spans.get_finished_spans())


def requests(spans: Sequence[ReadableSpan], per_request: int) -> list[ExportTraceServiceRequest]:
    return [
        request_from_spans(spans[start : start + per_request])
        for start in range(0, len(spans), per_request)
    ]


def json_lines(batches: Sequence[ExportTraceServiceRequest]) -> bytes:
    return "".join(encode_json(request) + "\n" for request in batches).encode()


def proto_records(batches: Sequence[ExportTraceServiceRequest]) -> bytes:
    records = []
    for request in batches:
        body = request.SerializeToString()
        records.append(len(body).to_bytes(4, "big") + body)
    return b"".join(records)


def trees(path: Path) -> dict[str, set[str]]:
    """Root span name -> names of the spans of its trace."""
    return {trace.root.name: {span.name for span in trace.spans} for trace in read_trace_file(path)}


EXPECTED = {f"root-{n}": {f"root-{n}", f"child-{n}"} for n in range(3)}


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("encode", [json_lines, proto_records], ids=["json", "proto"])
def test_every_format_reads_back_whole_traces(
    tmp_path: Path, encode: Callable[[Sequence[ExportTraceServiceRequest]], bytes], compress: bool
) -> None:
    # One span per request: each trace is split over two lines/records and regrouped.
    data = encode(requests(make_traces(3), per_request=1))
    path = tmp_path / "traces"
    path.write_bytes(gzip.compress(data) if compress else data)
    assert trees(path) == EXPECTED


def test_blank_lines_and_an_empty_file_are_no_traces(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    assert read_trace_file(empty) == []
    spaced = tmp_path / "spaced.jsonl"
    spaced.write_bytes(b"\n\n" + json_lines(requests(make_traces(3), per_request=6)) + b"\n")
    assert trees(spaced) == EXPECTED


def test_a_bad_json_line_is_named_by_number(tmp_path: Path) -> None:
    lines = json_lines(requests(make_traces(2), per_request=2)).splitlines(keepends=True)
    path = tmp_path / "broken.jsonl"
    path.write_bytes(lines[0] + b"\n" + b'{"resourceSpans": [}\n' + lines[1])
    with pytest.raises(TraceFileError, match=r"^line 3: invalid JSON"):
        read_trace_file(path)


def test_a_line_that_is_not_utf8_is_named_by_number(tmp_path: Path) -> None:
    good = json_lines(requests(make_traces(1), per_request=2))
    path = tmp_path / "latin1.jsonl.gz"
    path.write_bytes(gzip.compress(good + b'{"x": "caf\xe9"}\n'))
    with pytest.raises(TraceFileError, match=r"^line 2: not UTF-8 text \(byte 11 of the line\)"):
        read_trace_file(path)


def test_a_truncated_proto_record_is_named_by_number_and_offset(tmp_path: Path) -> None:
    data = proto_records(requests(make_traces(2), per_request=2))
    first_length = int.from_bytes(data[:4], "big")
    path = tmp_path / "cut.binpb"
    path.write_bytes(data[:-5])
    with pytest.raises(
        TraceFileError,
        match=rf"^record 2 \(byte {first_length + 4}\): the file ends 5 byte\(s\) short",
    ):
        read_trace_file(path)


def test_a_proto_record_that_does_not_parse_is_named(tmp_path: Path) -> None:
    good = proto_records(requests(make_traces(1), per_request=2))
    garbage = b"\xff" * 16
    path = tmp_path / "garbage.binpb"
    path.write_bytes(good + len(garbage).to_bytes(4, "big") + garbage)
    with pytest.raises(TraceFileError, match=r"^record 2 \(byte \d+\): invalid protobuf"):
        read_trace_file(path)


def test_truncated_gzip_data_says_after_which_line(tmp_path: Path) -> None:
    # Enough lines that the cut lands past the first ones.
    data = json_lines(requests(make_traces(200), per_request=1))
    compressed = gzip.compress(data, compresslevel=0)
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(compressed[: len(compressed) // 2])
    with pytest.raises(TraceFileError, match=r"^after line \d+: damaged gzip data"):
        read_trace_file(path)


def test_zstd_compressed_files_are_named_with_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "traces.zst"
    path.write_bytes(b"\x28\xb5\x2f\xfd" + b"\x00" * 16)
    with pytest.raises(TraceFileError, match=r"zstd-compressed .* zstd -d FILE"):
        read_trace_file(path)
