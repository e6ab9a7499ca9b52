"""Every spooled item belongs to the destination it was accepted for: exporters of one sink aimed
at different destinations never deliver each other's items, in one process or across restarts;
leftovers for another destination are kept, reported at start and listed by
`otel-bridge replay --list`; tools that open a spool by path keep its destination."""

from __future__ import annotations

import logging
import shutil
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from otel_bridge.cli import main as cli_main
from otel_bridge.exporter import TraceExporter
from otel_bridge.langchain_views import FinishedTrace
from otel_bridge.sink import DeliveryReport, RetryableError, trace_key
from otel_bridge.spool import Spool, SpoolDestinationError, spool_path
from otel_bridge.spool_survey import survey
from tests import contract
from tests.contract import make_spans


class ProjectSink(contract.MemorySink):
    """A sink with one destination per project, like Label Studio's."""

    sink_name = "projects"

    def __init__(self, project: str, *, down: bool = False, **options: Any) -> None:
        self.project = project
        self.down = down  # a server that is down: nothing is delivered, everything stays queued
        super().__init__(**options)

    def destination_identity(self) -> dict[str, str]:
        return {"project": self.project, "url": "http://review.example"}

    def deliver(self, traces: Sequence[FinishedTrace]) -> DeliveryReport:
        if self.down:
            raise RetryableError("the review server is down")
        return super().deliver(traces)


def _sink(
    exporters: list[TraceExporter], project: str, spool_dir: Path, **options: Any
) -> ProjectSink:
    sink = ProjectSink(project, spool_dir=spool_dir, **options)
    exporters.append(sink)
    return sink


def _keys(traces: list[FinishedTrace]) -> list[str]:
    return [trace_key(trace) for trace in traces]


def _export_one(sink: TraceExporter) -> str:
    spans = make_spans()
    sink.export(spans)
    return trace_key(FinishedTrace.from_spans(spans))


def test_two_destinations_in_one_process_each_deliver_only_their_own(
    tmp_path: Path, exporters: list[TraceExporter]
) -> None:
    a = _sink(exporters, "A", tmp_path, grace_period=0.0)
    b = _sink(exporters, "B", tmp_path, grace_period=0.0)
    assert a.spool.path != b.spool.path
    assert a.spool.path.name.startswith("projects-") and b.spool.path.name.startswith("projects-")
    for_a = [_export_one(a) for _ in range(3)]
    for_b = [_export_one(b) for _ in range(2)]
    assert a.force_flush() and b.force_flush()
    assert _keys(a.delivered) == for_a
    assert _keys(b.delivered) == for_b


def test_a_leftover_waits_for_its_own_destination_and_is_delivered_there_once(
    tmp_path: Path, exporters: list[TraceExporter], caplog: pytest.LogCaptureFixture
) -> None:
    # A's process ends with its trace undelivered (its server is down).
    a = ProjectSink("A", spool_dir=tmp_path, down=True, shutdown_timeout=1.0)
    left = _export_one(a)
    a.shutdown()
    assert a.delivered == []

    # B's process: delivers its own, leaves A's alone, and says so once.
    with caplog.at_level(logging.WARNING, logger="otel_bridge.exporter"):
        b = _sink(exporters, "B", tmp_path, grace_period=0.0)
    own = _export_one(b)
    assert b.force_flush()
    assert _keys(b.delivered) == [own]
    (report,) = [r.getMessage() for r in caplog.records if "not this exporter's" in r.getMessage()]
    assert "1 trace(s) for project=A url=http://review.example" in report

    # A's next process delivers it, once.
    again = _sink(exporters, "A", tmp_path, grace_period=0.0)
    assert again.force_flush()
    assert _keys(again.delivered) == [left]
    assert again.spool.counts().pending_traces == again.spool.counts().outbox == 0


