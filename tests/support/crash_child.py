"""Child process for the SIGKILL crash tests: export traces to an HttpTestSink until killed.

python -m tests.support.crash_child URL SPOOL_DIR COUNT   # COUNT traces, then one line
                                                          # "keys k1,k2,...", then idle
python -m tests.support.crash_child URL SPOOL_DIR 0       # forever, one "key K" line per
                                                          # trace once export() returned
"""

from __future__ import annotations

import itertools
import sys
import threading

from otel_bridge.langchain_views import FinishedTrace
from otel_bridge.sink import trace_key
from tests.contract import make_spans
from tests.support.fault_service import HttpTestSink


def main(url: str, spool_dir: str, count: int) -> None:
    sink = HttpTestSink(url, spool_dir=spool_dir, grace_period=0.0, max_batch=5)
    keys = []
    for _ in range(count) if count else itertools.count():
        spans = make_spans()
        sink.export(spans)
        key = trace_key(FinishedTrace.from_spans(spans))
        if count:
            keys.append(key)
        else:
            print(f"key {key}", flush=True)
    print("keys " + ",".join(keys), flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
