"""The built-in `file` sink: finished traces appended as OTLP JSON lines (Collector file format).

One line per finished trace, readable by `otel-bridge tree`, `otel_bridge.otlp.read_traces`
and anything that reads the OpenTelemetry Collector file exporter's output.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from otel_bridge.exporter import TraceExporter
from otel_bridge.otlp import DEFAULT_FILE_NAME, trace_to_json_line
from otel_bridge.sink import DeliveryReport, RetryableError, trace_key
from otel_bridge.traces import FinishedTrace

__all__ = ["ENV_FILE_PATH", "FileSpanExporter"]

ENV_FILE_PATH = "OTEL_BRIDGE_FILE_PATH"

_TRACE_ID = re.compile(rb'"traceId":"([0-9a-f]{32})"')


class FileSpanExporter(TraceExporter):
    """Appends each finished trace as one OTLP JSON line to `path`.

    `path`: argument > `OTEL_BRIDGE_FILE_PATH` > `otel-bridge-traces.jsonl` in the working
    directory. Other keyword arguments go to `TraceExporter` (spool, grace period, ...).
    """

    sink_name: ClassVar[str] = "file"

    def __init__(self, path: str | os.PathLike[str] | None = None, **options: Any) -> None:
        self.path = Path(path or os.environ.get(ENV_FILE_PATH) or DEFAULT_FILE_NAME).absolute()
        self._write_lock = threading.Lock()
        self._written: set[str] | None = None
        super().__init__(**options)

    def deliver(self, traces: Sequence[FinishedTrace]) -> DeliveryReport:
        lines = "".join(trace_to_json_line(trace) + "\n" for trace in traces)
        with self._write_lock:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a", encoding="utf-8") as file:
                    file.write(lines)
                    file.flush()
                    # Acknowledged means on disk: the spool forgets these traces after we return.
                    os.fsync(file.fileno())
            except OSError as exc:
                raise RetryableError(f"cannot append to {self.path}: {exc.strerror}") from exc
            if self._written is not None:
                self._written.update(trace_key(trace) for trace in traces)
        return DeliveryReport.all_delivered(traces)

    def already_delivered(self, keys: Sequence[str]) -> set[str]:
        with self._write_lock:
            if self._written is None:
                # Read once: a crash between our write and the spool's bookkeeping must not
                # write the trace a second time after a restart.
                self._written = self._trace_keys_in_file()
            return {key for key in keys if key in self._written}

    def _trace_keys_in_file(self) -> set[str]:
        try:
            content = self.path.read_bytes()
        except FileNotFoundError:
            return set()
        return {match.decode("ascii") for match in _TRACE_ID.findall(content)}
