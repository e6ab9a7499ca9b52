"""What the judge has graded so far, per evaluated span and check, kept across the retries of a
trace: a retry asks the judge only for the checks still missing, and a trace is published once,
when every check has its grade.

Kept in memory: after a restart a trace's checks are graded again from the start (the spool
holds traces, not grades). Bounded: past `max_spans` evaluated spans the oldest are forgotten
(their checks are then graded again if their trace is retried).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from otel_bridge_uptrain._judge import Score
from otel_bridge_uptrain._results import Evaluation
from otel_bridge_uptrain._selection import EvaluationRequest, check_name

__all__ = ["Grades"]

# Scores a call returned under no check's name (a non-LLM operator's own column).
_OTHER = ""


@dataclass(slots=True)
class _SpanGrades:
    by_check: dict[str, tuple[Score, ...]] = field(default_factory=dict)
    start_ns: int = 0
    end_ns: int = 0


class Grades:
    def __init__(self, max_spans: int = 100_000) -> None:
        self._max_spans = max_spans
        self._lock = threading.Lock()
        self._spans: dict[tuple[int, int], _SpanGrades] = {}

    def missing(self, request: EvaluationRequest) -> tuple[str, ...]:
        """The names of the request's checks without a grade yet, in plan order."""
        with self._lock:
            graded = self._spans.get((request.trace_id, request.span_id))
        names = [check_name(check) for check in request.checks]
        if graded is None:
            return tuple(names)
        return tuple(name for name in names if name not in graded.by_check)

    def record(
        self,
        requests: Sequence[EvaluationRequest],
        names: Sequence[str],
        scores: Sequence[tuple[Score, ...]],
        start_ns: int,
        *,
        complete: bool,
    ) -> None:
        """Keep the grades one judge call gave `requests` for the checks `names`. `complete`
        False: the call failed part way, so a check counts as graded only if it got a value
        (a missing value may be the failure, not the judge's verdict)."""
        end_ns = time.time_ns()
        with self._lock:
            for request, row_scores in zip(requests, scores, strict=True):
                key = (request.trace_id, request.span_id)
                graded = self._spans.get(key)
                if graded is None:
                    graded = self._spans[key] = _SpanGrades(start_ns=start_ns)
                    self._bound()
                for name in names:
                    matching = tuple(score for score in row_scores if score.name == name)
                    if complete or (matching and all(s.value is not None for s in matching)):
                        graded.by_check[name] = matching
                others = tuple(score for score in row_scores if score.name not in names)
                if complete and others:
                    graded.by_check[_OTHER] = graded.by_check.get(_OTHER, ()) + others
                graded.end_ns = end_ns

    def evaluation(self, request: EvaluationRequest) -> Evaluation | None:
        """The request's evaluation once every check has its grade, else None."""
        with self._lock:
            graded = self._spans.get((request.trace_id, request.span_id))
            if graded is None:
                return None
            names = [check_name(check) for check in request.checks]
            if any(name not in graded.by_check for name in names):
                return None
            scores = [score for name in names for score in graded.by_check[name]]
            scores.extend(graded.by_check.get(_OTHER, ()))
            return Evaluation(request, tuple(scores), graded.start_ns, graded.end_ns)

    def forget(self, trace_ids: set[int]) -> None:
        """Drop the grades of these traces (published, or given up)."""
        with self._lock:
            for key in [key for key in self._spans if key[0] in trace_ids]:
                del self._spans[key]

    def _bound(self) -> None:
        while len(self._spans) > self._max_spans:
            del self._spans[next(iter(self._spans))]
