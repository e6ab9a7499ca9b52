"""`otel-bridge demo` end to end: build the pipeline, run the app with one `OTelCallbackHandler`,
then show the trace trees, the GenAI metrics, where the traces went and what each sink did."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableConfig
from rich.console import Console

from otel_bridge.demo.app import build_app
from otel_bridge.demo.metrics import render_usage, summarize_delivery, summarize_genai_metrics
from otel_bridge.demo.models import choose_chat_model
from otel_bridge.demo.pipeline import DemoPipeline, build_pipeline, otlp_destination
from otel_bridge.demo.scenarios import ScenarioOutcome, run_scenarios
from otel_bridge.demo.sinks import plan_sinks, sink_report
from otel_bridge.exporter import TraceExporter
from otel_bridge.file_sink import FileSpanExporter
from otel_bridge.handler import OTelCallbackHandler
from otel_bridge.langchain_views import FinishedTrace
from otel_bridge.otlp import OTLPDecodeError, read_traces
from otel_bridge.rendering import render_traces

__all__ = ["DemoOptions", "run_demo"]

# Delivery is local (a file, ClearML's offline folder) unless the user configured a server;
# this bounds how long the demo waits for a slow or unreachable one before reporting it (what
# is not delivered by then stays in the spool for the next start).
_FLUSH_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """What `otel-bridge demo` was asked for on its command line."""

    output: Path | None = None  # None: OTEL_BRIDGE_FILE_PATH, else otel-bridge-traces.jsonl
    spool_dir: Path | None = None
    force_fake_model: bool = False
    run_sinks: bool = True


def run_demo(options: DemoOptions, console: Console, environ: Mapping[str, str]) -> int:
    """Run the demo; 0 when every request behaved as planned and the traces reached the file."""
    # The demo is the application here, so it decides what is logged: warnings and errors. Set
    # first, because some SDKs (sagemaker's) call basicConfig(level=INFO) when imported.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    console.rule("[bold]otel-bridge demo")
    otlp = otlp_destination(environ)
    pipeline = build_pipeline(otlp)
    # The exporters report their deliveries as metrics; the sink lines are read from those.
    exporter_options: dict[str, Any] = {"meter_provider": pipeline.meter_provider}
    if options.spool_dir is not None:
        exporter_options["spool_dir"] = options.spool_dir
    with console.status("Starting the exporters (file, then each configured sink)…"):
        file_exporter = FileSpanExporter(options.output, **exporter_options)
        sinks = plan_sinks(environ, exporter_options) if options.run_sinks else []
    exporters = [file_exporter, *(plan.exporter for plan in sinks if plan.exporter is not None)]
    pipeline.add_exporters(exporters)
    choice = choose_chat_model(
        environ, force_fake=options.force_fake_model, tracer_provider=pipeline.tracer_provider
    )
    console.print(f"[dim]model:[/dim] {choice.description}", highlight=False)
    try:
        handler = OTelCallbackHandler(
            tracer_provider=pipeline.tracer_provider, meter_provider=pipeline.meter_provider
        )
        config: RunnableConfig = {
            "callbacks": [handler],
            "tags": ["otel-bridge-demo"],
            "metadata": {"session_id": f"demo-{uuid.uuid4().hex[:12]}"},
        }
        outcomes = run_scenarios(build_app(choice.model), config, console)
        with console.status("Exporting the traces and delivering them to the sinks…"):
            _flush(pipeline, exporters)
        traces = pipeline.finished_traces()
        console.rule("[bold]Traces")
        console.print(render_traces(traces))
        console.print(
            render_usage(summarize_genai_metrics(pipeline.metric_reader.get_metrics_data()))
        )
        console.rule("[bold]Where the traces went")
        written = _report_file(file_exporter.path, traces, console)
        if otlp is None:
            console.print(
                "OTLP: [dim]set OTEL_EXPORTER_OTLP_ENDPOINT to also send them to a Collector "
                "or any OTLP backend[/dim]"
            )
        else:
            console.print(f"OTLP: sent to {otlp.endpoint} ({otlp.protocol})", highlight=False)
        deliveries = summarize_delivery(pipeline.metric_reader.get_metrics_data())
        for plan in sinks:
            console.print(sink_report(plan, traces, deliveries), highlight=False)
    finally:
        with console.status("Shutting down the exporters…"):
            pipeline.shutdown()
    return _exit_code(outcomes, written, console)


def _flush(pipeline: DemoPipeline, exporters: Sequence[TraceExporter]) -> None:
    # The provider hands the batched spans to the exporters; each exporter then delivers the
    # traces it assembled (the SDK's processors do not forward force_flush to exporters), all
    # at once so that one slow sink does not hold back the others. What is not delivered in
    # time shows in the sink lines, read from the delivery metrics.
    timeout_millis = int(_FLUSH_TIMEOUT_S * 1000)
    pipeline.tracer_provider.force_flush(timeout_millis)
    with ThreadPoolExecutor(max_workers=max(1, len(exporters))) as pool:
        for exporter in exporters:
            pool.submit(exporter.force_flush, timeout_millis)


def _report_file(path: Path, traces: Sequence[FinishedTrace], console: Console) -> bool:
    """Read the file back and say how many of this run's traces are in it."""
    expected = {trace.trace_id for trace in traces}
    try:
        found = {trace.trace_id for trace in read_traces(path)} & expected
    except (OSError, OTLPDecodeError) as exc:
        console.print(f"[bold red]OTLP JSON file: cannot read {path} back: {exc}", highlight=False)
        return False
    spans = sum(len(trace.spans) for trace in traces if trace.trace_id in found)
    console.print(
        f"OTLP JSON file: appended {len(found)} traces ({spans} spans) to {path.absolute()}",
        highlight=False,
    )
    shown = path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path
    console.print(f"  [dim]read them back with:[/dim] otel-bridge tree {shown}", highlight=False)
    return found == expected


def _exit_code(outcomes: Sequence[ScenarioOutcome], written: bool, console: Console) -> int:
    unexpected = [outcome for outcome in outcomes if not outcome.as_planned]
    for outcome in unexpected:
        console.print(
            f"[bold red]{outcome.title}: did not go as planned "
            f"({type(outcome.error).__name__ if outcome.error else 'no error'})",
            highlight=False,
        )
    if not written:
        console.print("[bold red]not every trace reached the OTLP JSON file")
    return 0 if not unexpected and written else 1
