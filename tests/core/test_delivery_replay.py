"""`otel-bridge replay`: dead-lettered traces go back to the sink, exactly once."""

from __future__ import annotations

from pathlib import Path

import pytest

from otel_bridge.cli import main
from tests.contract import make_spans
from tests.support.fault_service import Fault, FaultService, HttpTestSink
from tests.support.waiting import wait_until

SINK = "tests.support.fault_service:HttpTestSink"


def test_replay_lists_then_redelivers_dead_letters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    spool_dir = tmp_path / "spool"
    with FaultService() as service:
        monkeypatch.setenv("OTEL_BRIDGE_HTTPTEST_URL", service.url)
        service.fail_next(Fault(status=400))
        sink = HttpTestSink(spool_dir=spool_dir, grace_period=0.0)
        spans = make_spans()
        sink.export(spans)
        wait_until(lambda: sink.spool.counts().dead_letters == 1)
        sink.shutdown()
        key = format(spans[0].context.trace_id, "032x")

        assert main(["replay", "--sink", SINK, "--spool-dir", str(spool_dir), "--list"]) == 0
        listed = capsys.readouterr().out
        assert key in listed and "HTTP 400" in listed and "1 dead letter(s)" in listed
        assert service.keys() == set()

        assert main(["replay", "--sink", SINK, "--spool-dir", str(spool_dir)]) == 0
        summary = capsys.readouterr().out
        assert "re-queued 1 trace(s); 0 still queued, 0 dead-lettered again" in summary
        assert f"1 trace(s), {len(spans)} span(s) left the queue in" in summary
        assert "spans/s)" in summary
        assert service.keys() == {key}
        assert service.duplicates() == {}

        assert main(["replay", "--sink", SINK, "--spool-dir", str(spool_dir)]) == 0
        assert "0 dead letter(s)" in capsys.readouterr().out


def test_replay_refuses_a_spool_in_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OTEL_BRIDGE_HTTPTEST_URL", "http://127.0.0.1:9")
    running = HttpTestSink(spool_dir=tmp_path, grace_period=0.0)
    try:
        assert main(["replay", "--sink", SINK, "--spool-dir", str(tmp_path)]) == 1
        assert "in use by a running exporter" in capsys.readouterr().err
    finally:
        running.shutdown()


def test_replay_names_unknown_sinks(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", "--sink", "no-such-sink"]) == 2
    assert "no sink exporter named 'no-such-sink'" in capsys.readouterr().err
