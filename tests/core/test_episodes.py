"""Failures that last speak once: a spool at its limit, a spool that cannot be written (full
disk), a sink that is down. One WARNING when it begins, a reminder at most once a minute, one
INFO when it ends with its counts, no traceback for what the machine does."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExportResult

from otel_bridge import otlp
from otel_bridge.episodes import Episode, expected_error
from otel_bridge.file_sink import FileSpanExporter
from otel_bridge.handler import OTelCallbackHandler
from otel_bridge.otlp import read_traces
from otel_bridge.trace_files import requests_in_file
from tests import contract
from tests.contract import make_spans
from tests.support.waiting import wait_until


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _records(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == name and r.levelno >= logging.INFO]


def test_an_episode_logs_its_beginning_a_reminder_a_minute_and_its_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = _Clock()
    logger = logging.getLogger("otel_bridge.test_episode")
    episode = Episode(logger, "sink", "spool full: spans are rejected", "span(s)", clock=clock)
    with caplog.at_level(logging.INFO, logger=logger.name):
        for _ in range(100):
            episode.occurred("detail", 10)
            clock.now += 0.5  # 50 s in all: no reminder yet
        clock.now += 15
        episode.occurred("detail", 10)  # past a minute: one reminder
        episode.occurred("detail", 10)
        episode.ended()
        episode.ended()  # already over: nothing more
    messages = [(r.levelname, r.getMessage()) for r in _records(caplog, logger.name)]
    assert [level for level, _ in messages] == ["WARNING", "WARNING", "INFO"]
    assert (
        messages[0][1] == "sink: spool full: spans are rejected (detail); said once until it ends"
    )
    assert (
        "still spool full: spans are rejected for 65 s: 101 time(s), 1010 span(s)" in messages[1][1]
    )
    assert messages[2][1].startswith("sink: no longer spool full: spans are rejected, after 65.0 s")
    assert messages[2][1].endswith("102 time(s), 1020 span(s)")


def test_a_state_that_comes_and_goes_is_said_once_a_minute_with_a_tally(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A spool at its limit takes a request and refuses the next: before, each turn logged a
    WARNING and an INFO (51 WARNINGs in 10 s of `bench/spool_limit.py --limit-mib 8`)."""
    clock = _Clock()
    logger = logging.getLogger("otel_bridge.test_episode_flaps")
    episode = Episode(logger, "sink", "spool full: spans are rejected", "span(s)", clock=clock)
    with caplog.at_level(logging.INFO, logger=logger.name):
        for _ in range(50):  # 50 turns within 50 s
            episode.occurred("detail", 4)
            clock.now += 0.5
            episode.ended()
            clock.now += 0.5
        clock.now += 20  # past a minute since the first WARNING
        episode.occurred("detail", 4)
        episode.ended()
    messages = [(r.levelname, r.getMessage()) for r in _records(caplog, logger.name)]
    assert [level for level, _ in messages] == ["WARNING", "INFO", "WARNING", "INFO"]
    assert messages[2][1].endswith("meanwhile it came and went 49 more time(s), 196 span(s)")
    assert messages[3][1].endswith("1 time(s), 4 span(s)")


def test_expected_errors_are_states_of_the_machine() -> None:
    import errno
    import sqlite3

    assert expected_error(OSError(errno.ENOSPC, "No space left on device"))
    assert expected_error(sqlite3.OperationalError("database or disk is full"))
    assert expected_error(ConnectionRefusedError())
    assert not expected_error(ValueError("a bug"))
    assert not expected_error(sqlite3.OperationalError("no such table: outbox"))


