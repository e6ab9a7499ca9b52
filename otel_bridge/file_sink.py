"""The built-in `file` sink: finished traces appended as OTLP JSON lines (Collector file format).

One line per finished trace, readable by `otel-bridge tree`, `otel_bridge.otlp.read_traces`
and anything that reads the OpenTelemetry Collector file exporter's output.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

from otel_bridge.exporter import TraceExporter
from otel_bridge.langchain_views import FinishedTrace
from otel_bridge.otlp import DEFAULT_FILE_NAME, trace_to_json_line
from otel_bridge.settings import FILE_PATH
from otel_bridge.sink import DeliveryReport, RetryableError
from otel_bridge.spool_files import open_private_append

__all__ = ["ENV_FILE_PATH", "FileSpanExporter"]

(ENV_FILE_PATH,) = FILE_PATH.variables

_logger = logging.getLogger(__name__)

# Bytes read at a time when the end of the file is read back at start.
_TAIL_BLOCK = 1 << 20


class FileSpanExporter(TraceExporter):
    """Appends each finished trace as one OTLP JSON line to `path`.

    `path`: argument > `OTEL_BRIDGE_FILE_PATH` > `otel-bridge-traces.jsonl` in the working
    directory. Other keyword arguments go to `TraceExporter` (spool, grace period, ...).

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
    # About 8 bytes a span and 100 a trace (measured: 50 bytes a span for 2-span traces, so
    # 25 MB at most); at the sink's few thousand spans a second, minutes of traffic, well past
    # the spool's resend window.
    remembered_spans: ClassVar[int] = 500_000

    def __init__(self, path: str | os.PathLike[str] | None = None, **options: Any) -> None:
        resolved = FILE_PATH.resolve(None if path is None else os.fspath(path))
        self.path = Path(resolved or DEFAULT_FILE_NAME).absolute()
        self._write_lock = threading.Lock()
        self._written: _RecentSpans | None = None
        super().__init__(**options)

    def destination_identity(self) -> dict[str, str]:
        """The file traces are appended to."""
        return {"path": str(self.path)}

    def deliver(self, traces: Sequence[FinishedTrace]) -> DeliveryReport:
        with self._write_lock:
            written = self._written_spans()
            # A retried OTLP request can bring spans back after their trace was delivered; write
            # only spans the file lacks, so duplicates are dropped and late spans still land.
            fresh: list[FinishedTrace] = []
            for trace in traces:
                known = written.span_ids(trace.trace_id)
                if not known:
                    fresh.append(trace)
                elif spans := tuple(s for s in trace.spans if s.span_id not in known):
                    fresh.append(FinishedTrace(trace.trace_id, spans, trace.partial))
            lines = "".join(trace_to_json_line(trace) + "\n" for trace in fresh)
            try:
                # Spans hold prompts and answers: the file is 0600 in a 0700 directory we create.
                with open_private_append(self.path) as file:
                    if file.tell() > 0:
                        file.seek(-1, os.SEEK_END)
                        if file.read(1) != b"\n":  # finish a line cut short by a crash
                            file.write(b"\n")
                    file.write(lines.encode("utf-8"))
                    file.flush()
                    # Acknowledged means on disk: the spool forgets these traces after we return.
                    os.fsync(file.fileno())
            except OSError as exc:
                raise RetryableError(f"cannot append to {self.path}: {exc.strerror}") from exc
            for trace in fresh:
                written.add(trace.trace_id, [span.span_id for span in trace.spans])
        return DeliveryReport.all_delivered(traces)

    def already_delivered(self, keys: Sequence[str]) -> set[str]:
        with self._write_lock:
            written = self._written_spans()
            return {key for key in keys if _trace_id(key) in written}

    def _written_spans(self) -> _RecentSpans:
        if self._written is None:
            # After a restart, spans written before the crash are not written twice.
            self._written = _RecentSpans(self.remembered_spans)
            for trace_id, span_ids in _read_back(self.path, self.remembered_spans):
                self._written.add(trace_id, span_ids)
        return self._written


class _RecentSpans:
    """Span ids of the traces written last, by trace; past `capacity` spans the trace written
    (or added to) longest ago is forgotten first. A trace's ids are one bytes object, 8 bytes
    an id."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._traces: dict[int, bytes] = {}  # in the order written: the oldest first
        self._spans = 0

    def __contains__(self, trace_id: object) -> bool:
        return trace_id in self._traces

    def __len__(self) -> int:
        return self._spans

    def span_ids(self, trace_id: int) -> frozenset[int]:
        ids = self._traces.get(trace_id)
        if ids is None:
            return frozenset()
        return frozenset(struct.unpack(f">{len(ids) // 8}Q", ids))

    def add(self, trace_id: int, span_ids: Sequence[int]) -> None:
        added = struct.pack(f">{len(span_ids)}Q", *span_ids)
        known = self._traces.pop(trace_id, b"")  # re-inserted as the newest
        self._traces[trace_id] = known + added
        self._spans += len(span_ids)
        while self._spans > self._capacity and len(self._traces) > 1:
            oldest = next(iter(self._traces))
            self._spans -= len(self._traces.pop(oldest)) // 8


def _read_back(path: Path, span_budget: int) -> list[tuple[int, list[int]]]:
    """(trace id, span ids) of the last lines of the file, oldest first, until `span_budget`
    spans: only the end of the file is read, however long it grew."""
    found: list[tuple[int, list[int]]] = []
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
            found.append((trace_id, span_ids))
            spans += len(span_ids)
        if spans >= span_budget:
            break
    found.reverse()
    return found


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


def _span_ids_of_line(line: bytes) -> dict[int, list[int]]:
    """Span ids by trace id in one OTLP JSON line (ValueError when it is not one)."""
    document = json.loads(line)
    traces: dict[int, list[int]] = {}
    for resource_spans in document.get("resourceSpans") or ():
        for scope_spans in resource_spans.get("scopeSpans") or ():
            for span in scope_spans.get("spans") or ():
                trace_id = int(span["traceId"], 16)
                traces.setdefault(trace_id, []).append(int(span["spanId"], 16))
    return traces


def _trace_id(key: str) -> int | None:
    try:
        return int(key.split("-", 1)[0], 16)
    except ValueError:
        return None
