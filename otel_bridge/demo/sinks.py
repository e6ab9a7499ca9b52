"""The sink exporters the demo runs: each one in its embedded default when it has one (ClearML's
offline session), the others only when the user configured them; one line each on the outcome."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from otel_bridge.demo.metrics import DeliveryCounts
from otel_bridge.exporter import TraceExporter
from otel_bridge.traces import FinishedTrace

__all__ = ["SinkPlan", "plan_sinks", "sink_report"]

# What a sink does with the demo's traces, e.g. "6 review tasks", from the finished traces.
WorkDescription = Callable[[Sequence[FinishedTrace]], str]
# Builds a sink's exporter from the environment, with where it delivers to; or returns None and
# what the user has to set.
_Builder = Callable[[Mapping[str, str], dict[str, Any]], tuple[TraceExporter | None, str]]


@dataclass(frozen=True, slots=True)
class SinkPlan:
    """One sink in this demo run: its exporter when enabled, else why not (`skip_hint`)."""

    title: str
    sink_name: str
    work: WorkDescription
    exporter: TraceExporter | None = None
    destination: str = ""
    skip_hint: str = ""


def plan_sinks(environ: Mapping[str, str], options: Mapping[str, Any]) -> list[SinkPlan]:
    """Build the exporters of every configured sink; `options` go to each `TraceExporter`."""
    return [
        _plan(title, sink_name, distribution, work, build, environ, dict(options))
        for title, sink_name, distribution, work, build in _SINKS
    ]


def sink_report(
    plan: SinkPlan, traces: Sequence[FinishedTrace], counts: Mapping[str, DeliveryCounts]
) -> str:
    """One line: what the sink did with this run's traces, or what to set to make it run."""
    work = plan.work(traces)
    if plan.exporter is None:
        return f"{plan.title}: {plan.skip_hint} to send {work}"
    delivered = counts.get(plan.sink_name, DeliveryCounts())
    if delivered.delivered >= len(traces) and not delivered.dead_lettered:
        return f"{plan.title}: sent {work} to {plan.destination}"
    problems = [f"{delivered.delivered} of {len(traces)} traces delivered to {plan.destination}"]
    if delivered.dead_lettered:
        problems.append(
            f"{delivered.dead_lettered} dead-lettered (see the log; "
            f"`otel-bridge replay --sink {plan.sink_name}` re-delivers them)"
        )
    if delivered.retried or delivered.delivered + delivered.dead_lettered < len(traces):
        problems.append("the rest stays in the spool and is retried on the next start")
    return f"{plan.title}: " + "; ".join(problems)


def _plan(
    title: str,
    sink_name: str,
    distribution: str,
    work: WorkDescription,
    build: _Builder,
    environ: Mapping[str, str],
    options: dict[str, Any],
) -> SinkPlan:
    try:
        exporter, detail = build(environ, options)
    except ImportError:
        return SinkPlan(title, sink_name, work, skip_hint=f"pip install {distribution}")
    except ValueError as exc:
        # The exporters name the argument or variable at fault in their constructor errors.
        return SinkPlan(title, sink_name, work, skip_hint=f"not configured ({exc}); fix that")
    if exporter is None:
        return SinkPlan(title, sink_name, work, skip_hint=detail)
    return SinkPlan(title, sink_name, work, exporter=exporter, destination=detail)


def _any_set(environ: Mapping[str, str], *variables: str) -> bool:
    return any(environ.get(variable) for variable in variables)


def _label_studio(
    environ: Mapping[str, str], options: dict[str, Any]
) -> tuple[TraceExporter | None, str]:
    labelstudio = import_module("otel_bridge_labelstudio")
    if not _any_set(environ, labelstudio.ENV_API_KEY, labelstudio.GENERIC_ENV_API_KEY):
        return None, f"set {labelstudio.GENERIC_ENV_URL} and {labelstudio.GENERIC_ENV_API_KEY}"
    exporter = labelstudio.LabelStudioSpanExporter(**options)
    settings = exporter.settings
    return exporter, f"project {settings.project_title!r} at {settings.url}"


def _uptrain(
    environ: Mapping[str, str], options: dict[str, Any]
) -> tuple[TraceExporter | None, str]:
    uptrain = import_module("otel_bridge_uptrain")
    keys = ("OTEL_BRIDGE_UPTRAIN_API_KEY", "OPENAI_API_KEY", "UPTRAIN_ACCESS_TOKEN")
    if not _any_set(environ, *keys):
        return None, (
            "set OPENAI_API_KEY (plus OTEL_BRIDGE_UPTRAIN_API_BASE for any OpenAI-compatible "
            "judge) or UPTRAIN_ACCESS_TOKEN with OTEL_BRIDGE_UPTRAIN_KEY_TYPE=uptrain"
        )
    exporter = uptrain.UpTrainSpanExporter(**options)
    return exporter, f"the {exporter.key_type} judge ({exporter.model}), scores as linked spans"


def _clearml(
    environ: Mapping[str, str], options: dict[str, Any]
) -> tuple[TraceExporter | None, str]:
    clearml = import_module("otel_bridge_clearml")
    exporter = clearml.ClearMLSpanExporter(**options)
    return exporter, "ClearML"


def _sagemaker(
    environ: Mapping[str, str], options: dict[str, Any]
) -> tuple[TraceExporter | None, str]:
    sagemaker = import_module("otel_bridge_sagemaker")
    settings = import_module("otel_bridge_sagemaker.settings")
    # Opt-in: the demo must not create experiments in an AWS account just because one is set up.
    if not _any_set(
        environ,
        settings.ENV_EXPERIMENT_NAME,
        settings.ENV_ENDPOINT_URL,
        settings.ENV_AWS_ENDPOINT_URL,
    ):
        return None, (
            f"set {settings.ENV_EXPERIMENT_NAME} (AWS credentials and region the usual way; "
            f"{settings.ENV_ENDPOINT_URL} for a SageMaker-compatible endpoint)"
        )
    exporter = sagemaker.SageMakerSpanExporter(**options)
    return exporter, f"SageMaker Experiments run {exporter.trial_component_name!r}"


def _review_tasks(traces: Sequence[FinishedTrace]) -> str:
    return f"{sum(len(trace.llm_calls()) for trace in traces)} review tasks"


def _evaluations(traces: Sequence[FinishedTrace]) -> str:
    rag_turns = sum(len(trace.rag_turns()) for trace in traces)
    return f"{len(traces)} traces for evaluation ({rag_turns} RAG turns)"


def _experiment_logs(traces: Sequence[FinishedTrace]) -> str:
    return f"{len(traces)} traces as run metrics, parameters and artifacts"


def _task_logs(traces: Sequence[FinishedTrace]) -> str:
    return f"{len(traces)} traces as tables, scalars and console logs"


_SINKS: tuple[tuple[str, str, str, WorkDescription, _Builder], ...] = (
    ("Label Studio", "labelstudio", "otel-bridge-labelstudio", _review_tasks, _label_studio),
    ("UpTrain", "uptrain", "otel-bridge-uptrain", _evaluations, _uptrain),
    ("ClearML", "clearml", "otel-bridge-clearml", _task_logs, _clearml),
    ("SageMaker", "sagemaker", "otel-bridge-sagemaker", _experiment_logs, _sagemaker),
)
