"""A damaged, emptied or vanished spool file never stops an exporter; `otel-bridge spool check`
and `salvage` tell and recover what is readable; files holding spans are private (issue 19)."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export import SpanExportResult

from otel_bridge.delivery import FakeClock
from otel_bridge.file_sink import FileSpanExporter
from otel_bridge.otlp import read_traces
from tests.contract import make_spans
from tests.support.damage import (
    DAMAGE_KINDS,
    damage,
    damage_outbox_pages_in_middle,
    spool_holding,
)

OTEL_BRIDGE = str(Path(sys.executable).parent / "otel-bridge")


def _spool_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "otel_bridge.spool" and r.levelno >= logging.ERROR
    ]


def _delivered_ids(path: Path) -> set[str]:
    return {format(trace.trace_id, "032x") for trace in read_traces(path)}


@pytest.mark.parametrize("kind", DAMAGE_KINDS)
def test_a_damaged_spool_is_moved_aside_and_the_exporter_works(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    spool, _ = spool_holding(tmp_path / "spool", 50)
    damage(spool, kind)
    out = tmp_path / "out.jsonl"
    with caplog.at_level(logging.INFO):
        exporter = FileSpanExporter(out, spool_dir=tmp_path / "spool", grace_period=0.0)
    try:
        spans = make_spans()
        assert exporter.export(spans) is SpanExportResult.SUCCESS
        assert exporter.force_flush(20_000)
    finally:
        exporter.shutdown()
    assert _delivered_ids(out) == {format(spans[0].context.trace_id, "032x")}
    (error,) = _spool_errors(caplog)
    corrupt = sorted(p for p in spool.parent.iterdir() if p.name.endswith("Z"))
    if kind == "empty":
        assert corrupt == []
        assert "emptied to 0 bytes while it held 50 undelivered trace(s)" in error
        return
    (moved,) = corrupt
    assert moved.name.startswith(f"{spool.name}.corrupt-")
    assert str(spool) in error and str(moved) in error
    assert f"otel-bridge spool salvage {moved}" in error
    assert "it held 50 trace(s)" in error
    check = subprocess.run(
        [OTEL_BRIDGE, "spool", "check", str(moved)], capture_output=True, text=True, check=False
    )
    assert check.returncode == 1, check.stdout + check.stderr
    assert "damaged" in check.stdout
    sound = subprocess.run(
        [OTEL_BRIDGE, "spool", "check", str(spool)], capture_output=True, text=True, check=False
    )
    assert sound.returncode == 0, sound.stdout + sound.stderr


def test_a_vanished_spool_is_reported_with_its_count(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool, _ = spool_holding(tmp_path / "spool", 7)
    spool.unlink()
    with caplog.at_level(logging.INFO):
        FileSpanExporter(tmp_path / "out.jsonl", spool_dir=tmp_path / "spool").shutdown()
    (error,) = _spool_errors(caplog)
    assert f"spool {spool} vanished while it held 7 undelivered trace(s)" in error


def test_a_spool_replaced_by_an_older_copy_is_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool, _ = spool_holding(tmp_path / "first", 3)
    bigger, _ = spool_holding(tmp_path / "spool", 5)
    os.replace(spool, bigger)  # what a restored backup looks like
    with caplog.at_level(logging.INFO):
        FileSpanExporter(tmp_path / "out.jsonl", spool_dir=tmp_path / "spool").shutdown()
    (error,) = _spool_errors(caplog)
    assert "holds 3 trace(s) but held 5 when last written: 2 undelivered" in error


def test_delivery_and_restarts_report_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "out.jsonl"
    with caplog.at_level(logging.INFO):
        for _ in range(2):
            exporter = FileSpanExporter(out, spool_dir=tmp_path / "spool", grace_period=0.0)
            exporter.export(make_spans())
            assert exporter.force_flush(20_000)
            exporter.shutdown()
    assert _spool_errors(caplog) == []
    held = exporter.spool.path.with_name(exporter.spool.path.name + ".held")
    assert held.read_text().strip() == "0"


def test_salvage_recovers_the_intact_rows_of_a_file_damaged_in_its_middle(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool, ids = spool_holding(tmp_path / "spool", 200)
    lost = damage_outbox_pages_in_middle(spool)
    assert 0 < len(lost) < len(ids)
    out = tmp_path / "out.jsonl"
    # Opening moves the file aside; the salvage command queues its rows again in the spool.
    FileSpanExporter(out, spool_dir=tmp_path / "spool", clock=FakeClock()).shutdown()
    (moved,) = (p for p in spool.parent.iterdir() if p.name.endswith("Z"))
    salvage = subprocess.run(
        [OTEL_BRIDGE, "spool", "salvage", str(moved)], capture_output=True, text=True, check=False
    )
    assert salvage.returncode == 1, salvage.stdout + salvage.stderr
    recovered = len(ids) - len(lost)
    assert (
        f"recovered {recovered} trace(s) into {spool}; not recovered: {len(lost)}"
        f" (it held {len(ids)} when last counted)"
    ) in salvage.stdout
    assert stat.S_IMODE(spool.stat().st_mode) == 0o600
    exporter = FileSpanExporter(out, spool_dir=tmp_path / "spool")
    try:
        assert exporter.force_flush(30_000)
    finally:
        exporter.shutdown()
    assert _delivered_ids(out) == ids - lost


def test_salvage_and_check_take_a_path_relative_to_the_working_directory(tmp_path: Path) -> None:
    """As an operator types it, from the spool's directory: this crashed with "relative path
    can't be expressed as a file URI" (found by hand, damaging a spool under `serve`)."""
    spool, ids = spool_holding(tmp_path / "spool", 20)
    lost = damage_outbox_pages_in_middle(spool)
    FileSpanExporter(tmp_path / "out.jsonl", spool_dir=spool.parent, clock=FakeClock()).shutdown()
    (moved,) = (p for p in spool.parent.iterdir() if p.name.endswith("Z"))
    for command in ("check", "salvage"):
        result = subprocess.run(
            [OTEL_BRIDGE, "spool", command, moved.name],
            cwd=spool.parent,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 1, result.stdout + result.stderr
        assert "Traceback" not in result.stderr
    assert f"recovered {len(ids) - len(lost)} trace(s)" in result.stdout


def test_salvage_usage(tmp_path: Path) -> None:
    plain = tmp_path / "plain.sqlite3"
    plain.write_bytes(b"")
    missing = subprocess.run(
        [OTEL_BRIDGE, "spool", "check", str(tmp_path / "nope")], capture_output=True, check=False
    )
    unnamed = subprocess.run(
        [OTEL_BRIDGE, "spool", "salvage", str(plain)], capture_output=True, text=True, check=False
    )
    assert (missing.returncode, unnamed.returncode) == (2, 2)
    assert "--into" in unnamed.stderr


def test_spool_and_output_files_are_private_whatever_the_umask(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    os.chmod(shared, 0o755)
    previous = os.umask(0o002)
    try:
        with caplog.at_level(logging.WARNING):
            exporter = FileSpanExporter(
                shared / "out" / "traces.jsonl", spool_dir=shared / "spool", grace_period=0.0
            )
            exporter.export(make_spans())
            assert exporter.force_flush(20_000)
            # Another exporter in the same directory: no second warning.
            FileSpanExporter(
                shared / "out" / "more.jsonl", spool_dir=shared / "spool", spool_name="more"
            ).shutdown()
            live = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (shared / "spool").iterdir()}
            exporter.shutdown()
    finally:
        os.umask(previous)
    assert stat.S_IMODE((shared / "spool").stat().st_mode) == 0o700
    assert stat.S_IMODE((shared / "out").stat().st_mode) == 0o700
    assert stat.S_IMODE((shared / "out" / "traces.jsonl").stat().st_mode) == 0o600
    spool_name = exporter.spool.path.name
    for name in (spool_name, f"{spool_name}-wal", f"{spool_name}-shm", f"{spool_name}.held"):
        assert live[name] == 0o600, name
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert [w for w in warnings if "open to other users" in w] == []

    with caplog.at_level(logging.WARNING):
        FileSpanExporter(shared / "traces.jsonl", spool_dir=shared).shutdown()
        FileSpanExporter(shared / "traces.jsonl", spool_dir=shared, spool_name="b").shutdown()
    loose = [r.getMessage() for r in caplog.records if "open to other users" in r.getMessage()]
    assert len(loose) == 1 and str(shared) in loose[0] and "0755" in loose[0]
