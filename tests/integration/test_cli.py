"""`otel-bridge` behaves like the tools people know: `--version`, one exit-code rule for every
command (0 done, 1 failed, 2 usage or configuration), and a failure is one line on stderr with
no traceback. Run as a user runs it: the installed console script, in a subprocess."""

from __future__ import annotations

import gzip
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from otel_bridge.otlp import read_traces
from tests.integration.test_demo import clean_environment
from tests.support.collector import Processes, start_collector
from tests.support.waiting import wait_until

OTEL_BRIDGE = str(Path(sys.executable).parent / "otel-bridge")
_TIMEOUT_S = 120


def otel_bridge(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [OTEL_BRIDGE, *args],
        cwd=cwd,
        env=env or clean_environment(cwd),
        capture_output=True,
        text=True,
        timeout=_TIMEOUT_S,
        check=False,
    )


def test_version_names_the_package_and_the_installed_sinks(tmp_path: Path) -> None:
    result = otel_bridge("--version", cwd=tmp_path)
    assert result.returncode == 0
    line = result.stdout.strip()
    assert line.startswith(f"otel-bridge {version('otel-bridge')} (sinks: ")
    assert f"labelstudio {version('otel-bridge-labelstudio')}" in line
    assert "file" in line
    # The SDK's own exporters in the same entry-point group are not otel-bridge sinks.
    assert "console" not in line and "otlp" not in line


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]
    code: int
    message: str  # expected in the one stderr line
    setup: Callable[[Path], None] = lambda _: None


def _write(name: str, text: str) -> Callable[[Path], None]:
    def setup(directory: Path) -> None:
        (directory / name).write_text(text, encoding="utf-8")

    return setup


_GOOD_LINE = (
    '{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "0af7651916cd43dd8448eb211c80319c",'
    ' "spanId": "b7ad6b7169203331", "name": "root", "startTimeUnixNano": "1",'
    ' "endTimeUnixNano": "2"}]}]}]}\n'
)

