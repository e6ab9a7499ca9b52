# Install: pip install -e '.[examples]'
# Run:     make collector && python examples/collector/run.py
"""App -> OpenTelemetry Collector -> `otel-bridge serve` -> sinks, all on this machine.

Run it with `make collector-demo` (it builds the Collector first), or
`python examples/collector/run.py` once `make collector` has built it.

1. `otel-bridge serve --config collector-config/bridge.yaml`: the OTLP receiver feeding the
   sinks of that file (the file sink; add labelstudio, uptrain, ... there).
2. A stand-in for your tracing backend: a Collector writing what it receives to a file
   (examples/collector/backend.yaml).
3. The agent: our Collector build (`make collector`) running collector-config/agent.yaml, which
   sends every trace to the backend and to the bridge, each from its own queue on disk.
4. The app: an `OTelCallbackHandler` exporting OTLP to the agent through the standard
   OTEL_EXPORTER_OTLP_ENDPOINT variable, as any OpenTelemetry app would.

Free loopback ports, a fresh token and a temporary directory; prints what each side received.
"""

import importlib.util
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from langchain_core.prompts import ChatPromptTemplate
from opentelemetry import trace
from rich import print as rich_print

from otel_bridge import OTelCallbackHandler
from otel_bridge.otlp import read_traces
from otel_bridge.rendering import render_traces
from otel_bridge.testing import FakeChatModel

# `otel-bridge serve` runs from this environment: its extra must be there.
for _module in ("yaml", "aiohttp", "grpc"):
    if importlib.util.find_spec(_module) is None:
        sys.exit(f"{_module} is not installed: pip install -e '.[examples]'")

ROOT = Path(__file__).resolve().parents[2]
OTELCOL = Path(os.environ.get("OTELCOL_BINARY") or ROOT / ".cache/collector/dist/otelcol-bridge")
# Two Collectors on one host: neither needs its internal metrics server (both would want :8888).
NO_METRICS = ["--config", "yaml:service::telemetry::metrics::level: none"]
DEADLINE_S = 60.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(condition, what: str):
    deadline = time.monotonic() + DEADLINE_S
    while not (result := condition()):
        if time.monotonic() > deadline:
            sys.exit(f"gave up after {DEADLINE_S:.0f} s waiting for {what}; logs in {workdir}")
        time.sleep(0.1)
    return result


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except OSError:
        return False


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


if not OTELCOL.is_file():
    sys.exit(f"{OTELCOL} is missing: build it with `make collector` (or set OTELCOL_BINARY)")
workdir = Path(tempfile.mkdtemp(prefix="otel-bridge-collector-"))
bridge_http, agent_http, agent_health, backend_health = (free_port() for _ in range(4))
env = {
    **os.environ,
    "OTEL_BRIDGE_TOKEN": secrets.token_hex(16),
    # The bridge (collector-config/bridge.yaml):
    "OTEL_BRIDGE_HTTP_ENDPOINT": f"127.0.0.1:{bridge_http}",
    "OTEL_BRIDGE_GRPC_ENDPOINT": "127.0.0.1:0",
    "OTEL_BRIDGE_SPOOL_DIR": str(workdir / "spool"),
    "OTEL_BRIDGE_FILE_PATH": str(workdir / "bridge-traces.jsonl"),
    # The agent (collector-config/agent.yaml):
    "OTEL_BRIDGE_ENDPOINT": f"http://127.0.0.1:{bridge_http}",
    "BACKEND_OTLP_ENDPOINT": f"127.0.0.1:{free_port()}",
    "BACKEND_OTLP_INSECURE": "true",
    "OTELCOL_STORAGE_DIR": str(workdir / "agent-queues"),
}
processes = []


def start(name: str, argv: list[str], **variables: str) -> None:
    log = (workdir / f"{name}.log").open("wb")
    processes.append(
        subprocess.Popen(argv, env={**env, **variables}, stdout=log, stderr=subprocess.STDOUT)
    )


try:
    serve = str(Path(sys.executable).parent / "otel-bridge")
    start("bridge", [serve, "serve", "--config", str(ROOT / "collector-config/bridge.yaml")])
    start(
        "backend",
        [str(OTELCOL), "--config", str(ROOT / "examples/collector/backend.yaml"), *NO_METRICS],
        OTELCOL_OTLP_GRPC_ENDPOINT=env["BACKEND_OTLP_ENDPOINT"],
        OTELCOL_HEALTH_CHECK_ENDPOINT=f"127.0.0.1:{backend_health}",
        BACKEND_FILE_PATH=str(workdir / "backend-traces.jsonl"),
    )
    start(
        "agent",
        [str(OTELCOL), "--config", str(ROOT / "collector-config/agent.yaml"), *NO_METRICS],
        OTELCOL_OTLP_GRPC_ENDPOINT=f"127.0.0.1:{free_port()}",
        OTELCOL_OTLP_HTTP_ENDPOINT=f"127.0.0.1:{agent_http}",
        OTELCOL_HEALTH_CHECK_ENDPOINT=f"127.0.0.1:{agent_health}",
    )
    wait_until(lambda: answers(f"http://127.0.0.1:{backend_health}/"), "the backend")
    wait_until(lambda: answers(f"http://127.0.0.1:{agent_health}/"), "the agent")
    wait_until(lambda: listening(bridge_http), "the bridge")
    version = subprocess.run([OTELCOL, "--version"], capture_output=True, text=True).stdout.strip()
    print(f"running: otel-bridge serve, {version} as agent and as backend; logs in {workdir}")

    # The application: standard OTel configuration, one handler.
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{agent_http}"
    os.environ["OTEL_SERVICE_NAME"] = "collector-example"
    handler = OTelCallbackHandler()
    chain = ChatPromptTemplate.from_template("Define {term} in five words.") | FakeChatModel(
        responses=["A tree of timed operations."]
    )
    print("app:", chain.invoke({"term": "trace"}, {"callbacks": [handler]}).content)
    trace.get_tracer_provider().force_flush()

    backend_file, bridge_file = workdir / "backend-traces.jsonl", workdir / "bridge-traces.jsonl"
    at_backend = wait_until(lambda: backend_file.exists() and read_traces(backend_file), "backend")
    spans = sum(len(t.spans) for t in at_backend)
    print(f"backend: {spans} spans of trace {at_backend[0].trace_id:032x}")
    received = wait_until(lambda: bridge_file.exists() and read_traces(bridge_file), "the bridge")
    print("bridge (file sink), through the agent Collector -> otel-bridge serve:")
    rich_print(render_traces(received))
finally:
    for process in reversed(processes):
        process.terminate()
        process.wait(timeout=30)
