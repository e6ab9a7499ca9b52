"""`make ui`: the demo's traces in a trace UI you can click through.

Starts Arize Phoenix (from its own environment, on loopback), runs `otel-bridge demo` with OTLP
sent to it and the OpenInference vocabulary on (OTEL_BRIDGE_SEMCONV=gen_ai,openinference, so
Phoenix shows every span's kind and its Input/Output panes), waits until Phoenix holds every span
the demo wrote, prints where to look, and keeps Phoenix up until Ctrl-C (or SIGTERM), then stops
it. Standard library only: it runs with the demo environment's Python.

    python scripts/trace_ui.py --phoenix .venv-ui/bin/phoenix --otel-bridge .venv-demo/bin/otel-bridge
        [--port 6006] [--data-dir .services/phoenix] [--project otel-bridge-demo]
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

_START_SECONDS = 180.0  # Phoenix migrates its database on a first start: ~45 s on 2 busy cores
_INGEST_SECONDS = 60.0
_STOP_SECONDS = 20.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--phoenix", required=True, help="the `phoenix` command of its environment")
    parser.add_argument("--otel-bridge", required=True, help="the `otel-bridge` command to run")
    parser.add_argument(
        "--port", type=int, default=6006, help="Phoenix's web UI and OTLP/HTTP port"
    )
    parser.add_argument("--data-dir", default=".services/phoenix", help="Phoenix's working dir")
    parser.add_argument("--project", default="otel-bridge-demo", help="Phoenix project name")
    args = parser.parse_args(argv)
    # `kill -USR1` prints where every thread is (how the trace UI test reports a hang).
    faulthandler.register(signal.SIGUSR1, all_threads=True)

    if _port_taken(args.port):
        print(
            f"ui: port {args.port} is in use (another Phoenix?); choose another with"
            f" `make ui UI_PORT=<port>`",
            file=sys.stderr,
        )
        return 1
    data_dir = Path(args.data_dir).absolute()
    data_dir.mkdir(parents=True, exist_ok=True)
    base = f"http://127.0.0.1:{args.port}"
    log_path = data_dir / "phoenix.log"
    stopping = _stop_on_sigterm()
    with log_path.open("ab") as log:
        phoenix = subprocess.Popen(
            [args.phoenix, "serve"],
            env=_phoenix_environment(args.port, data_dir),
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own session: Ctrl-C reaches this script, which stops Phoenix in order.
            start_new_session=True,
        )
    try:
        print(f"ui: starting Phoenix on {base} (log: {log_path})", flush=True)
        if not _wait_until_up(base, phoenix):
            print(f"ui: Phoenix did not start; the last lines of {log_path}:", file=sys.stderr)
            print(_tail(log_path), file=sys.stderr)
            return 1
        trace_ids = _run_demo(args.otel_bridge, base, args.project, data_dir / "demo-traces.jsonl")
        if trace_ids is None:
            return 1
        project_id = _wait_for_traces(base, args.project, trace_ids)
        if project_id is None:
            print(
                f"ui: Phoenix does not hold the demo's {len(trace_ids)} traces after"
                f" {_INGEST_SECONDS:.0f} s; see {log_path}",
                file=sys.stderr,
            )
            return 1
        print(f"ui: Phoenix holds the demo's {len(trace_ids)} traces", flush=True)
        print(f"ui: open {base}/projects/{project_id} and click a trace", flush=True)
        # From here Ctrl-C only sets the flag, as SIGTERM does: a KeyboardInterrupt raised
        # inside `Popen.poll()` can leave its lock held, and every later wait then hangs.
        signal.signal(signal.SIGINT, lambda *_: stopping.append(True))
        print("ui: press Ctrl-C to stop Phoenix", flush=True)
        while phoenix.poll() is None and not stopping:
            time.sleep(0.5)
        if phoenix.poll() is not None:
            print(f"ui: Phoenix exited on its own (code {phoenix.returncode}); see {log_path}")
            return 1
    except KeyboardInterrupt:
        pass
    finally:
        _stop(phoenix)
    print("ui: Phoenix stopped", flush=True)
    return 0


def _phoenix_environment(port: int, data_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PHOENIX_HOST="127.0.0.1",
        PHOENIX_PORT=str(port),
        # Its OTLP/gRPC receiver on a free port, not 4317, which a Collector may hold.
        PHOENIX_GRPC_PORT=str(_free_port()),
        PHOENIX_WORKING_DIR=str(data_dir),
        PHOENIX_TELEMETRY_ENABLED="false",
    )
    return env


def _run_demo(otel_bridge: str, base: str, project: str, output: Path) -> set[str] | None:
    """The demo with OTLP to Phoenix and its OTLP JSON file at `output` (written afresh); the
    ids of the traces it wrote, or None if it failed."""
    output.unlink(missing_ok=True)
    env = dict(os.environ)
    env.update(
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"{base}/v1/traces",
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="http/protobuf",
        OTEL_BRIDGE_SEMCONV="gen_ai,openinference",
        # Phoenix files spans under the project this resource attribute names.
        OTEL_RESOURCE_ATTRIBUTES=_with_attribute(
            env.get("OTEL_RESOURCE_ATTRIBUTES", ""), "openinference.project.name", project
        ),
    )
    command = [otel_bridge, "demo", "--no-sinks", "--output", str(output)]
    command += ["--spool-dir", str(output.with_name("spool"))]
    result = subprocess.run(command, env=env, check=False)
    if result.returncode != 0:
        print(f"ui: the demo failed (exit {result.returncode})", file=sys.stderr)
        return None
    return _trace_ids(output)


def _with_attribute(attributes: str, key: str, value: str) -> str:
    kept = [item for item in attributes.split(",") if item and not item.startswith(f"{key}=")]
    return ",".join([*kept, f"{key}={value}"])


def _trace_ids(path: Path) -> set[str]:
    """Every trace id in an OTLP JSON lines file, in Phoenix's spelling (hex)."""
    found: set[str] = set()
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            for resource_spans in json.loads(line)["resourceSpans"]:
                for scope_spans in resource_spans["scopeSpans"]:
                    found.update(span["traceId"] for span in scope_spans["spans"])
    return found


