"""Fresh environments made by the commands the examples and the README give.

Each example starts with `# Install: pip install ...`: the environment it runs in is made by
exactly that command (run by uv, from this checkout, with the repository's pinned versions as
constraints so a test run does not depend on the day's releases), in a new virtual environment
with nothing else. Environments are shared by the examples that name the same command, for
one test session.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_CONSTRAINTS = ROOT / "requirements" / "constraints.txt"
_UV = Path(sys.executable).with_name("uv")
_INSTALL_S = 600

_made: dict[str, Path] = {}
_lock = threading.Lock()
_home: Path | None = None


def install_command(example: Path) -> str:
    """The `pip install ...` command an example's first lines give."""
    match = re.search(r"^# Install: (pip install .+)$", example.read_text(encoding="utf-8"), re.M)
    if match is None:
        raise AssertionError(f"{example} does not start with its `# Install: pip install` line")
    return match.group(1)


def python_for(command: str) -> Path:
    """The Python of a fresh environment made by `command` (`pip install ...`), from ROOT."""
    global _home
    with _lock:
        if command not in _made:
            if _home is None:
                _home = Path(tempfile.mkdtemp(prefix="otel-bridge-example-envs-"))
            _made[command] = _create(command, _home / f"env-{len(_made)}")
        return _made[command]


def _create(command: str, venv: Path) -> Path:
    words = shlex.split(command)
    if words[:2] != ["pip", "install"]:
        raise AssertionError(f"not a pip install command: {command!r}")
    subprocess.run(
        [str(_UV), "venv", "--quiet", "-p", sys.executable, str(venv)], check=True, timeout=120
    )
    python = venv / "bin" / "python"
    result = subprocess.run(
        [
            str(_UV),
            "pip",
            "install",
            "--quiet",
            "-p",
            str(python),
            "-c",
            str(_CONSTRAINTS),
            *words[2:],
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=_INSTALL_S,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"`{command}` failed in a fresh environment:\n{result.stderr}")
    return python


def remove_all() -> None:
    """Delete every environment made so far (the next `python_for` makes them again)."""
    global _home
    with _lock:
        if _home is not None:
            shutil.rmtree(_home, ignore_errors=True)
        _home = None
        _made.clear()
