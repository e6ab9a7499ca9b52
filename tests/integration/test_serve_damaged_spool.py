"""`otel-bridge serve` starts and serves on a damaged spool, whatever the damage (issue 19 §1)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from otel_bridge.otlp import read_traces
from tests.contract import make_spans
from tests.support.damage import DAMAGE_KINDS, damage, spool_holding
from tests.support.serve import loopback_config, start_serve
from tests.support.waiting import wait_until


@pytest.mark.parametrize("kind", DAMAGE_KINDS)
def test_serve_starts_on_a_damaged_spool_and_accepts_traces(tmp_path: Path, kind: str) -> None:
    spool, _ = spool_holding(tmp_path / "spool", 50)
    damage(spool, kind)
    out = tmp_path / "out.jsonl"
    config = loopback_config(tmp_path, f"sinks:\n  file: {{path: {out}, grace_period: 0}}\n")
    process, ports = start_serve(config, cwd=tmp_path)
    try:
        spans = make_spans()
        sender = OTLPSpanExporter(endpoint=f"http://127.0.0.1:{ports['HTTP']}/v1/traces")
        assert sender.export(spans) is SpanExportResult.SUCCESS
        sender.shutdown()
        wait_until(lambda: out.exists() and len(read_traces(out)) == 1, what="the trace written")
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    errors = [line for line in stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, stderr
    assert "Traceback" not in stderr
    if kind == "empty":
        assert "emptied to 0 bytes while it held 50 undelivered trace(s)" in errors[0]
    else:
        (moved,) = (p for p in spool.parent.iterdir() if p.name.endswith("Z"))
        assert f"otel-bridge spool salvage {moved}" in errors[0]
