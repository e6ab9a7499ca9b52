"""`TraceExporter._after_fork_in_child`, the hook a sink drops its network clients in: run in a
real forked child once its own spool is open and before its worker starts, never for an exporter
shut down before the fork, and a hook that raises costs the child nothing but a log line."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from tests.contract import make_spans
from tests.support.factories import shut_down_after
from tests.support.forking import ProcessLogSink, run_in_child

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork()")

_DEADLINE = 30.0


class HookedSink(ProcessLogSink):
    """A `ProcessLogSink` that records what the exporter looked like whenever
    `_after_fork_in_child` ran."""

    sink_name = "forkhook"

    def __init__(self, log: Path, *, hook_raises: bool = False, **options: Any) -> None:
        self.hook_raises = hook_raises
        self.hook_calls: list[dict[str, Any]] = []
        super().__init__(log, **options)

    def _after_fork_in_child(self) -> None:
        self.hook_calls.append(
            {
                "pid": os.getpid(),
                "spool": self._spool,
                "spool_closed": self._spool.closed,
                "worker": self._worker,
            }
        )
        if self.hook_raises:
            raise RuntimeError("a sink's hook failed")


@pytest.fixture
def make_sink(tmp_path: Path) -> Iterator[Callable[..., HookedSink]]:
    yield from shut_down_after(
        lambda **options: HookedSink(
            tmp_path / "delivered.log",
            spool_dir=tmp_path / "spool",
            grace_period=0.0,
            shutdown_timeout=10.0,
            **options,
        )
    )


def _trace_id(spans: Sequence[ReadableSpan]) -> str:
    context = spans[0].context
    assert context is not None
    return f"{context.trace_id:032x}"


def _export_and_flush(sink: HookedSink, spans: Sequence[ReadableSpan]) -> int:
    if sink.export(spans) is not SpanExportResult.SUCCESS:
        return 10
    if not sink.force_flush(int(_DEADLINE * 1000)):
        return 11
    sink.shutdown()
    return 0


def test_hook_runs_in_the_child_on_its_own_spool_before_its_worker_starts(
    make_sink: Callable[..., HookedSink],
) -> None:
    sink = make_sink()
    parent_spool, parent_worker = sink.spool, sink._worker
    spans = make_spans(("child-root", "child-child"))

    def child() -> int:
        if len(sink.hook_calls) != 1:
            return 3
        call = sink.hook_calls[0]
        if call["pid"] != os.getpid():
            return 4
        if call["spool"] is parent_spool or call["spool"] is not sink.spool or call["spool_closed"]:
            return 5  # the child's own spool was not open yet
        if call["worker"] is not parent_worker or sink._worker is parent_worker:
            return 6  # the child's worker had started already, or never did
        return _export_and_flush(sink, spans)

    child_pid, code = run_in_child(child)

    assert code == 0
    assert sink.hook_calls == []  # the parent never runs it
    assert sink.deliveries() == [(child_pid, _trace_id(spans))]


def test_hook_does_not_run_for_an_exporter_shut_down_before_the_fork(
    make_sink: Callable[..., HookedSink],
) -> None:
    sink = make_sink()
    sink.shutdown()

    def child() -> int:
        if sink.hook_calls:
            return 3
        return 0 if sink.export(make_spans(("child-root",))) is SpanExportResult.FAILURE else 4

    _, code = run_in_child(child)

    assert code == 0
    assert sink.deliveries() == []


def test_a_hook_that_raises_does_not_stop_the_child_delivering(
    make_sink: Callable[..., HookedSink],
) -> None:
    sink = make_sink(hook_raises=True)
    spans = make_spans(("child-root",))

    def child() -> int:
        if len(sink.hook_calls) != 1:
            return 3
        return _export_and_flush(sink, spans)

    child_pid, code = run_in_child(child)

    assert code == 0
    assert sink.deliveries() == [(child_pid, _trace_id(spans))]
    # The parent goes on too.
    later = make_spans(("parent-later",))
    assert sink.export(later) is SpanExportResult.SUCCESS
    assert sink.force_flush(int(_DEADLINE * 1000))
    assert sorted(sink.deliveries()) == sorted(
        [(child_pid, _trace_id(spans)), (os.getpid(), _trace_id(later))]
    )
