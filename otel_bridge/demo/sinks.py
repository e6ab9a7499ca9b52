"""The sink exporters the demo runs: each one in its embedded default when it has one (ClearML's
offline session), the others only when the user configured them; one line each on the outcome."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import import_module
from importlib.util import find_spec
from typing import Any

from otel_bridge.demo.metrics import DeliveryCounts
from otel_bridge.exporter import TraceExporter
from otel_bridge.langchain_views import FinishedTrace

__all__ = ["SinkPlan", "plan_sinks", "sink_report"]

# What a sink does with the demo's traces, e.g. "6 review tasks", from the finished traces.
_WorkDescription = Callable[[Sequence[FinishedTrace]], str]
# Builds a sink's exporter from the environment, with where it delivers to; or returns None and
# what the user has to set.
_Builder = Callable[[Mapping[str, str], dict[str, Any]], tuple[TraceExporter | None, str]]


@dataclass(frozen=True, slots=True)
class _SinkSpec:
    title: str
    sink_name: str  # the exporter's `sink_name`, which labels its delivery metrics
    distribution: str
    verb: str  # what the sink does, as in "set ... to <verb> <work>"
    verb_past: str
    work: _WorkDescription
    build: _Builder


@dataclass(frozen=True, slots=True)
class SinkPlan:
    """One sink in this demo run: its exporter when enabled, else why not (`skip_hint`)."""

    spec: _SinkSpec
    exporter: TraceExporter | None = None
    destination: str = ""
    skip_hint: str = ""


def plan_sinks(environ: Mapping[str, str], options: Mapping[str, Any]) -> list[SinkPlan]:
    """Build the exporters of every configured sink; `options` go to each `TraceExporter`."""
    return [_plan(spec, environ, dict(options)) for spec in _SINKS]


def sink_report(
    plan: SinkPlan, traces: Sequence[FinishedTrace], counts: Mapping[str, DeliveryCounts]
) -> str:
    """One line: what the sink did with this run's traces, or what to set to make it run."""
    spec = plan.spec
    work = spec.work(traces)
    if plan.exporter is None:
        return f"{spec.title}: {plan.skip_hint} to {spec.verb} {work}"
    delivered = counts.get(spec.sink_name, DeliveryCounts())
    if delivered.delivered >= len(traces) and not delivered.dead_lettered:
        return f"{spec.title}: {spec.verb_past} {work}: {plan.destination}"
    problems = [f"{delivered.delivered} of {len(traces)} traces delivered to {plan.destination}"]
    if delivered.dead_lettered:
        problems.append(
            f"{delivered.dead_lettered} dead-lettered (see the log; "
            f"`otel-bridge replay --sink {spec.sink_name}` re-delivers them)"
        )
    if delivered.delivered + delivered.dead_lettered < len(traces):
        problems.append("the rest stays in the spool and is retried on the next start")
    return f"{spec.title}: " + "; ".join(problems)


def _plan(spec: _SinkSpec, environ: Mapping[str, str], options: dict[str, Any]) -> SinkPlan:
    try:
        exporter, detail = spec.build(environ, options)
    except ImportError:
        return SinkPlan(spec, skip_hint=f"pip install {spec.distribution}")
    except ValueError as exc:
        # The exporters name the argument or variable at fault in their constructor errors.
        return SinkPlan(spec, skip_hint=f"fix the configuration ({exc})")
    except Exception as exc:
        # One sink that cannot start must not stop the demo of the others.
        return SinkPlan(spec, skip_hint=f"could not start ({type(exc).__name__}: {exc}); fix that")
    if exporter is None:
        return SinkPlan(spec, skip_hint=detail)
    return SinkPlan(spec, exporter=exporter, destination=detail)


def _any_set(environ: Mapping[str, str], *variables: str) -> bool:
    return any(environ.get(variable) for variable in variables)


def _installed(module: str) -> None:
    # Checked without importing: a sink's client library can take seconds to import, which the
    # demo only pays for the sinks it runs.
    if find_spec(module) is None:
        raise ImportError(f"{module} is not installed", name=module)


def _label_studio(
    environ: Mapping[str, str], options: dict[str, Any]
) -> tuple[TraceExporter | None, str]:
    _installed("otel_bridge_labelstudio")
    if not _any_set(environ, "OTEL_BRIDGE_LABELSTUDIO_API_KEY", "LABEL_STUDIO_API_KEY"):
        return None, "set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY"
    labelstudio = import_module("otel_bridge_labelstudio")
    exporter = labelstudio.LabelStudioSpanExporter(**options)
    settings = exporter.settings
    return exporter, f"project {settings.project_title!r} at {settings.url}"


