"""Running a test's code in a real forked child, which is always reaped."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from otel_bridge.exporter import TraceExporter
from otel_bridge.langchain_views import FinishedTrace
from otel_bridge.sink import DeliveryReport

DEADLINE_S = 30.0


def run_in_child(child: Callable[[], int], deadline_s: float = DEADLINE_S) -> tuple[int, int]:
    """Fork, run `child` there and leave with its result as the exit code (99 if it raised,
    with the traceback printed); in the parent, wait for it, kill it at the deadline, and reap
    it in every case. Returns (pid, exit code)."""
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            code = child()
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    reaped = False
    try:
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                reaped = True
                return pid, os.waitstatus_to_exitcode(status)
            time.sleep(0.01)
        pytest.fail("the forked child did not finish in time (deadlocked?)")
    finally:
        if not reaped:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


@contextlib.contextmanager
def held_by_another_thread(*locks: Any, deadline_s: float = DEADLINE_S) -> Iterator[None]:
    """Hold `locks` on a thread of their own while the body runs, as threads of an app hold
    them at a fork in the middle of their work: the child gets them copied held, and no thread
    of the child will ever release them."""
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with contextlib.ExitStack() as stack:
            for lock in locks:
                stack.enter_context(lock)
            held.set()
            release.wait(deadline_s)

    holder = threading.Thread(target=hold, name="lock-holder", daemon=True)
    holder.start()
    try:
        assert held.wait(deadline_s), "the locks were not free to take"
        yield
    finally:
        release.set()
        holder.join(deadline_s)


class ProcessLogSink(TraceExporter):
    """Appends `<pid> <trace id>` per delivered trace to `log`, a file a parent and its forked
    children share (O_APPEND, one short write a line, so each lands whole): who delivered what."""

    sink_name = "processlog"

    def __init__(self, log: Path, **options: Any) -> None:
        self.log = log
        super().__init__(**options)

    def deliver(self, traces: Sequence[FinishedTrace]) -> DeliveryReport:
        fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            for trace in traces:
                os.write(fd, f"{os.getpid()} {trace.trace_id:032x}\n".encode())
        finally:
            os.close(fd)
        return DeliveryReport.all_delivered(traces)

    def deliveries(self) -> list[tuple[int, str]]:
        """(pid, trace id) per delivered trace, in the order written."""
        if not self.log.exists():
            return []
        lines = self.log.read_text().splitlines()
        return [(int(pid), trace) for pid, trace in (line.split() for line in lines)]