def test_the_same_destination_adopts_a_second_exporters_leftovers_another_does_not(
    tmp_path: Path, exporters: list[TraceExporter]
) -> None:
    first = ProjectSink("A", spool_dir=tmp_path, down=True, shutdown_timeout=1.0)
    second = ProjectSink("A", spool_dir=tmp_path, down=True, shutdown_timeout=1.0)
    assert second.spool.path.name == f"{first.spool_stem}.1.sqlite3"
    left = _export_one(second)
    second.shutdown()
    first.shutdown()

    other = _sink(exporters, "B", tmp_path, grace_period=0.0)
    assert other.force_flush() and other.delivered == []
    assert (tmp_path / f"{first.spool_stem}.1.sqlite3").exists()

    same = _sink(exporters, "A", tmp_path, grace_period=0.0)
    assert same.force_flush()
    assert _keys(same.delivered) == [left]
    assert not (tmp_path / f"{first.spool_stem}.1.sqlite3").exists()


def test_a_spool_refuses_another_destination_and_keeps_its_items(tmp_path: Path) -> None:
    path = spool_path(tmp_path, "shared")
    bounds: dict[str, Any] = {"max_bytes": 1 << 30, "max_traces": 100, "max_spans_per_trace": 100}
    spool = Spool(path, destination={"project": "A"}, **bounds)
    spool.close()
    with pytest.raises(SpoolDestinationError, match=r"project=A.*not for project=B"):
        Spool(path, destination={"project": "B"}, **bounds)
    # A tool opening it by path takes the destination it records.
    reopened = Spool(path, **bounds)
    assert reopened.destination == {"project": "A"}
    reopened.close()


def test_a_spool_from_before_destinations_were_recorded_belongs_to_its_name(
    tmp_path: Path, exporters: list[TraceExporter]
) -> None:
    a = ProjectSink("A", spool_dir=tmp_path, down=True, shutdown_timeout=1.0)
    left = _export_one(a)
    a.shutdown()
    with sqlite3.connect(a.spool.path) as db:
        db.execute("DROP TABLE meta")
    (summary,) = survey(tmp_path)
    assert summary.destination is None and summary.held == 1
    again = _sink(exporters, "A", tmp_path, grace_period=0.0)
    assert again.force_flush()
    assert _keys(again.delivered) == [left]
    assert again.spool.destination == {"project": "A", "url": "http://review.example"}


def test_replay_list_shows_every_spool_with_its_destination(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for project in ("A", "B"):
        sink = ProjectSink(project, spool_dir=tmp_path, down=True, shutdown_timeout=1.0)
        _export_one(sink)
        sink.shutdown()
    assert cli_main(["replay", "--list", "--spool-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert len(lines) == 3, out
    assert "project=A url=http://review.example" in lines[0]
    assert "project=B url=http://review.example" in lines[1]
    assert all("idle  queued=1 assembling=0 dead=0" in line for line in lines[:2])
    assert lines[2] == f"2 spool file(s), 2 trace(s) held, in {tmp_path}"


def test_salvage_queues_rows_for_the_destination_they_were_accepted_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sink = ProjectSink("A", spool_dir=tmp_path, down=True, shutdown_timeout=1.0)
    _export_one(sink)
    sink.shutdown()
    damaged = sink.spool.path.with_name(sink.spool.path.name + ".corrupt-20261204T000000Z")
    shutil.move(sink.spool.path, damaged)

    assert cli_main(["spool", "salvage", str(damaged)]) == 0
    (summary,) = survey(tmp_path)
    assert summary.path == sink.spool.path
    assert summary.destination == {"project": "A", "url": "http://review.example"}
    assert summary.queued == 1

    other = ProjectSink("B", spool_dir=tmp_path)
    other.shutdown()
    shutil.copy(damaged, tmp_path / "again.corrupt-20261204T000000Z")
    code = cli_main(
        [
            "spool",
            "salvage",
            str(tmp_path / "again.corrupt-20261204T000000Z"),
            "--into",
            str(other.spool.path),
        ]
    )
    assert code == 1
    assert "holds items for project=B url=http://review.example, not for project=A" in (
        capsys.readouterr().err
    )
