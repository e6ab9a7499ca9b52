"""`otel-bridge serve` SIGKILLed at random moments under load and restarted loses and duplicates
no acknowledged span (bench/receiver_kill.py, run as a user runs it, with fewer kills)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "receiver_kill.py"


@pytest.mark.slow
def test_sigkill_under_load_loses_and_duplicates_nothing() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH), "--kills", "4", "--clients", "3", "--seed", "7"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "lost 0, duplicated 0" in result.stdout
    assert "4 SIGKILLs at random moments while serving" in result.stdout
