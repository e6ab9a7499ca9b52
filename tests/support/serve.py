"""`otel-bridge serve` as a child of a test: a config on loopback written for it, and the ports
it announces on stdout once it listens."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

SERVE = [str(Path(sys.executable).parent / "otel-bridge"), "serve"]
_LISTENING = re.compile(r"OTLP/(HTTP|gRPC) listening on (?:https?://)?[\d.]+:(\d+)")


def loopback_config(directory: Path, rest: str) -> Path:
    """`directory`/bridge.yaml: OTLP/HTTP alone on a free loopback port, the spool in
    `directory`/spool, then `rest` (top-level YAML: the sinks, telemetry)."""
    config = directory / "bridge.yaml"
    config.write_text(
        f"""receiver:
  http: {{endpoint: "127.0.0.1:0"}}
  grpc: false
spool_dir: {directory / "spool"}
{rest}""",
        encoding="utf-8",
    )
    return config


def start_serve(
    config: Path,
    *,
    cwd: Path,
    stderr: int | None = subprocess.PIPE,
    transports: Sequence[str] = ("HTTP",),
) -> tuple[subprocess.Popen[str], dict[str, int]]:
    """Start `otel-bridge serve --config CONFIG` and return it once it announced a port for each
    of `transports` ("HTTP", "gRPC"). Its stdout holds nothing else before the announcements,
    unless `stderr` is `subprocess.STDOUT` (then its log lines may come first)."""
    process = subprocess.Popen(
        [*SERVE, "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        cwd=cwd,
    )
    try:
        return process, _announced_ports(
            process, transports, logs_on_stdout=stderr == subprocess.STDOUT
        )
    except BaseException:
        process.kill()
        process.wait()
        raise


def _announced_ports(
    process: subprocess.Popen[str], transports: Sequence[str], *, logs_on_stdout: bool
) -> dict[str, int]:
    assert process.stdout is not None
    ports: dict[str, int] = {}
    while len(ports) < len(transports):
        line = process.stdout.readline()
        if not line:
            raise AssertionError(f"otel-bridge serve exited with {process.wait()}")
        match = _LISTENING.search(line)
        if match:
            ports[match.group(1)] = int(match.group(2))
        else:
            assert logs_on_stdout, f"otel-bridge serve said {line!r} first"
    return ports
