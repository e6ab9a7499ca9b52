"""Trace files on disk, as `otel-bridge tree` reads them: OTLP JSON lines (ours, or a Collector
file exporter's default `format: json`) and the file exporter's `format: proto` (each
ExportTraceServiceRequest after its length as 4 big-endian bytes), plain or gzip-compressed.

The format is told from the bytes, not the file name. A damaged file raises `TraceFileError`
naming the line (JSON) or record (protobuf) at fault.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otel_bridge.langchain_views import FinishedTrace
from otel_bridge.otlp import OTLPDecodeError, decode_json, decode_protobuf, records_from_request
from otel_bridge.trace_tree import SpanRecord

__all__ = ["TraceFileError", "read_trace_file", "requests_in_file"]

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_LENGTH_BYTES = 4
# A protobuf record starts with its length, big-endian: a control byte (0 under 16 MiB) that
# is not whitespace, where OTLP JSON lines start with "{" or a blank line. Anything else is read
# as text, so a damaged text file is reported by line.
_TEXT_CONTROL_BYTES = frozenset(b"\t\n\r")


class TraceFileError(ValueError):
    """The file is not a trace file we can read, or a line/record of it is damaged."""


def read_trace_file(path: str | Path) -> list[FinishedTrace]:
    """Every trace in the file, its spans grouped by trace id in first-seen order (a Collector
    may split a trace over lines or records, or mix traces in one)."""
    by_trace: dict[int, list[SpanRecord]] = {}
    for request in requests_in_file(path):
        for record in records_from_request(request):
            by_trace.setdefault(record.trace_id, []).append(record)
    return [FinishedTrace(trace_id, tuple(spans)) for trace_id, spans in by_trace.items()]


def requests_in_file(path: str | Path) -> Iterator[ExportTraceServiceRequest]:
    """The file's requests in order. OSError when it cannot be opened; TraceFileError when its
    contents are not OTLP."""
    with Path(path).open("rb") as raw:
        head = raw.peek(_LENGTH_BYTES)[:_LENGTH_BYTES]
        if head.startswith(_ZSTD_MAGIC):
            raise TraceFileError(
                "zstd-compressed (a Collector file exporter's `compression: zstd`); "
                "decompress it first: zstd -d FILE"
            )
        stream = raw
        if head.startswith(_GZIP_MAGIC):
            stream = io.BufferedReader(gzip.GzipFile(fileobj=raw, mode="rb"))
        position = _Position()
        try:
            first = stream.peek(1)[:1]
            if first and first[0] < 0x20 and first[0] not in _TEXT_CONTROL_BYTES:
                yield from _proto_records(stream, position)
            else:
                yield from _json_lines(stream, position)
        except (gzip.BadGzipFile, zlib.error, EOFError) as exc:
            detail = str(exc) or "the compressed data ends early"
            raise TraceFileError(f"{position.after()}damaged gzip data: {detail}") from None


class _Position:
    """The last line or record read whole, for errors raised by the decompressor."""

    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last = ""

    def after(self) -> str:
        return f"after {self.last}: " if self.last else ""


def _json_lines(stream: IO[bytes], position: _Position) -> Iterator[ExportTraceServiceRequest]:
    for number, line in enumerate(stream, start=1):
        position.last = f"line {number}"
        if not line.strip():
            continue
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise TraceFileError(
                f"line {number}: not UTF-8 text (byte {exc.start + 1} of the line)"
            ) from None
        try:
            yield decode_json(text)
        except OTLPDecodeError as exc:
            raise TraceFileError(f"line {number}: {exc}") from None


def _proto_records(stream: IO[bytes], position: _Position) -> Iterator[ExportTraceServiceRequest]:
    offset = 0
    number = 0
    while True:
        header = stream.read(_LENGTH_BYTES)
        if not header:
            return
        number += 1
        where = f"record {number} (byte {offset})"
        if len(header) < _LENGTH_BYTES:
            raise TraceFileError(f"{where}: the file ends inside a record's length")
        length = int.from_bytes(header, "big")
        body = stream.read(length)
        if len(body) < length:
            raise TraceFileError(
                f"{where}: the file ends {length - len(body)} byte(s) short of the "
                f"{length}-byte record"
            )
        try:
            yield decode_protobuf(body)
        except OTLPDecodeError as exc:
            raise TraceFileError(f"{where}: {exc}") from None
        offset += _LENGTH_BYTES + length
        position.last = f"record {number}"
