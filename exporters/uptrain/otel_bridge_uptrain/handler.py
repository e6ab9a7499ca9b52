"""`UpTrainCallbackHandler`: the drop-in for langchain_community's handler of that name, whose
runs feed an `UpTrainSpanExporter`.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID

from otel_bridge.sink_handler import SinkCallbackHandler, drop_in_exporter_options
from otel_bridge_uptrain._judge import LocalJudge
from otel_bridge_uptrain._selection import Check, CheckPlan
from otel_bridge_uptrain.exporter import UpTrainSpanExporter

# What the seed evaluates: the trace shapes it knows. Plain LLM/chat calls get no checks unless
# asked for (exporter_options={"checks": CheckPlan()} grades them too).
SEED_CHECKS = CheckPlan(llm=())

_logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider


class UpTrainDataSchema:
    """The seed's `schema` attribute, with its fields. `uptrain_results[project_name]` collects
    the rows `uptrain_evaluate` returns; the per-run fields (query, context, ...) stay empty,
    since traces are evaluated from their spans, with no state shared between runs."""

    def __init__(self, project_name: str) -> None:
        self.project_name = project_name
        self.uptrain_results: defaultdict[str, list[Any]] = defaultdict(list)
        self.eval_types: set[str] = set()
        self.query = ""
        self.context = ""
        self.response = ""
        self.old_context: list[str] = []
        self.new_context: list[str] = []
        self.context_conciseness_run_id = UUID(int=0)
        self.multi_queries: list[str] = []
        self.multi_query_run_id = UUID(int=0)
        self.multi_query_daugher_run_id = UUID(int=0)


class UpTrainCallbackHandler(SinkCallbackHandler):
    """Takes the seed handler's arguments; evaluation happens off the app's thread, per trace.

    Like the seed, it evaluates RAG turns, multi-query retrievals and context compressions;
    plain LLM/chat calls only when `exporter_options={"checks": CheckPlan()}` (or a plan of your
    own) asks for it. The seed's `log_results`, `schema`, `uptrain_client` and
    `uptrain_evaluate(evaluation_name, data, checks)` work as there. Like the seed's `EvalLLM`,
    the constructor asks the judge for its models with the key and raises `ValueError` ("OpenAI
    API Key is invalid") when it is refused, `ConnectionError` when the judge cannot be reached;
    `check_connection=False` skips that (a refused key is then one ERROR, logged beside the app).

    `exporter_options` go to `UpTrainSpanExporter` (e.g. `api_base`, `checks`, `spool_dir`);
    other keyword arguments go to `OTelCallbackHandler`. An argument left out resolves as the
    exporter's does (OTEL_BRIDGE_UPTRAIN_<SETTING>, then the seed's default: "langchain",
    "openai", "gpt-3.5-turbo", True). Like the seed, it evaluates the runs this handler is
    passed (see `SinkCallbackHandler`); scores are emitted through `tracer_provider`, else the
    app's global one.
    """

    def __init__(
        self,
        *,
        project_name: str | None = None,
        key_type: str | None = None,
        api_key: str | None = None,
        model: str | None = None,
        log_results: bool | None = None,
        check_connection: bool = True,
        tracer_provider: TracerProvider | None = None,
        exporter_options: Mapping[str, Any] | None = None,
        **handler_options: Any,
    ) -> None:
        options = drop_in_exporter_options(
            UpTrainSpanExporter.sink_name, exporter_options, checks=SEED_CHECKS
        )
        exporter = UpTrainSpanExporter(
            project_name=project_name,
            key_type=key_type,
            api_key=api_key,
            model=model,
            log_results=log_results,
            tracer_provider=tracer_provider,
            **options,
        )
        judge = exporter.judge
        if check_connection and isinstance(judge, LocalJudge):
            # As the seed's EvalLLM: the key is checked (GET /models) here, and a refused key
            # or an unreachable judge fails the constructor.
            try:
                judge.check_key()
            except BaseException:
                exporter.shutdown()
                raise
        super().__init__(exporter, tracer_provider=tracer_provider, **handler_options)
        self.exporter: UpTrainSpanExporter = exporter
        self.schema = UpTrainDataSchema(exporter.project_name)
        self.first_score_printed_flag = False
        if not check_connection and isinstance(judge, LocalJudge):
            # Not checked here: the same question beside the app, and a refused key is one
            # ERROR naming the fix; the traces wait in the spool until the key works.
            threading.Thread(
                target=_report_refused_key,
                args=(judge,),
                name="otel-bridge-uptrain-key",
                daemon=True,
            ).start()

    @property
    def log_results(self) -> bool:
        return self.exporter.log_results

    @property
    def uptrain_client(self) -> Any:
        """The uptrain client (`EvalLLM`, or `APIClient` for key_type="uptrain")."""
        return self.exporter.uptrain_client

    def uptrain_evaluate(
        self, evaluation_name: str, data: list[dict[str, Any]], checks: Sequence[Check]
    ) -> None:
        """The seed's method: evaluate `data` now, on this thread; the rows with their scores are
        appended to `schema.uptrain_results[project_name]`, and logged with `log_results`."""
        rows = self.exporter.evaluate_rows(evaluation_name, data, checks)
        self.schema.uptrain_results[self.schema.project_name].append(rows)


def _report_refused_key(judge: LocalJudge) -> None:
    try:
        refused = judge.key_refused()
    except Exception:  # a check that fails is only a check not made
        _logger.debug("UpTrain key check failed", exc_info=True)
        return
    if refused:
        _logger.error(
            "UpTrain: the judge at %s refused the API key (%s): evaluations wait in the spool"
            " until it works; set api_key (or OTEL_BRIDGE_UPTRAIN_API_KEY / OPENAI_API_KEY) to a"
            " valid key",
            judge.api_base or "api.openai.com",
            refused,
        )
