"""The built-in `file` sink: finished traces appended as OTLP JSON lines (Collector file format).

One line per finished trace, readable by `otel-bridge tree`, `otel_bridge.otlp.read_traces`
and anything that reads the OpenTelemetry Collector file exporter's output.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from otel_bridge.exporter import TraceExporter
from otel_bridge.otlp import (
    DEFAULT_FILE_NAME,
    OTLPDecodeError,
    trace_to_json_line,
    traces_from_json_lines,
)
from otel_bridge.settings import FILE_PATH
from otel_bridge.sink import DeliveryReport, RetryableError, span_key
from otel_bridge.spool_files import open_private_append
from otel_bridge.traces import FinishedTrace, SpanRecord

__all__ = ["ENV_FILE_PATH", "FileSpanExporter"]

(ENV_FILE_PATH,) = FILE_PATH.variables

_logger = logging.getLogger(__name__)


class FileSpanExporter(TraceExporter):
    """Appends each finished trace as one OTLP JSON line to `path`.

    `path`: argument > `OTEL_BRIDGE_FILE_PATH` > `otel-bridge-traces.jsonl` in the working
    directory. Other keyword arguments go to `TraceExporter` (spool, grace period, ...).
    """

    sink_name: ClassVar[str] = "file"

    def __init__(self, path: str | os.PathLike[str] | None = None, **options: Any) -> None:
        resolved = FILE_PATH.resolve(None if path is None else os.fspath(path))
        self.path = Path(resolved or DEFAULT_FILE_NAME).absolute()
        self._write_lock = threading.Lock()
        self._written: set[str] | None = None  # span_key of every span in the file
        super().__init__(**options)

    def destination_identity(self) -> dict[str, str]:
        """The file traces are appended to."""
        return {"path": str(self.path)}

    def deliver(self, traces: Sequence[FinishedTrace]) -> DeliveryReport:
        with self._write_lock:
            written = self._written_spans()
            # A retried OTLP request can bring spans back after their trace was delivered; write
            # only spans the file lacks, so duplicates are dropped and late spans still land.
            fresh = [
                FinishedTrace(trace.trace_id, spans, trace.partial)
                for trace in traces
                if (spans := tuple(s for s in trace.spans if _key(s) not in written))
            ]
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
            written.update(_key(span) for trace in fresh for span in trace.spans)
        return DeliveryReport.all_delivered(traces)

    def already_delivered(self, keys: Sequence[str]) -> set[str]:
        with self._write_lock:
            traces = {key.split("-", 1)[0] for key in self._written_spans()}
        return {key for key in keys if key in traces}

    def _written_spans(self) -> set[str]:
        if self._written is None:
            # Read once: after a restart, spans written before the crash are not written twice.
            self._written = set()
            if self.path.exists():
                with self.path.open(encoding="utf-8", errors="replace") as lines:
                    for number, line in enumerate(lines, start=1):
                        try:
                            traces = traces_from_json_lines([line])
                        except OTLPDecodeError:
                            # A line cut short by a crash mid-write: its traces are still in
                            # the spool (not acknowledged) and will be written again.
                            _logger.warning("%s:%d is not OTLP JSON; ignored", self.path, number)
                            continue
                        for trace in traces:
                            self._written.update(_key(span) for span in trace.spans)
        return self._written


def _key(span: SpanRecord) -> str:
    return span_key(span.trace_id, span.span_id)