def _wait_until_up(base: str, phoenix: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + _START_SECONDS
    while time.monotonic() < deadline and phoenix.poll() is None:
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=2) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(1.0)
    return False


def _wait_for_traces(base: str, project: str, trace_ids: set[str]) -> str | None:
    """The project's id once Phoenix holds a span of each of `trace_ids` in it (it ingests in
    the background; spans of earlier runs may be there too)."""
    deadline = time.monotonic() + _INGEST_SECONDS
    name = urllib.parse.quote(project)
    while time.monotonic() < deadline:
        try:
            seen: set[str] = set()
            cursor = ""
            while True:
                page = _get(f"{base}/v1/projects/{name}/spans?limit=1000{cursor}")
                seen.update(span["context"]["trace_id"] for span in page["data"])
                if not page.get("next_cursor"):
                    break
                cursor = "&cursor=" + urllib.parse.quote(page["next_cursor"])
            if trace_ids <= seen:
                projects = _get(f"{base}/v1/projects")["data"]
                return str(next(p["id"] for p in projects if p["name"] == project))
        except (urllib.error.URLError, OSError, KeyError, StopIteration, ValueError):
            pass
        time.sleep(1.0)
    return None


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def _stop(phoenix: subprocess.Popen[bytes]) -> None:
    """SIGTERM to Phoenix's process group, SIGKILL if it is still there `_STOP_SECONDS` later.
    Reaped with `os.waitpid`, not `Popen.wait`: a Ctrl-C that landed inside a `Popen.poll()`
    during the start can leave Popen's lock held, and `Popen.wait()` would then block forever."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if _ended(phoenix):
            return
        try:
            os.killpg(phoenix.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + _STOP_SECONDS
        while time.monotonic() < deadline and not _ended(phoenix):
            time.sleep(0.1)


def _ended(process: subprocess.Popen[bytes]) -> bool:
    if process.returncode is not None:
        return True
    try:
        pid, _ = os.waitpid(process.pid, os.WNOHANG)
    except ChildProcessError:  # reaped already
        return True
    return pid != 0


def _stop_on_sigterm() -> list[bool]:
    """A list that becomes non-empty on SIGTERM (as Ctrl-C ends the wait with KeyboardInterrupt)."""
    stopping: list[bool] = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    return stopping


def _port_taken(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


if __name__ == "__main__":
    raise SystemExit(main())
