"""App -> OpenTelemetry Collector -> `otel-bridge serve` -> sinks, all on this machine.

1. `otel-bridge serve --config collector-config/bridge.yaml`: the OTLP receiver feeding the
   sinks of that file (the file sink; add labelstudio, uptrain, ... there).
2. rotel, a Collector from PyPI, set up like the `otlphttp/bridge` exporter of
   collector-config/agent.yaml: OTLP in, batched, OTLP/HTTP with gzip and retries out to the
   bridge (rotel takes flags, not the otelcol YAML).
3. The app: an `OTelCallbackHandler` exporting OTLP to the Collector through the standard
   OTEL_EXPORTER_OTLP_ENDPOINT variable, as any OpenTelemetry app would.

Free loopback ports and a temporary directory; prints the trace as the bridge wrote it.
"""

import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import rotel
from langchain_core.prompts import ChatPromptTemplate
from opentelemetry import trace
from rich import print as rich_print

from otel_bridge import OTelCallbackHandler
from otel_bridge.demo.rendering import render_traces
from otel_bridge.otlp import read_traces
from otel_bridge.testing import FakeChatModel

BRIDGE_CONFIG = Path(__file__).resolve().parents[2] / "collector-config" / "bridge.yaml"
DEADLINE_S = 60.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(condition, what: str):
    deadline = time.monotonic() + DEADLINE_S
    while not (result := condition()):
        if time.monotonic() > deadline:
            sys.exit(f"gave up after {DEADLINE_S:.0f} s waiting for {what}")
        time.sleep(0.1)
    return result


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


workdir = Path(tempfile.mkdtemp(prefix="otel-bridge-collector-"))
traces_file = workdir / "traces.jsonl"
bridge_env = {
    **os.environ,
    "OTEL_BRIDGE_HTTP_ENDPOINT": "127.0.0.1:0",
    "OTEL_BRIDGE_GRPC_ENDPOINT": "127.0.0.1:0",
    "OTEL_BRIDGE_SPOOL_DIR": str(workdir / "spool"),
    "OTEL_BRIDGE_FILE_PATH": str(traces_file),
}
serve = [str(Path(sys.executable).parent / "otel-bridge"), "serve", "--config", str(BRIDGE_CONFIG)]
bridge = subprocess.Popen(serve, env=bridge_env, stdout=subprocess.PIPE, text=True)
collector = None
try:
    http_line = wait_until(
        lambda: re.search(r"OTLP/HTTP listening on (\S+)", bridge.stdout.readline()), "the bridge"
    )
    bridge_http = http_line.group(1).removesuffix("/v1/traces")
    collector_http, collector_grpc = free_port(), free_port()
    collector = subprocess.Popen(
        [
            str(Path(rotel.__file__).parent / "rotel-agent"),
            "start",
            "--otlp-http-endpoint", f"127.0.0.1:{collector_http}",
            "--otlp-grpc-endpoint", f"127.0.0.1:{collector_grpc}",
            "--exporter", "otlp",
            "--otlp-exporter-endpoint", bridge_http,
            "--otlp-exporter-protocol", "http",
            "--otlp-exporter-compression", "gzip",
            "--batch-timeout", "200ms",
            "--pid-file", str(workdir / "rotel.pid"),
            "--log-file", str(workdir / "rotel.log"),
        ],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    wait_until(lambda: listening(collector_http), "the collector")

    # The application: standard OTel configuration, one handler.
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{collector_http}"
    os.environ["OTEL_SERVICE_NAME"] = "collector-example"
    handler = OTelCallbackHandler()
    chain = ChatPromptTemplate.from_template("Define {term} in five words.") | FakeChatModel(
        responses=["A tree of timed operations."]
    )
    print(chain.invoke({"term": "trace"}, {"callbacks": [handler]}).content)
    trace.get_tracer_provider().force_flush()

    received = wait_until(lambda: traces_file.exists() and read_traces(traces_file), "the trace")
    print("received through rotel -> otel-bridge serve:")
    rich_print(render_traces(received))
finally:
    for process in (collector, bridge):
        if process is not None:
            process.terminate()
            process.wait(timeout=30)
