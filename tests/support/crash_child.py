"""Child process for the SIGKILL crash test: export traces to an HttpTestSink and keep running
until killed. Usage: python -m tests.support.crash_child URL SPOOL_DIR COUNT

Prints one line, "keys k1,k2,...", once every trace has been exported (persisted)."""

from __future__ import annotations

import sys
import threading

from otel_bridge.sink import trace_key
from otel_bridge.traces import FinishedTrace
from tests.contract import make_spans
from tests.support.fault_service import HttpTestSink


def main(url: str, spool_dir: str, count: int) -> None:
    sink = HttpTestSink(url, spool_dir=spool_dir, grace_period=0.0, max_batch=5)
    keys = []
    for _ in range(count):
        spans = make_spans()
        sink.export(spans)
        keys.append(trace_key(FinishedTrace.from_spans(spans)))
    print("keys " + ",".join(keys), flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
