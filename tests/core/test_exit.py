"""Delivery at a normal exit (`otel_bridge._exit`): callbacks run while thread pools still take
work, in real child interpreters. This is the test that fails loudly if CPython's private
`threading._register_atexit`, which it relies on, changes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

CHILD = textwrap.dedent(
    """
    from concurrent.futures import ThreadPoolExecutor
    from otel_bridge._exit import call_before_exit, cancel_before_exit

    class Sink:
        def deliver(self):
            # What uptrain does inside a delivery: work on a thread pool.
            with ThreadPoolExecutor(2) as pool:
                print("delivered", pool.submit(lambda: 6 * 7).result(), flush=True)

        def never(self):
            print("cancelled callback ran", flush=True)

    sink = Sink()
    call_before_exit(sink.deliver)
    cancel_before_exit(call_before_exit(sink.never))
    print("main done", flush=True)
    """
)


def test_the_private_hook_we_rely_on_is_there() -> None:
    assert callable(getattr(threading, "_register_atexit", None)), (
        "threading._register_atexit is gone: otel_bridge._exit falls back to atexit, where "
        "thread pools refuse work; find the new way to run before concurrent.futures shuts down"
    )


def test_a_callback_runs_after_main_while_thread_pools_still_work() -> None:
    child = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60, check=False
    )
    assert child.returncode == 0, child.stderr
    assert child.stdout.splitlines() == ["main done", "delivered 42"]
    assert child.stderr == ""


DROPPED_HANDLER_CHILD = textwrap.dedent(
    """
    import gc, sys
    from concurrent.futures import ThreadPoolExecutor
    from otel_bridge import DeliveryReport, SinkCallbackHandler, TraceExporter
    from otel_bridge.testing import FakeChatModel

    def say(line):
        # One write a line: print() writes its parts one by one, and the delivery thread's
        # line could land inside the main thread's.
        sys.stdout.write(line + "\\n")
        sys.stdout.flush()

    class PoolSink(TraceExporter):
        # Delivers on a thread pool, as uptrain does, and prints what it delivered.
        sink_name = "pool"

        def deliver(self, traces):
            with ThreadPoolExecutor(2) as pool:
                for t in traces:
                    for call in t.llm_calls():
                        answer = pool.submit(lambda g=call.generations: g[0]).result()
                        say(f"delivered {answer}")
            return DeliveryReport.all_delivered(traces)

    def handler():
        # A grace period longer than the script: nothing is delivered before it exits.
        return SinkCallbackHandler(PoolSink(spool_dir=sys.argv[1], grace_period=600.0, max_trace_age=600.0))

    # The seed pages' pattern: the same name bound to a new handler per example, so the
    # first handler is dropped (and collected) with its trace still undelivered.
    callback = handler()
    FakeChatModel(responses=["first"]).invoke("q", {"callbacks": [callback]})
    callback = handler()
    gc.collect()
    FakeChatModel(responses=["second"]).invoke("q", {"callbacks": [callback]})
    say("main done")
    """
)


def test_a_dropped_handlers_traces_are_delivered_while_thread_pools_still_work(
    tmp_path: Path,
) -> None:
    child = subprocess.run(
        [sys.executable, "-c", DROPPED_HANDLER_CHILD, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert child.returncode == 0, child.stderr
    lines = child.stdout.splitlines()
    assert sorted(lines) == ["delivered first", "delivered second", "main done"], child.stderr
    # The dropped handler's finalizer may deliver its trace at once (its stop runs on a thread
    # of its own) or at exit; the live handler's trace goes at exit, after the script's end.
    assert lines.index("delivered second") > lines.index("main done"), child.stdout
    assert "cannot schedule new futures" not in child.stderr
