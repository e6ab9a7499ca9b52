"""`UpTrainSpanExporter`: wires trace selection, the UpTrain judge and result publishing onto the
core `TraceExporter`, which provides spooling, batching and retry.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any, ClassVar

from otel_bridge.exporter import TraceExporter
from otel_bridge.langchain_views import FinishedTrace
from otel_bridge.sink import DeliveryReport, PermanentError, RetryableError, trace_key
from otel_bridge_uptrain._dashboard import DashboardPoster
from otel_bridge_uptrain._grades import Grades
from otel_bridge_uptrain._judge import HostedJudge, Judge, LocalJudge, PartlyGraded, RowsRejected
from otel_bridge_uptrain._results import SCOPE_NAME, Evaluation, ResultPublisher
from otel_bridge_uptrain._selection import (
    Check,
    CheckPlan,
    EvaluationRequest,
    Shape,
    check_name,
    is_sampled,
    select,
)
from otel_bridge_uptrain.settings import (
    API_BASE,
    API_KEY,
    DASHBOARD_URL,
    GENERIC_KEY_VARIABLES,
    KEY_TYPE,
    KEY_TYPES,
    LOG_RESULTS,
    MODEL,
    PROJECT_NAME,
    SAMPLE_RATE,
    SCORE_HISTOGRAMS,
    SERVER_URL,
)

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

_logger = logging.getLogger(__name__)

# A trace's checks are several judge calls each, and uptrain's first evaluation in a process
# imports and sets up a good deal: the base's 10 s (5 of them to deliver) cut the delivery at
# exit short on a loaded machine, leaving the trace for the next start.
DEFAULT_SHUTDOWN_TIMEOUT_S = 30.0

TraceFilter = Callable[[FinishedTrace], bool]


class UpTrainSpanExporter(TraceExporter):
    """Evaluates finished LangChain traces with UpTrain and emits each score as a span.

    The arguments of langchain_community's `UpTrainCallbackHandler` (`project_name`,
    `key_type`, `api_key`, `model`, `log_results`), plus where the judge lives (`api_base` for
    any OpenAI-compatible endpoint, `uptrain_server_url` for `key_type="uptrain"`), which checks
    run per trace shape (`checks`), which traces are evaluated (`sample_rate`, `trace_filter`)
    and where results go (`tracer_provider`, `meter_provider` with `score_histograms`; with
    `log_results`, the seed's lines at INFO on the `otel_bridge_uptrain.results` logger, which
    prints to stdout unless the app gave it handlers, or to `log_stream` if given; with
    key_type="openai", each evaluated row posted once to UpTrain's local dashboard at
    `dashboard_url`, as uptrain posts them, when one runs there). Other keyword arguments go to
    `TraceExporter`.

    Each (evaluated span, check) is graded once and each trace's results published once: the
    grades and which traces were published are kept in `<spool stem>.grades` beside the spool,
    so neither a retry after a partial judge failure nor a restart after a crash asks the judge
    again for a grade it gave or publishes a trace twice.

    Each setting resolves as: argument > OTEL_BRIDGE_UPTRAIN_<SETTING> > generic variable >
    default. Generic variables: OPENAI_API_KEY or UPTRAIN_ACCESS_TOKEN (API_KEY, by key type),
    OPENAI_BASE_URL (API_BASE), UPTRAIN_SERVER_URL (SERVER_URL), UPTRAIN_LOCAL_URL
    (DASHBOARD_URL).
    """

    sink_name: ClassVar[str] = "uptrain"
    needs_content: ClassVar[bool] = True

    def __init__(
        self,
        *,
        project_name: str | None = None,
        key_type: str | None = None,
        api_key: str | None = None,
        model: str | None = None,
        log_results: bool | None = None,
        api_base: str | None = None,
        uptrain_server_url: str | None = None,
        dashboard_url: str | None = None,
        checks: CheckPlan | None = None,
        sample_rate: float | None = None,
        trace_filter: TraceFilter | None = None,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        score_histograms: bool | None = None,
        log_stream: IO[str] | None = None,
        judge_timeout: float = 60.0,
        **options: Any,
    ) -> None:
        self.project_name = PROJECT_NAME.resolve(project_name)
        self.key_type = KEY_TYPE.resolve(key_type)
        if self.key_type not in KEY_TYPES:
            raise ValueError(
                f"Invalid key type {self.key_type!r}: must be 'uptrain' or 'openai' "
                f"(argument key_type or {KEY_TYPE.variables[0]})"
            )
        key_variables = (API_KEY.variables[0], GENERIC_KEY_VARIABLES[self.key_type])
        resolved_key = API_KEY.resolve(api_key, variables=key_variables)
        if not resolved_key:
            raise ValueError(
                f"UpTrainSpanExporter(key_type={self.key_type!r}) needs an API key: pass api_key= "
                f"or set {' or '.join(key_variables)}"
            )
        self.model = MODEL.resolve(model)
        self.sample_rate = SAMPLE_RATE.resolve(sample_rate)
        if not 0.0 <= self.sample_rate <= 1.0:
            raise ValueError(f"sample_rate must be between 0 and 1, not {self.sample_rate}")
        self.checks = checks or CheckPlan()
        self._trace_filter = trace_filter
        self._judge: Judge
        self._dashboard: DashboardPoster | None = None
        # Where results are stored in "uptrain" mode (None: uptrain's default server).
        self._server_url = (
            SERVER_URL.resolve(uptrain_server_url) if self.key_type == "uptrain" else None
        )
        if self.key_type == "openai":
            if not self.model.startswith("gpt"):
                _logger.warning(
                    "uptrain 0.7 sends models not named gpt* through litellm, not through the "
                    "OpenAI-compatible endpoint; %r may not reach the judge you configured",
                    self.model,
                )
            self._judge = LocalJudge(
                api_key=resolved_key,
                model=self.model,
                api_base=API_BASE.resolve(api_base),
                project_name=self.project_name,
                timeout=judge_timeout,
            )
            self._dashboard = DashboardPoster(DASHBOARD_URL.resolve(dashboard_url))
        else:
            self._judge = HostedJudge(
                api_key=resolved_key,
                model=self.model,
                server_url=self._server_url,
                project_name=self.project_name,
            )
        log_results = LOG_RESULTS.resolve(log_results)
        score_histograms = SCORE_HISTOGRAMS.resolve(score_histograms)
        if score_histograms and meter_provider is None:
            from opentelemetry.metrics import get_meter_provider

            meter_provider = get_meter_provider()
        self.log_results = log_results
        self._publisher = ResultPublisher(
            project_name=self.project_name,
            tracer_provider=tracer_provider,
            meter_provider=meter_provider if score_histograms else None,
            log_results=log_results,
            stream=log_stream,
        )
        self._grades_store: Grades | None = None
        self._grades_lock = threading.Lock()
        options.setdefault("shutdown_timeout", DEFAULT_SHUTDOWN_TIMEOUT_S)
        # Last: the base starts the delivery worker, which may call deliver() at once for
        # traces a previous run left in the spool.
        super().__init__(meter_provider=meter_provider, **options)

    # --- TraceExporter --------------------------------------------------------------------------

    def accepts(self, trace: FinishedTrace) -> bool:
        # Our own evaluation spans come back here when the user sends them through the same
        # provider that feeds this exporter; there is nothing to evaluate in them.
        if all(span.scope_name == SCOPE_NAME for span in trace.spans):
            return False
        if not is_sampled(trace.trace_id, self.sample_rate):
            return False
        if self._trace_filter is None:
            return True
        try:
            return bool(self._trace_filter(trace))
        except Exception:
            _logger.exception(
                "uptrain: trace_filter raised; trace %s not evaluated", trace_key(trace)
            )
            return False

    def destination_identity(self) -> dict[str, str]:
        """The project results are published under, and in "uptrain" mode the UpTrain server
        that stores them (a local evaluation's judge endpoint only grades: not a destination)."""
        identity = {"project": self.project_name, "mode": self.key_type}
        if self._server_url:
            identity["server"] = self._server_url
        return identity

    def deliver(self, traces: Sequence[FinishedTrace]) -> DeliveryReport:
        grades = self._grades()
        # Published before, e.g. by a process that died before its spool let go of the item.
        published = grades.published(trace.trace_id for trace in traces)
        pending = [trace for trace in traces if trace.trace_id not in published]
        requests = [request for trace in pending for request in select(trace, self.checks)]
        try:
            evaluations, failure = self._evaluate(requests)
        except RowsRejected as rejected:
            if len(pending) == 1:
                return DeliveryReport(
                    delivered=frozenset(trace_key(t) for t in traces if t.trace_id in published),
                    permanent={trace_key(pending[0]): rejected.reason},
                )
            # Find the trace the judge refused; the others are still worth evaluating.
            return self._deliver_one_by_one(traces)
        if isinstance(failure, PermanentError):
            raise failure
        # Traces whose every check got its grade are published now, once (all of them when the
        # judge did not fail); the others keep the grades they got and are retried for the rest.
        unfinished = {request.trace_id for request in requests} - {
            evaluation.request.trace_id for evaluation in evaluations
        }
        self._publish([e for e in evaluations if e.request.trace_id not in unfinished])
        grades.mark_published({request.trace_id for request in requests} - unfinished)
        if failure is None:
            return DeliveryReport.all_delivered(traces)
        reason = failure.reason if isinstance(failure, RetryableError) else str(failure)
        return DeliveryReport(
            delivered=frozenset(trace_key(t) for t in traces if t.trace_id not in unfinished),
            retryable={trace_key(t): reason for t in traces if t.trace_id in unfinished},
            retry_after=getattr(failure, "retry_after", None),
        )

    def already_delivered(self, keys: Sequence[str]) -> set[str]:
        """The traces whose results were published, by this process or an earlier one."""
        by_id = {int(key, 16): key for key in keys}
        return {by_id[trace_id] for trace_id in self._grades().published(by_id)}

    @property
    def judge(self) -> Judge:
        """Who grades: a `LocalJudge` (key_type="openai") or a `HostedJudge` (UpTrain's server)."""
        return self._judge

    @property
    def uptrain_client(self) -> Any:
        """The uptrain client the judge uses (`EvalLLM`, or `APIClient` for key_type="uptrain"),
        built on first use."""
        return self._judge.client()

    def evaluate_rows(
        self, evaluation_name: str, data: Sequence[Mapping[str, Any]], checks: Sequence[Check]
    ) -> list[dict[str, Any]]:
        """Evaluate `data` now, on the caller's thread (the seed handler's `uptrain_evaluate`):
        each row comes back with its `score_<check>`/`explanation_<check>` columns, and with
        `log_results` the seed's lines are logged. Judge failures raise."""
        scores = self._judge.evaluate(evaluation_name, data, list(checks))
        shape = next((s for s in Shape if s.value == evaluation_name), Shape.LLM)
        now = time.time_ns()
        rows: list[dict[str, Any]] = []
        evaluations: list[Evaluation] = []
        for row, row_scores in zip(data, scores, strict=True):
            request = EvaluationRequest(0, 0, shape, row, tuple(checks))
            evaluation = Evaluation(request, row_scores, now, now)
            evaluations.append(evaluation)
            self._publisher.log(evaluation)
            result = dict(row)
            for score in row_scores:
                result[f"score_{score.name}"] = score.value
                result[f"explanation_{score.name}"] = score.explanation
            rows.append(result)
        if self._dashboard is not None:
            # One post for the call, as uptrain's own evaluate makes.
            self._dashboard.post(self.project_name, evaluation_name, evaluations)
        return rows

    @property
    def dashboard(self) -> DashboardPoster | None:
        """Where evaluated rows are posted (key_type="openai"), else None."""
        return self._dashboard

    def shutdown(self) -> None:
        super().shutdown()
        self._judge.close()
        with self._grades_lock:
            if self._grades_store is not None:
                self._grades_store.close()

    def _after_fork_in_child(self) -> None:
        self._judge.drop_clients()
        self._publisher.after_fork()
        self._grades_lock = threading.Lock()
        if self._grades_store is not None:
            self._grades_store.after_fork()

    # --- private --------------------------------------------------------------------------------

    def _grades(self) -> Grades:
        """The grades file of this exporter's destination, opened on first use (on the worker
        thread: the base class only knows the spool's place once its constructor ran)."""
        with self._grades_lock:
            if self._grades_store is None:
                spool = self.spool
                if spool is None:  # deliver() runs only from an open spool
                    raise RuntimeError("the UpTrain grades are kept beside a spool not open yet")
                path = spool.path.parent / f"{self.spool_stem}.grades"
                self._grades_store = Grades(path)
            return self._grades_store

    def _publish(self, evaluations: Sequence[Evaluation]) -> None:
        """Spans, histograms and log lines for each evaluation, and one dashboard post per
        evaluation name with its rows."""
        self._publisher.publish(evaluations)
        if self._dashboard is None:
            return
        by_shape: dict[Shape, list[Evaluation]] = {}
        for evaluation in evaluations:
            by_shape.setdefault(evaluation.request.shape, []).append(evaluation)
        for shape, group in by_shape.items():
            self._dashboard.post(self.project_name, shape.value, group)

    def _evaluate(
        self, requests: Sequence[EvaluationRequest]
    ) -> tuple[list[Evaluation], Exception | None]:
        """Grade what each request still lacks (a retry skips the checks graded before), and
        return the evaluations complete now, with the judge's failure if it failed part way.
        Requests needing the same checks of one shape go to the judge in one call."""
        groups: dict[tuple[Shape, tuple[str, ...]], list[EvaluationRequest]] = {}
        for request in requests:
            missing = self._grades().missing(request)
            if missing:
                groups.setdefault((request.shape, missing), []).append(request)
        failure: Exception | None = None
        for (shape, missing), group in groups.items():
            checks = [check for check in group[0].checks if check_name(check) in missing]
            start_ns = time.time_ns()
            try:
                scores = self._judge.evaluate(shape.value, [r.row for r in group], checks)
            except PartlyGraded as partly:
                self._grades().record(group, missing, partly.scores, start_ns, complete=False)
                failure = partly.error
                break
            except (RetryableError, PermanentError) as error:
                failure = error
                break
            self._grades().record(group, missing, scores, start_ns, complete=True)
        evaluations = [
            evaluation
            for request in requests
            if (evaluation := self._grades().evaluation(request)) is not None
        ]
        return evaluations, failure

    def _deliver_one_by_one(self, traces: Sequence[FinishedTrace]) -> DeliveryReport:
        delivered: set[str] = set()
        retryable: dict[str, str] = {}
        permanent: dict[str, str] = {}
        for trace in traces:
            try:
                report = self.deliver([trace])
            except RetryableError as error:
                retryable[trace_key(trace)] = error.reason
                continue
            except PermanentError as error:
                permanent[trace_key(trace)] = error.reason
                continue
            delivered |= report.delivered
            permanent.update(report.permanent)
        return DeliveryReport(
            delivered=frozenset(delivered), retryable=retryable, permanent=permanent
        )