def test_a_full_spool_is_said_once_not_per_batch(
    tmp_path: Path, exporters: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    sink = contract.MemorySink(spool_dir=tmp_path, grace_period=600.0, max_trace_age=900.0)
    exporters.append(sink)
    sink.spool.max_bytes = 6_000  # room for a few traces only (~300 bytes of protobuf each)
    with caplog.at_level(logging.INFO, logger="otel_bridge.exporter"):
        for _ in range(60):
            sink.export(make_spans())
        assert sink.force_flush(10_000)  # delivered: room again
        sink.export(make_spans())
    lines = [(r.levelname, r.getMessage()) for r in _records(caplog, "otel_bridge.exporter")]
    assert [level for level, _ in lines] == ["WARNING", "INFO"], lines
    assert "spool full: spans are rejected" in lines[0][1]
    assert "no longer spool full" in lines[1][1] and "span(s) rejected" in lines[1][1]


def test_a_spool_that_cannot_be_written_is_said_once_without_a_traceback(
    tmp_path: Path, exporters: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    """SQLite's own "database or disk is full", from a page limit on the spool's connection:
    what a full disk looks like to the exporter."""
    sink = contract.MemorySink(spool_dir=tmp_path, grace_period=600.0, max_trace_age=900.0)
    exporters.append(sink)
    db = sink.spool._db
    assert db is not None
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages}")
    big = make_spans(("root-" + "x" * 20_000, "child"))
    with caplog.at_level(logging.INFO):
        results = [sink.export(big) for _ in range(50)]
        db.execute("PRAGMA max_page_count = 1073741823")
        assert sink.export(make_spans()).name == "SUCCESS"
    assert {result.name for result in results} == {"FAILURE"}
    lines = _records(caplog, "otel_bridge.exporter")
    assert [r.levelname for r in lines] == ["WARNING", "INFO"], [r.getMessage() for r in lines]
    assert "spool not writable" in lines[0].getMessage()
    assert "database or disk is full" in lines[0].getMessage()
    assert all(r.exc_info is None for r in caplog.records)
    assert "100 span(s) refused" in lines[1].getMessage()


def test_a_sink_that_is_down_is_said_once_and_its_recovery_once(
    tmp_path: Path, exporters: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="otel_bridge.delivery"):
        sink = contract.SwitchableSink(down=True, spool_dir=tmp_path, grace_period=0.0)
        exporters.append(sink)
        for _ in range(20):
            sink.export(make_spans())
        sink.force_flush(2_000)
        sink.force_flush(2_000)  # a second round of retries
        sink.down = False
        assert sink.force_flush(10_000)
    assert len(sink.delivered) == 20
    lines = [(r.levelname, r.getMessage()) for r in _records(caplog, "otel_bridge.delivery")]
    assert [level for level, _ in lines] == ["WARNING", "INFO"], lines
    assert "sink failing" in lines[0][1] and "connection refused" in lines[0][1]
    assert lines[1][1].startswith("memory: no longer sink failing")


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir()
    if os.geteuid() != 0:
        return False
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    return mounted.returncode == 0


def _unmount(path: Path) -> None:
    """Lazily: a failed test may leave a file open on the disk, which must not keep it."""
    subprocess.run(["umount", "--lazy", str(path)], capture_output=True, check=False)


def test_a_disk_filled_by_others_speaks_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The file sink's spool on a 1 MiB tmpfs that another program fills after the spool
    opened: the exporter refuses spans (the SDK's processor or an OTLP sender retries them)
    and says so once, without tracebacks."""
    disk = tmp_path / "small-disk"
    if not _mount_tmpfs(disk, "1m"):
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    try:
        with caplog.at_level(logging.INFO):
            sink = FileSpanExporter(tmp_path / "out.jsonl", spool_dir=disk, grace_period=250.0)
            try:
                _fill(disk / "someone-else")
                results = [
                    sink.export(make_spans(("root-" + "y" * 8_000, "child"))) for _ in range(300)
                ]
            finally:
                sink.shutdown()
        assert "FAILURE" in {result.name for result in results}
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) <= 2, [r.getMessage() for r in warnings]
        assert any("spool not writable" in r.getMessage() for r in warnings)
        assert all(r.exc_info is None for r in caplog.records)
    finally:
        _unmount(disk)


def test_a_disk_smaller_than_the_limit_bounds_the_spool_and_delivery_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A 3 MiB disk and the default 256 MiB limit, the sink down: the spool refuses spans once
    the disk's room is taken, saying so, and never fills the disk; when the sink is back every
    accepted trace is delivered, once, and the spool accepts again. (Before: the WAL filled the
    disk after 26 traces and delivery stalled for good, also after a restart.)"""
    disk = tmp_path / "small-disk"
    if not _mount_tmpfs(disk, "3m"):
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    out = tmp_path / "out.jsonl"
    out.mkdir()  # the sink is down: every delivery fails while a directory stands there
    try:
        with caplog.at_level(logging.INFO):
            sink = FileSpanExporter(out, spool_dir=disk, grace_period=0.0)
            try:
                accepted, refused = set(), 0
                for number in range(400):
                    spans = make_spans((f"root-{number}-" + "y" * 2_000, "child", "grandchild"))
                    if sink.export(spans).name == "SUCCESS":
                        accepted.add(format(spans[0].context.trace_id, "032x"))
                    else:
                        refused += 1
                    assert shutil.disk_usage(disk).free > 0
                assert accepted and refused
                out.rmdir()
                assert sink.force_flush(60_000)
                spans = make_spans(("after-" + "y" * 2_000, "child"))
                assert sink.export(spans).name == "SUCCESS"
                accepted.add(format(spans[0].context.trace_id, "032x"))
                assert sink.force_flush(60_000)
            finally:
                sink.shutdown()
        delivered = Counter(
            (span.trace_id, span.span_id) for trace in read_traces(out) for span in trace.spans
        )
        assert {format(trace_id, "032x") for trace_id, _ in delivered} == accepted
        assert set(delivered.values()) == {1}
        full = [r.getMessage() for r in caplog.records if "spool full" in r.getMessage()]
        assert full and "the disk has room for" in full[0], full
        assert not [r for r in caplog.records if "disk is full" in r.getMessage()]
    finally:
        _unmount(disk)


def test_a_disk_full_when_the_exporter_is_built_costs_the_app_nothing_and_delivery_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A spool holding three undelivered traces, then another program fills its 1 MiB disk, then
    the app starts: building the exporter (and a handler with it) raises nothing; it says once
    that its spool is not writable, refuses spans meanwhile (counted), and once the room is back
    it opens the same spool file, delivers the three traces and what it accepts, each once.
    (Before: "database or disk is full" raised from the constructor, failing the app's start.)"""
    disk = tmp_path / "small-disk"
    if not _mount_tmpfs(disk, "1m"):
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    try:
        earlier = contract.SwitchableSink(down=True, spool_dir=disk, grace_period=0.0)
        queued = [make_spans() for _ in range(3)]
        assert {earlier.export(spans).name for spans in queued} == {"SUCCESS"}
        earlier.shutdown()
        _fill(disk / "someone-else")

        with caplog.at_level(logging.INFO):
            sink = contract.MemorySink(spool_dir=disk, grace_period=0.0)
            try:
                OTelCallbackHandler(tracer_provider=TracerProvider(), exporters=[sink])
                assert sink.spool is None and sink.spool_full
                assert sink.delivery_state().stalled is not None
                refused = [sink.export(make_spans()).name for _ in range(4)]
                (disk / "someone-else").unlink()
                wait_until(lambda: sink.spool is not None, 60.0, what="the spool opened again")
                assert sink.spool is not None
                assert sink.spool.path.name == "memory.sqlite3"  # the same file, not a new one
                later = make_spans()
                assert sink.export(later).name == "SUCCESS"
                assert sink.force_flush(30_000)
            finally:
                sink.shutdown()
        assert refused == ["FAILURE"] * 4
        delivered = Counter(trace.trace_id for trace in sink.delivered)
        wanted = [spans[0].context.trace_id for spans in [*queued, later]]
        assert sorted(delivered) == sorted(wanted) and set(delivered.values()) == {1}
        lines = _records(caplog, "otel_bridge.exporter")
        assert [r.levelname for r in lines] == ["WARNING", "INFO"], [r.getMessage() for r in lines]
        assert "spool not writable" in lines[0].getMessage()
        assert " bytes free on its disk" in lines[0].getMessage()
        assert "12 span(s) refused" in lines[1].getMessage()
        assert all(r.exc_info is None for r in caplog.records)
    finally:
        _unmount(disk)


def _fill(path: Path) -> None:
    with path.open("wb") as file:
        try:
            while True:
                file.write(b"x" * 65536)
                file.flush()
        except OSError:
            pass


@pytest.mark.parametrize("file_format", ["json", "proto"])
def test_requests_written_straight_to_a_full_disk_leave_only_whole_lines(
    tmp_path: Path, file_format: str
) -> None:
    """The file sink writes the receiver's requests to its file at once. On a 1 MiB disk that
    fills up, a request the disk takes only part of is refused and cut back out of the file: the
    file reads back whole, holding exactly the spans of the requests that were accepted."""
    disk = tmp_path / "small-disk"
    if not _mount_tmpfs(disk, "1m"):
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    try:
        path = disk / "out"
        sink = FileSpanExporter(path, format=file_format, spool_dir=tmp_path / "spool")
        names = [f"{i}" + "x" * 3000 for i in range(10)]  # about 30 KB a request
        accepted = refused = 0
        try:
            for _ in range(100):
                request = otlp.request_from_spans(make_spans(names))
                if sink.export_request(request) is SpanExportResult.SUCCESS:
                    accepted += otlp.span_count(request)
                else:
                    refused += 1
        finally:
            sink.shutdown()
        assert accepted and refused  # the disk did fill
        written = sum(otlp.span_count(request) for request in requests_in_file(path))
        assert written == accepted
    finally:
        _unmount(disk)
