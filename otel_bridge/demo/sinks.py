"""The sink exporters the demo runs, found through their entry points (`otel_bridge.plugins`):
each one that runs with no account (ClearML's offline session), the others only when the user
configured them; one line each on the outcome, in the sink's own words (its `SINK_REPORT`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from otel_bridge.demo.metrics import DeliveryCounts
from otel_bridge.exporter import TraceExporter
from otel_bridge.langchain_views import FinishedTrace
from otel_bridge.plugins import InstalledSink, SinkReport, count_traces, installed_sinks

__all__ = ["SinkPlan", "plan_sinks", "sink_report"]


def _review_tasks(traces: Sequence[FinishedTrace]) -> str:
    return f"{sum(len(trace.llm_calls()) for trace in traces)} review tasks"


def _evaluations(traces: Sequence[FinishedTrace]) -> str:
    # The RAG views are UpTrain's: with its package there (its client may be missing), the RAG
    # turns are counted as the sink counts them; without it, only the traces.
    try:
        uptrain = import_module("otel_bridge_uptrain")
    except ImportError:
        return count_traces(traces)
    turns = sum(len(uptrain.rag_turns(trace)) for trace in traces)
    return f"{len(traces)} traces ({turns} RAG turns)"


# The project's own sinks, in the order the demo reports them, and what to say about each one
# that is not installed (its distribution to install). Installed sinks speak for themselves.
_OWN_SINKS: tuple[tuple[str, str, SinkReport], ...] = (
    (
        "labelstudio",
        "otel-bridge-labelstudio",
        SinkReport("Label Studio", "send", "sent", _review_tasks),
    ),
    (
        "uptrain",
        "otel-bridge-uptrain",
        SinkReport("UpTrain", "evaluate", "evaluated", _evaluations),
    ),
    ("clearml", "otel-bridge-clearml", SinkReport("ClearML", "log", "logged", count_traces)),
    ("sagemaker", "otel-bridge-sagemaker", SinkReport("SageMaker", "log", "logged", count_traces)),
)


@dataclass(frozen=True, slots=True)
class SinkPlan:
    """One sink in this demo run: its exporter when enabled, else why not (`skip_hint`)."""

    name: str  # the entry point's name, which is also the exporter's `sink_name`
    report: SinkReport
    exporter: TraceExporter | None = None
    destination: str = ""
    skip_hint: str = ""


def plan_sinks(environ: Mapping[str, str], options: Mapping[str, Any]) -> list[SinkPlan]:
    """Build the exporters of every configured sink; `options` go to each `TraceExporter`.
    Sinks without a `SINK_REPORT` (the core's `file` sink, which the demo runs on its own) are
    left out."""
    installed = {sink.name: sink for sink in installed_sinks() if sink.report is not None}
    plans = []
    for name, distribution, report in _OWN_SINKS:
        sink = installed.pop(name, None)
        if sink is None:
            plans.append(SinkPlan(name, report, skip_hint=f"pip install {distribution}"))
        else:
            plans.append(_plan(sink, environ, dict(options)))
    plans.extend(_plan(sink, environ, dict(options)) for sink in installed.values())
    return plans


def sink_report(
    plan: SinkPlan, traces: Sequence[FinishedTrace], counts: Mapping[str, DeliveryCounts]
) -> str:
    """One line: what the sink did with this run's traces, or what to set to make it run."""
    report = plan.report
    work = report.work(traces)
    if plan.exporter is None:
        return f"{report.title}: {plan.skip_hint} to {report.verb} {work}"
    sink_name = plan.exporter.sink_name
    delivered = counts.get(sink_name, DeliveryCounts())
    if delivered.delivered >= len(traces) and not delivered.dead_lettered:
        return f"{report.title}: {report.verb_past} {work}: {plan.destination}"
    problems = [f"{delivered.delivered} of {len(traces)} traces delivered to {plan.destination}"]
    if delivered.dead_lettered:
        problems.append(
            f"{delivered.dead_lettered} dead-lettered (see the log; "
            f"`otel-bridge replay --sink {sink_name}` re-delivers them)"
        )
    if delivered.delivered + delivered.dead_lettered < len(traces):
        problems.append("the rest stays in the spool and is retried on the next start")
    return f"{report.title}: " + "; ".join(problems)


def _plan(sink: InstalledSink, environ: Mapping[str, str], options: dict[str, Any]) -> SinkPlan:
    report = sink.report
    assert report is not None  # plan_sinks keeps only the sinks with a report
    distribution = sink.entry_point.dist.name if sink.entry_point.dist else sink.name
    try:
        needs = report.needs(environ)
        if needs:
            return SinkPlan(sink.name, report, skip_hint=needs)
        for logger in report.quiet_loggers:
            logging.getLogger(logger).setLevel(logging.ERROR)
        exporter = sink.entry_point.load()(**options)
        destination = report.destination(exporter)
    except ImportError:
        return SinkPlan(sink.name, report, skip_hint=f"pip install {distribution}")
    except ValueError as exc:
        # The exporters name the argument or variable at fault in their constructor errors.
        return SinkPlan(sink.name, report, skip_hint=f"fix the configuration ({exc})")
    except Exception as exc:
        # One sink that cannot start must not stop the demo of the others.
        return SinkPlan(
            sink.name,
            report,
            skip_hint=f"could not start ({type(exc).__name__}: {exc}); fix that",
        )
    return SinkPlan(sink.name, report, exporter=exporter, destination=destination)
