"""The built-in `file` sink: traces appended as the OpenTelemetry Collector's file exporter
writes them: OTLP JSON lines (`format: json`, the default) or length-prefixed protobuf
(`format: proto`).

A request from the receiver (`export_request`) is written at once, one line a request, before
it is acknowledged: a local file is as durable as the spool, so it skips the spool. Spans from
`export()` (in process) go through the spool, and each finished trace is written from the OTLP
`TracesData` the spool holds, without becoming SDK spans or `SpanRecord`s first. Either file is
readable by `otel-bridge tree`, `otel_bridge.otlp.read_traces` and anything that reads the
Collector file exporter's output.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.export import SpanExportResult

from otel_bridge import otlp
from otel_bridge.episodes import Episode
from otel_bridge.exporter import TraceExporter
from otel_bridge.langchain_views import FinishedTrace
from otel_bridge.otlp import DEFAULT_FILE_NAME, traces_data_of
from otel_bridge.otlp_json import traces_data_json
from otel_bridge.settings import FILE_FORMAT, FILE_LINES, FILE_PATH
from otel_bridge.sink import DeliveryReport, RetryableError
from otel_bridge.spool_files import open_private_append

__all__ = ["ENV_FILE_FORMAT", "ENV_FILE_LINES", "ENV_FILE_PATH", "FileSpanExporter"]

(ENV_FILE_PATH,) = FILE_PATH.variables
(ENV_FILE_FORMAT,) = FILE_FORMAT.variables
(ENV_FILE_LINES,) = FILE_LINES.variables

_logger = logging.getLogger(__name__)

# Bytes read at a time when the end of the file is read back at start.
_TAIL_BLOCK = 1 << 20
# format: proto puts each message after its size, an unsigned 32-bit big-endian integer.
_SIZE = struct.Struct(">I")


class FileSpanExporter(TraceExporter):
    """Appends each finished trace to `path`: one OTLP JSON line, or with `format="proto"` its
    `TracesData` protobuf after its size in 4 bytes, big-endian (the Collector file exporter's
    `format: proto`).

    `path`: argument > `OTEL_BRIDGE_FILE_PATH` > `otel-bridge-traces.jsonl` in the working
    directory; `format`: argument > `OTEL_BRIDGE_FILE_FORMAT` > `json`; `lines` (what a request
    from the receiver becomes: `request`, one line written at once, or `trace`, spooled and
    written by finished trace): argument > `OTEL_BRIDGE_FILE_LINES` > `request`. Other keyword
    arguments go to `TraceExporter` (spool, grace period, ...).

    Spans are written once: the sink remembers the span ids of the traces it wrote last (at most
    `remembered_spans`; at start it reads them back from the end of the file, not the whole
    file), and writes only the spans of a trace it does not hold yet. What that
    window does not cover, the spool does: a request resent by a client within the spool's
    resend window never reaches the sink twice, and an item retried after a crash mid-write was
    the last thing written, so its trace is in the window read back. Only a client resending
    spans after both (more than `remembered_spans` spans written since, and past the resend
    window) gets them written twice: OTLP's own at-least-once.
    """

    sink_name: ClassVar[str] = "file"
    # 92 bytes a span for 2-span traces (measured with tracemalloc), so 46 MB at most. At a few
    # thousand spans a second, minutes of traffic, well past the spool's resend window; at
    # `serve`'s most (about 110,000 spans a second, json or proto), about 5 seconds.
    remembered_spans: ClassVar[int] = 500_000

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        format: str | None = None,
        lines: str | None = None,
        **options: Any,
    ) -> None:
        resolved = FILE_PATH.resolve(None if path is None else os.fspath(path))
        self.path = Path(resolved or DEFAULT_FILE_NAME).absolute()
        chosen = FILE_FORMAT.resolve(format)
        try:
            self.format = FILE_FORMAT.parse(chosen) if format is not None else chosen
        except ValueError as error:
            raise ValueError(f"format={format!r} is not valid: {error}") from None
        chosen_lines = FILE_LINES.resolve(lines)
        try:
            self.lines = FILE_LINES.parse(chosen_lines) if lines is not None else chosen_lines
        except ValueError as error:
            raise ValueError(f"lines={lines!r} is not valid: {error}") from None
        self._write_lock = threading.Lock()
        self._written: _RecentSpans | None = None
        self._file_unwritable = Episode(
            _logger, self.sink_name, "file not writable: requests are refused", "span(s) refused"
        )
        super().__init__(**options)

    def destination_identity(self) -> dict[str, str]:
        """The file traces are appended to."""
        return {"path": str(self.path)}

    def export_request(
        self, request: ExportTraceServiceRequest, *, ids_checked: bool = False
    ) -> SpanExportResult:
        """A decoded OTLP request (what the receiver hands over) is written to the file at once,
        not spooled: a local file is as durable as the spool. One line (or `format: proto`
        message) per request, as the Collector's file exporter writes, handed to the operating
        system before this returns (so before the client's acknowledgement; not fsynced: the
        spool's SQLite commits are not either). Spans this file already holds (a client
        resending a request whose acknowledgement was lost, also across a restart: the ids are
        read back from the end of the file) are left out. A file that cannot be written (full
        or read-only disk) answers FAILURE, so the receiver answers 503/UNAVAILABLE and the
        client retries: nothing acknowledged is lost. Spans with invalid ids are skipped
        (`ids_checked`: the caller removed them already). With `lines="trace"` the request is
        spooled instead, and each finished trace written as one line."""
        if self.lines == "trace":
            return super().export_request(request, ids_checked=ids_checked)
        if self._is_shutdown:
            return SpanExportResult.FAILURE
        count = otlp.span_count(request)
        try:
            with self._write_lock:
                written = self._written_spans()
                message, fresh = _new_spans_of(request, written, check_ids=not ids_checked)
                if fresh:
                    if self.format == "proto":
                        payload = message.SerializeToString()
                        data = _SIZE.pack(len(payload)) + payload
                    else:
                        data = traces_data_json(message).encode("utf-8") + b"\n"
                    self._append(data, self.format == "proto", sync=False)
                    for trace_id, span_ids in fresh.items():
                        written.add(trace_id, span_ids)
        except (RetryableError, OSError) as error:  # OSError: reading the file back
            self._file_unwritable.occurred(str(error), count)
            return SpanExportResult.FAILURE
        self._file_unwritable.ended()
        return SpanExportResult.SUCCESS

    def deliver(self, traces: Sequence[FinishedTrace]) -> DeliveryReport:
        with self._write_lock:
            written = self._written_spans()
            proto = self.format == "proto"
            chunks: list[bytes] = []
            fresh: list[tuple[int, bytes]] = []
            for trace in traces:
                payload, message = traces_data_of(trace)
                span_ids = _span_ids(message)
                known = written.span_ids(trace.trace_id)
                if known:
                    # A retried OTLP request can bring spans back after their trace was
                    # delivered; write only spans the file lacks, so duplicates are dropped and
                    # late spans still land.
                    message = _without_spans(message, known)
                    span_ids = _span_ids(message)
                    if not span_ids:
                        continue
                    payload = message.SerializeToString()
                if proto:
                    chunks.append(_SIZE.pack(len(payload)) + payload)
                else:
                    chunks.append(traces_data_json(message).encode("utf-8") + b"\n")
                fresh.append((trace.trace_id, span_ids))
            if chunks:
                self._append(b"".join(chunks), proto)
            for trace_id, span_ids in fresh:
                written.add(trace_id, span_ids)
        return DeliveryReport.all_delivered(traces)

    def _append(self, data: bytes, proto: bool, *, sync: bool = True) -> None:
        try:
            # Spans hold prompts and answers: the file is 0600 in a 0700 directory we create.
            with open_private_append(self.path) as file:
                end = file.seek(0, os.SEEK_END)
                if end > 0 and not proto:
                    file.seek(-1, os.SEEK_END)
                    if file.read(1) != b"\n":  # finish a line cut short by a crash
                        file.write(b"\n")
                file.flush()
                descriptor = file.fileno()
                try:
                    # Straight to the descriptor (nothing left in a buffer to be written after
                    # a failure): all of it, or nothing once cut back below.
                    rest = memoryview(data)
                    while rest:
                        rest = rest[os.write(descriptor, rest) :]
                    if sync:
                        # Acknowledged means on disk: the spool forgets these traces after we
                        # return.
                        os.fsync(descriptor)
                except OSError:
                    # A full disk can take part of it: a message cut short would misframe every
                    # one after it, a line cut short would stop readers of the file; what is cut
                    # back is written again (the spool or the client retries it).
                    os.ftruncate(descriptor, end)
                    raise
        except OSError as exc:
            raise RetryableError(f"cannot append to {self.path}: {exc.strerror}") from exc

    def already_delivered(self, keys: Sequence[str]) -> set[str]:
        with self._write_lock:
            written = self._written_spans()
            return {key for key in keys if _trace_id(key) in written}

    def _written_spans(self) -> _RecentSpans:
        if self._written is None:
            # After a restart, spans written before the crash are not written twice.
            recent = _RecentSpans(self.remembered_spans)
            if self.format == "proto":
                found = _read_back_proto(self.path, self.remembered_spans)
            else:
                # A format proto file starts with a message's size: its first byte is 0 for
                # any message under 16 MiB, which no text line starts with.
                if _first_byte(self.path) == b"\x00":
                    raise RetryableError(
                        f"{self.path} holds no OTLP JSON lines (format proto?): choose another path"
                    )
                _cut_back_a_partial_line(self.path)
                found = _read_back(self.path, self.remembered_spans)
            for trace_id, span_ids in found:
                recent.add(trace_id, span_ids)
            self._written = recent
        return self._written


def _cut_back_a_partial_line(path: Path) -> None:
    """Remove the file's last line when a crash (SIGKILL mid-write) cut it short: it was never
    acknowledged, its spans come again (from the spool or the client's retry), and a cut line
    would stop every reader of the file. Only an unfinished last line that is not JSON goes."""
    try:
        with path.open("r+b") as file:
            size = file.seek(0, os.SEEK_END)
            if size == 0:
                return
            file.seek(size - 1)
            if file.read(1) == b"\n":
                return
            start = max(0, size - _TAIL_BLOCK)
            while True:
                file.seek(start)
                newline = file.read(size - start).rfind(b"\n")
                if newline >= 0 or start == 0:
                    break
                start = max(0, start - _TAIL_BLOCK)
            cut = start + newline + 1 if newline >= 0 else 0
            file.seek(cut)
            try:
                json.loads(file.read(size - cut))
                return  # a whole line without its newline (another writer's): kept
            except ValueError:
                pass
            _logger.warning(
                "%s: the last %d bytes are a line cut short (a crash mid-write); removed",
                path,
                size - cut,
            )
            file.truncate(cut)
    except FileNotFoundError:
        return


def _first_byte(path: Path) -> bytes:
    try:
        with path.open("rb") as file:
            return file.read(1)
    except FileNotFoundError:
        return b""


def _span_ids(message: Any) -> bytes:
    """The 8-byte span ids of every span of a `TracesData`, joined."""
    return b"".join(
        span.span_id
        for resource_spans in message.resource_spans
        for scope_spans in resource_spans.scope_spans
        for span in scope_spans.spans
    )


def _new_spans_of(
    request: ExportTraceServiceRequest, written: _RecentSpans, *, check_ids: bool
) -> tuple[ExportTraceServiceRequest, dict[int, bytes]]:
    """The request without the spans `written` holds (nor second copies of a span within it,
    nor, with `check_ids`, spans whose ids OTLP rejects), and its new span ids by trace (8-byte
    ids, joined). The request itself when nothing is left out."""
    seen: dict[int, set[bytes]] = {}
    fresh: dict[int, list[bytes]] = {}
    unwanted: list[tuple[int, int, int]] = []  # (resource, scope, span) positions
    for r, resource_spans in enumerate(request.resource_spans):
        for s, scope_spans in enumerate(resource_spans.scope_spans):
            for index, span in enumerate(scope_spans.spans):
                if check_ids and otlp.invalid_ids(span):
                    unwanted.append((r, s, index))
                    continue
                trace_id = int.from_bytes(span.trace_id, "big")
                ids = seen.get(trace_id)
                if ids is None:
                    ids = seen[trace_id] = set(written.span_ids(trace_id))
                    fresh[trace_id] = []
                span_id = span.span_id
                if span_id in ids:
                    unwanted.append((r, s, index))
                    continue
                ids.add(span_id)
                fresh[trace_id].append(span_id)
    new = {trace_id: b"".join(ids) for trace_id, ids in fresh.items() if ids}
    if not unwanted:
        return request, new
    copy = ExportTraceServiceRequest()
    copy.MergeFrom(request)
    for r, s, index in reversed(unwanted):
        del copy.resource_spans[r].scope_spans[s].spans[index]
    for r in reversed(range(len(copy.resource_spans))):
        scopes = copy.resource_spans[r].scope_spans
        for s in reversed(range(len(scopes))):
            if not scopes[s].spans:
                del scopes[s]
        if not scopes:
            del copy.resource_spans[r]
    return copy, new


def _without_spans(message: Any, span_ids: frozenset[bytes]) -> ExportTraceServiceRequest:
    """A copy of `message` without the spans whose ids are in `span_ids` (nor what they leave
    empty)."""
    copy = ExportTraceServiceRequest()
    copy.MergeFrom(message)
    for r, resource_spans in reversed(list(enumerate(copy.resource_spans))):
        scopes = resource_spans.scope_spans
        for s, scope_spans in reversed(list(enumerate(scopes))):
            spans = scope_spans.spans
            for index in reversed(range(len(spans))):
                if spans[index].span_id in span_ids:
                    del spans[index]
            if not spans:
                del scopes[s]
        if not scopes:
            del copy.resource_spans[r]
    return copy


class _RecentSpans:
    """Span ids of the traces written last, by trace; past `capacity` spans the trace written
    (or added to) longest ago is forgotten first. A trace's ids are one bytes object, 8 bytes
    an id.

    An OrderedDict, not a dict: once full, every trace added forgets the oldest, and a dict's
    first item is found by stepping over the slots of every item removed since it last grew
    (16 us a lookup at 250,000 traces, which took `serve` from 110k to 30k spans/s once the
    window filled); OrderedDict.popitem(last=False) takes the oldest at once."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        # In the order written: the oldest first.
        self._traces: OrderedDict[int, bytes] = OrderedDict()
        self._spans = 0

    def __contains__(self, trace_id: object) -> bool:
        return trace_id in self._traces

    def __len__(self) -> int:
        return self._spans

    def span_ids(self, trace_id: int) -> frozenset[bytes]:
        ids = self._traces.get(trace_id)
        if ids is None:
            return frozenset()
        return frozenset(ids[i : i + 8] for i in range(0, len(ids), 8))

    def add(self, trace_id: int, span_ids: bytes) -> None:
        """Remember `span_ids` (8-byte ids, joined) as written for `trace_id`."""
        known = self._traces.pop(trace_id, b"")  # re-inserted as the newest
        self._traces[trace_id] = known + span_ids
        self._spans += len(span_ids) // 8
        while self._spans > self._capacity and len(self._traces) > 1:
            self._spans -= len(self._traces.popitem(last=False)[1]) // 8


def _read_back(path: Path, span_budget: int) -> list[tuple[int, bytes]]:
    """(trace id, span ids) of the last lines of the file, oldest first, until `span_budget`
    spans: only the end of the file is read, however long it grew."""
    found: list[tuple[int, bytes]] = []
    spans = 0
    for line in _lines_from_the_end(path):
        try:
            traces = _span_ids_of_line(line)
        except (ValueError, TypeError, AttributeError, KeyError):
            # A line cut short by a crash mid-write: its traces are still in the spool (not
            # acknowledged) and will be written again.
            _logger.warning("%s: a line that is not OTLP JSON was ignored", path)
            continue
        for trace_id, span_ids in reversed(traces.items()):
            found.append((trace_id, b"".join(span_ids)))
            spans += len(span_ids)
        if spans >= span_budget:
            break
    found.reverse()
    return found


def _read_back_proto(path: Path, span_budget: int) -> list[tuple[int, bytes]]:
    """`_read_back` for a `format: proto` file: the messages are found by their sizes (a few
    bytes read each), and only the last ones are decoded. A message cut short by a crash is cut
    off the file (its traces are still in the spool, not acknowledged, and are written again);
    a file that does not hold such messages is refused (RetryableError) rather than appended to.
    """
    try:
        with path.open("rb") as file:
            if file.read(1) == b"{":
                raise RetryableError(
                    f"{path} holds OTLP JSON lines, not format proto: choose another path"
                )
            positions, complete = _proto_messages(file)
            size = file.seek(0, os.SEEK_END)
            found: list[tuple[int, bytes]] = []
            spans = 0
            for start, length in reversed(positions):
                file.seek(start)
                message = ExportTraceServiceRequest.FromString(file.read(length))
                by_trace: dict[int, list[bytes]] = {}
                for resource_spans in message.resource_spans:
                    for scope_spans in resource_spans.scope_spans:
                        for span in scope_spans.spans:
                            trace_id = int.from_bytes(span.trace_id, "big")
                            by_trace.setdefault(trace_id, []).append(span.span_id)
                for trace_id, span_ids in reversed(by_trace.items()):
                    found.append((trace_id, b"".join(span_ids)))
                    spans += len(span_ids)
                if spans >= span_budget:
                    break
    except FileNotFoundError:
        return []
    if complete < size:
        _logger.warning(
            "%s: the last %d bytes are a message cut short (a crash mid-write); removed",
            path,
            size - complete,
        )
        with path.open("r+b") as file:
            file.truncate(complete)
    found.reverse()
    return found


def _proto_messages(file: BinaryIO) -> tuple[list[tuple[int, int]], int]:
    """(offset, size) of each message of a `format: proto` file, found by their sizes alone,
    and where the last complete one ends (less than the file's size when the last message was
    cut short)."""
    size = file.seek(0, os.SEEK_END)
    positions: list[tuple[int, int]] = []
    offset = 0
    while offset + _SIZE.size <= size:
        file.seek(offset)
        (length,) = _SIZE.unpack(file.read(_SIZE.size))
        if offset + _SIZE.size + length > size:
            break
        positions.append((offset + _SIZE.size, length))
        offset += _SIZE.size + length
    return positions, offset


def _lines_from_the_end(path: Path) -> Iterator[bytes]:
    """The file's non-empty lines, last first, read backwards by blocks."""
    try:
        file = path.open("rb")
    except FileNotFoundError:
        return
    with file:
        position = file.seek(0, os.SEEK_END)
        rest = b""
        while position > 0:
            step = min(_TAIL_BLOCK, position)
            position -= step
            file.seek(position)
            block = file.read(step) + rest
            lines = block.split(b"\n")
            rest = lines[0]  # may continue in the block before
            for line in reversed(lines[1:]):
                if line.strip():
                    yield line
        if rest.strip():
            yield rest


def _span_ids_of_line(line: bytes) -> dict[int, list[bytes]]:
    """Span ids by trace id in one OTLP JSON line (ValueError when it is not one)."""
    document = json.loads(line)
    traces: dict[int, list[bytes]] = {}
    for resource_spans in document.get("resourceSpans") or ():
        for scope_spans in resource_spans.get("scopeSpans") or ():
            for span in scope_spans.get("spans") or ():
                trace_id = int(span["traceId"], 16)
                span_id = bytes.fromhex(span["spanId"])
                if len(span_id) == 8:
                    traces.setdefault(trace_id, []).append(span_id)
    return traces


def _trace_id(key: str) -> int | None:
    try:
        return int(key.split("-", 1)[0], 16)
    except ValueError:
        return None
