"""Ending a child started in a process group of its own (`start_new_session=True`)."""

from __future__ import annotations

import os
import signal
import subprocess
from typing import Any


def end_process_group(
    process: subprocess.Popen[Any], sig: int = signal.SIGTERM, wait_s: float = 20.0
) -> None:
    """Send `sig` to the child's whole group and wait; SIGKILL the group if it lingers."""
    os.killpg(process.pid, sig)
    try:
        process.wait(wait_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(wait_s)
