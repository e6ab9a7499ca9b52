"""Children of a test: a Python run that must succeed, and ending a child started in a process
group of its own (`start_new_session=True`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_python(
    *arguments: str,
    env: Mapping[str, str],
    timeout: float,
    cwd: Path = REPO_ROOT,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run this interpreter with `arguments` (from the repository root unless `cwd` is given) to
    the end; the test fails with the end of the child's stderr unless it exits 0."""
    child = subprocess.run(
        [sys.executable, *arguments],
        cwd=cwd,
        env=env,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    return child


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
