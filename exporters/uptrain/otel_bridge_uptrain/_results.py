"""Where evaluation results go: OTel spans linked to the evaluated span, score histograms, and
the seed handler's console lines (through Python logging, as the seed wrote them).
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import IO, TYPE_CHECKING

from opentelemetry import trace as trace_api
from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from otel_bridge import semconv
from otel_bridge_uptrain._judge import Score
from otel_bridge_uptrain._selection import EvaluationRequest, Shape

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider
    from opentelemetry.util.types import AttributeValue

SCOPE_NAME = "otel_bridge_uptrain"
# Sink-specific attributes on evaluation spans (the gen_ai.evaluation.* ones come from semconv).
UPTRAIN_PROJECT = "uptrain.project_name"
UPTRAIN_EVALUATION = "uptrain.evaluation_name"
SCORE_HISTOGRAM = "gen_ai.evaluation.score"
NO_GRADE = "uptrain.no_grade"

# The seed logged its lines at INFO through a logger of its own with a stdout handler; so do we.
RESULTS_LOGGER = "otel_bridge_uptrain.results"
_results_logger = logging.getLogger(RESULTS_LOGGER)
_results_logger_lock = threading.Lock()


class _StdoutHandler(logging.StreamHandler[IO[str]]):
    """Writes to whatever `sys.stdout` is when a record is emitted (pytest, notebooks and the
    like swap it after the handler was made)."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)
        self.setFormatter(logging.Formatter("%(message)s"))

    @property
    def stream(self) -> IO[str]:
        return sys.stdout

    @stream.setter
    def stream(self, _value: IO[str]) -> None:
        pass


def _print_results_on_stdout() -> None:
    """Make the results logger print at INFO, as the seed's did: a stdout handler, unless the
    app configured handlers of its own for it; it does not propagate to the root logger then,
    so an app with `basicConfig` does not see every line twice."""
    with _results_logger_lock:
        if _results_logger.handlers:
            return
        _results_logger.addHandler(_StdoutHandler())
        _results_logger.propagate = False
        if _results_logger.level == logging.NOTSET or _results_logger.level > logging.INFO:
            _results_logger.setLevel(logging.INFO)


# The labels the seed handler printed for its checks; others print under their own name.
_SCORE_LABELS: Mapping[str, str] = {
    "context_relevance": "Context Relevance Score",
    "factual_accuracy": "Factual Accuracy Score",
    "response_completeness": "Response Completeness Score",
    "sub_query_completeness": "Sub Query Completeness Score",
    "context_reranking": "Context Reranking Score",
    "context_conciseness": "Context Conciseness Score",
    "multi_query_accuracy": "Multi Query Accuracy Score",
}


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The scores one evaluation request got, and when the judge was asked."""

    request: EvaluationRequest
    scores: tuple[Score, ...]
    start_time_ns: int
    end_time_ns: int


def span_attributes(
    evaluation: Evaluation, score: Score, project_name: str
) -> dict[str, AttributeValue]:
    """The attributes of the span that reports one score."""
    attributes: dict[str, AttributeValue] = {
        semconv.GEN_AI_EVALUATION_NAME: score.name,
        UPTRAIN_PROJECT: project_name,
        UPTRAIN_EVALUATION: evaluation.request.shape.value,
    }
    if score.value is not None:
        attributes[semconv.GEN_AI_EVALUATION_SCORE_VALUE] = score.value
    if score.explanation is not None:
        attributes[semconv.GEN_AI_EVALUATION_EXPLANATION] = score.explanation
    return attributes


def console_lines(evaluation: Evaluation) -> list[str]:
    """What the seed handler printed for one evaluated row, each line once."""
    row = evaluation.request.row
    lines = ["", f"Question: {row.get('question', '')}"]
    if evaluation.request.shape in (Shape.RAG, Shape.LLM):
        lines.append(f"Response: {row.get('response', '')}")
    if evaluation.request.shape is Shape.MULTI_QUERY:
        lines.append("Multi Queries:")
        lines.extend(f"  - {variant}" for variant in row.get("variants", ()))
    lines.append("")
    for score in evaluation.scores:
        lines.append(f"{_SCORE_LABELS.get(score.name, score.name)}: {score.value}")
    return lines


def _package_version() -> str | None:
    try:
        return version("otel-bridge-uptrain")
    except PackageNotFoundError:
        return None


class ResultPublisher:
    """Emits each score as a span (a new trace, linked to the evaluated span), records score
    histograms when asked, and the seed's console lines when `log_results`: one INFO record per
    evaluated row on the `otel_bridge_uptrain.results` logger, or written to `stream` if given."""

    def __init__(
        self,
        *,
        project_name: str,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        log_results: bool = False,
        stream: IO[str] | None = None,
    ) -> None:
        self._project_name = project_name
        self._log_results = log_results
        self._tracer = trace_api.get_tracer(SCOPE_NAME, _package_version(), tracer_provider)
        self._histogram = None
        if meter_provider is not None:
            meter = meter_provider.get_meter(SCOPE_NAME, _package_version())
            self._histogram = meter.create_histogram(
                SCORE_HISTOGRAM, unit="1", description="UpTrain evaluation scores by check"
            )
        self._stream = stream
        self._stream_lock = threading.Lock()
        if log_results and stream is None:
            _print_results_on_stdout()

    def after_fork(self) -> None:
        """In a forked child: the parent's delivery thread may have held the stream lock."""
        self._stream_lock = threading.Lock()

    def publish(self, evaluations: Sequence[Evaluation]) -> None:
        for evaluation in evaluations:
            for score in evaluation.scores:
                self._emit_span(evaluation, score)
                if self._histogram is not None and score.value is not None:
                    self._histogram.record(
                        score.value,
                        {
                            semconv.GEN_AI_EVALUATION_NAME: score.name,
                            UPTRAIN_PROJECT: self._project_name,
                        },
                    )
            self.log(evaluation)

    def log(self, evaluation: Evaluation) -> None:
        """The seed's console lines for one evaluated row, when `log_results`."""
        if not self._log_results:
            return
        text = "\n".join(console_lines(evaluation))
        if self._stream is None:
            _results_logger.info("%s", text)
            return
        # One write per row under a lock, so concurrent exporters never interleave.
        with self._stream_lock:
            self._stream.write(text + "\n")
            self._stream.flush()

    def _emit_span(self, evaluation: Evaluation, score: Score) -> None:
        evaluated = SpanContext(
            trace_id=evaluation.request.trace_id,
            span_id=evaluation.request.span_id,
            is_remote=True,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
        )
        span = self._tracer.start_span(
            f"evaluation {score.name}",
            # An empty context: every evaluation span starts its own trace and points back
            # at the evaluated span through its link, never through parenthood.
            context=Context(),
            kind=SpanKind.INTERNAL,
            links=[Link(evaluated)],
            start_time=evaluation.start_time_ns,
            attributes=span_attributes(evaluation, score, self._project_name),
        )
        if score.value is None:
            span.set_attribute(semconv.ERROR_TYPE, NO_GRADE)
            span.set_status(Status(StatusCode.ERROR, "the judge gave no usable grade"))
        span.end(end_time=evaluation.end_time_ns)