def _uptrain(
    environ: Mapping[str, str], options: dict[str, Any]
) -> tuple[TraceExporter | None, str]:
    _installed("otel_bridge_uptrain")
    keys = ("OTEL_BRIDGE_UPTRAIN_API_KEY", "OPENAI_API_KEY", "UPTRAIN_ACCESS_TOKEN")
    if not _any_set(environ, *keys):
        return None, (
            "set OPENAI_API_KEY (or OTEL_BRIDGE_UPTRAIN_API_KEY and OTEL_BRIDGE_UPTRAIN_API_BASE "
            "for any OpenAI-compatible judge)"
        )
    uptrain = import_module("otel_bridge_uptrain")
    exporter = uptrain.UpTrainSpanExporter(**options)
    return exporter, f"{exporter.model} as the judge, scores as spans linked to each trace"


def _clearml(
    environ: Mapping[str, str], options: dict[str, Any]
) -> tuple[TraceExporter | None, str]:
    _installed("otel_bridge_clearml")
    clearml = import_module("otel_bridge_clearml")
    # ClearML and the exporter log the task's bookkeeping (repository detection, the offline
    # folder) at INFO and WARNING; the demo's ClearML line says where the session went.
    logging.getLogger("clearml").setLevel(logging.ERROR)
    logging.getLogger("otel_bridge_clearml.transport").setLevel(logging.ERROR)
    exporter = clearml.ClearMLSpanExporter(**options)
    return exporter, _clearml_destination(exporter)


def _clearml_destination(exporter: Any) -> str:
    task = exporter.task
    if not task.is_offline():
        return f"task {task.name!r} on the ClearML server"
    return (
        f"offline task {task.name!r} in {task.get_offline_mode_folder()} (zipped there at exit; "
        "import it into a server with clearml.Task.import_offline_session)"
    )


def _sagemaker(
    environ: Mapping[str, str], options: dict[str, Any]
) -> tuple[TraceExporter | None, str]:
    _installed("otel_bridge_sagemaker")
    # Opt-in: the demo must not create experiments in an AWS account just because one is set up.
    if not _any_set(
        environ,
        "OTEL_BRIDGE_SAGEMAKER_EXPERIMENT_NAME",
        "OTEL_BRIDGE_SAGEMAKER_ENDPOINT_URL",
        "AWS_ENDPOINT_URL",
    ):
        return None, (
            "set OTEL_BRIDGE_SAGEMAKER_EXPERIMENT_NAME (AWS credentials and region the usual "
            "way, or OTEL_BRIDGE_SAGEMAKER_ENDPOINT_URL for a SageMaker-compatible endpoint)"
        )
    sagemaker = import_module("otel_bridge_sagemaker")
    exporter = sagemaker.SageMakerSpanExporter(**options)
    return exporter, f"metrics, parameters and artifacts of run {exporter.trial_component_name!r}"


def _review_tasks(traces: Sequence[FinishedTrace]) -> str:
    return f"{sum(len(trace.llm_calls()) for trace in traces)} review tasks"


def _evaluations(traces: Sequence[FinishedTrace]) -> str:
    # The RAG views are UpTrain's: without the sink (or its client) installed, only the traces
    # are counted.
    try:
        uptrain = import_module("otel_bridge_uptrain")
    except ImportError:
        return _trace_count(traces)
    turns = sum(len(uptrain.rag_turns(trace)) for trace in traces)
    return f"{len(traces)} traces ({turns} RAG turns)"


def _trace_count(traces: Sequence[FinishedTrace]) -> str:
    return f"{len(traces)} traces"


_SINKS = (
    _SinkSpec(
        "Label Studio",
        "labelstudio",
        "otel-bridge-labelstudio",
        "send",
        "sent",
        _review_tasks,
        _label_studio,
    ),
    _SinkSpec(
        "UpTrain", "uptrain", "otel-bridge-uptrain", "evaluate", "evaluated", _evaluations, _uptrain
    ),
    _SinkSpec("ClearML", "clearml", "otel-bridge-clearml", "log", "logged", _trace_count, _clearml),
    _SinkSpec(
        "SageMaker",
        "sagemaker",
        "otel-bridge-sagemaker",
        "log",
        "logged",
        _trace_count,
        _sagemaker,
    ),
)