CASES = {
    "tree, missing file": Case(("tree", "missing.jsonl"), 2, "missing.jsonl: no such file"),
    "tree, a directory": Case(("tree", "."), 2, ".: is a directory"),
    "tree, damaged line": Case(
        ("tree", "bad.jsonl"),
        1,
        "bad.jsonl: line 2: invalid JSON",
        _write("bad.jsonl", _GOOD_LINE + "{\n"),
    ),
    "tree, no such trace": Case(
        ("tree", "--trace-id", "ffff", "good.jsonl"), 1, "", _write("good.jsonl", _GOOD_LINE)
    ),
    "serve, missing config": Case(
        ("serve", "--config", "missing.yaml"), 2, "missing.yaml: cannot read config file"
    ),
    "serve, unknown key": Case(
        ("serve", "--check-config", "--config", "bridge.yaml"),
        2,
        "bridge.yaml: receiver.http.endpointt: unknown key",
        _write("bridge.yaml", "receiver:\n  http:\n    endpointt: 127.0.0.1:4318\n"),
    ),
    "serve, bad YAML": Case(
        ("serve", "--check-config", "--config", "bridge.yaml"),
        2,
        "bridge.yaml:",
        _write("bridge.yaml", "receiver: [\n"),
    ),
    "serve, unknown sink": Case(
        ("serve", "--check-config", "--config", "bridge.yaml"),
        2,
        "no exporter named 'nosuch' in entry point group opentelemetry_traces_exporter",
        _write("bridge.yaml", "sinks:\n  nosuch: {}\n"),
    ),
    "replay, unknown sink": Case(
        ("replay", "--sink", "nosuch"), 2, "no sink exporter named 'nosuch'"
    ),
    "replay, sink not configured": Case(
        ("replay", "--sink", "labelstudio", "--spool-dir", "spool"), 2, "LABEL_STUDIO_API_KEY"
    ),
    "usage, unknown option": Case(("tree", "--no-such-option", "x"), 2, "unrecognized arguments"),
    "usage, no command": Case((), 2, "the following arguments are required: COMMAND"),
    "usage, bad log level": Case(("serve", "--log-level", "loud"), 2, "invalid choice: 'LOUD'"),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_every_failure_is_one_line_with_the_rule_s_exit_code(tmp_path: Path, case: Case) -> None:
    case.setup(tmp_path)
    result = otel_bridge(*case.args, cwd=tmp_path)
    assert result.returncode == case.code, result.stderr
    assert "Traceback" not in result.stderr
    # argparse prints its usage (lines starting with "usage:" or indented) above the error.
    errors = [line for line in result.stderr.splitlines() if line.strip() and not line[0].isspace()]
    errors = [line for line in errors if not line.startswith("usage:")]
    if case.message:
        assert len(errors) == 1, result.stderr
        assert case.message in errors[0]


def test_success_exits_zero(tmp_path: Path) -> None:
    (tmp_path / "good.jsonl").write_text(_GOOD_LINE, encoding="utf-8")
    assert otel_bridge("tree", "good.jsonl", cwd=tmp_path).returncode == 0
    assert (
        otel_bridge("serve", "--check-config", "--log-level", "debug", cwd=tmp_path).returncode == 0
    )
    listed = otel_bridge("replay", "--sink", "file", "--spool-dir", "spool", "--list", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "0 dead letter(s)" in listed.stdout


def test_a_port_in_use_is_one_line_and_exit_code_1(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        (tmp_path / "bridge.yaml").write_text(
            f"receiver:\n  http:\n    endpoint: 127.0.0.1:{port}\n  grpc:\n    enabled: false\n"
            f"spool_dir: {tmp_path / 'spool'}\n",
            encoding="utf-8",
        )
        result = otel_bridge("serve", "--config", "bridge.yaml", cwd=tmp_path)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "otel-bridge serve:" in line]
    assert errors == [
        f"otel-bridge serve: cannot listen: cannot bind the OTLP/HTTP receiver to "
        f"127.0.0.1:{port}: Address already in use"
    ]
    assert "Traceback" not in result.stderr


def test_tree_reads_what_a_collector_file_exporter_wrote_as_protobuf(tmp_path: Path) -> None:
    """Our Collector build (`make collector`) writes `format: proto`; tree reads it as it is,
    and its gzip-compressed copy, with the same traces as the JSON file written beside it."""
    proto_file, json_file = tmp_path / "traces.binpb", tmp_path / "traces.jsonl"
    config = tmp_path / "collector.yaml"
    config.write_text(
        "receivers:\n  otlp:\n    protocols:\n      http:\n"
        "        endpoint: ${env:OTELCOL_OTLP_HTTP_ENDPOINT}\n"
        "extensions:\n  health_check:\n    endpoint: ${env:OTELCOL_HEALTH_CHECK_ENDPOINT}\n"
        "exporters:\n"
        f"  file/proto:\n    path: {proto_file}\n    format: proto\n    flush_interval: 100ms\n"
        f"  file/json:\n    path: {json_file}\n    flush_interval: 100ms\n"
        "service:\n  extensions: [health_check]\n  pipelines:\n    traces:\n"
        "      receivers: [otlp]\n      exporters: [file/proto, file/json]\n",
        encoding="utf-8",
    )
    processes = Processes()
    try:
        collector = start_collector(processes, [config], tmp_path, env={})
        provider = TracerProvider()
        endpoint = f"http://127.0.0.1:{collector.http_port}/v1/traces"
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        tracer = provider.get_tracer("test")
        for number in range(3):
            with (
                tracer.start_as_current_span(f"request-{number}"),
                tracer.start_as_current_span(f"step-{number}"),
            ):
                pass
        provider.shutdown()
        wait_until(lambda: _complete_traces(json_file) == 3, what="the Collector's files")
        collector.stop()
    finally:
        processes.close()
    (tmp_path / "traces.binpb.gz").write_bytes(gzip.compress(proto_file.read_bytes()))
    expected = otel_bridge("tree", str(json_file), cwd=tmp_path)
    assert expected.returncode == 0 and "step-2" in expected.stdout
    for name in ("traces.binpb", "traces.binpb.gz"):
        result = otel_bridge("tree", name, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert result.stdout == expected.stdout


def _complete_traces(path: Path) -> int:
    try:
        return len([t for t in read_traces(path) if len(t.spans) == 2])
    except (OSError, ValueError):  # not there yet, or a line half written
        return 0
