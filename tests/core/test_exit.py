"""Delivery at a normal exit (`otel_bridge._exit`): callbacks run while thread pools still take
work, in real child interpreters. This is the test that fails loudly if CPython's private
`threading._register_atexit`, which it relies on, changes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

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
