"""Child process for the restart tests: trace N RAG questions into an `UpTrainSpanExporter`
(configured from the environment: judge, key, dashboard, project), make one delivery attempt,
and die without a shutdown where MODE says:

- `partly`: after the attempt (the judge failing part of the requests leaves traces with some
  checks graded), print "attempted" and wait to be killed; the retry is 10 minutes away.
- `published`: SIGKILL itself the moment a delivery returns having published traces, before
  the spool lets go of them.

python -m exporters.uptrain.tests.crash_child SPOOL_DIR MODE N
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Sequence

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from otel_bridge_uptrain import UpTrainSpanExporter

from otel_bridge.delivery import RetryPolicy
from otel_bridge.handler import OTelCallbackHandler
from otel_bridge.langchain_views import FinishedTrace
from otel_bridge.sink import DeliveryReport
from tests.chains import QUESTION, rag_chain


class _CrashingExporter(UpTrainSpanExporter):
    mode = "partly"

    def deliver(self, traces: Sequence[FinishedTrace]) -> DeliveryReport:
        report = super().deliver(traces)
        if self.mode == "published" and report.delivered:
            print("published", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        print("attempted", flush=True)
        return report


def questions(count: int) -> list[str]:
    return [f"{QUESTION} (asked {n})" for n in range(count)]


def main(spool_dir: str, mode: str, count: str) -> None:
    _CrashingExporter.mode = mode
    exporter = _CrashingExporter(
        spool_dir=spool_dir,
        log_results=False,
        grace_period=60.0,  # nothing is delivered before the one attempt below
        retry=RetryPolicy(initial_backoff=600.0, max_backoff=600.0, jitter=0.0),
    )
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    handler = OTelCallbackHandler(tracer_provider=provider)
    for question in questions(int(count)):
        rag_chain().invoke(question, config={"callbacks": [handler]})
    # One attempt at everything (a second flush would retry at once, skipping the backoff).
    exporter.force_flush(100)
    time.sleep(600)


if __name__ == "__main__":
    main(*sys.argv[1:])
