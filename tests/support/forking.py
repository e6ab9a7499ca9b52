"""Running a test's code in a real forked child, which is always reaped."""

from __future__ import annotations

import os
import signal
import time
import traceback
from collections.abc import Callable

import pytest

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
