"""`otel-bridge tree FILE...`: print the traces of OTLP JSON lines files (ours, or an OpenTelemetry
Collector file exporter's) as trees of runs with types, durations, tokens and status."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from otel_bridge.traces import FinishedTrace

HELP = "print the traces in OTLP JSON lines files as trees (run, type, duration, tokens, status)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "files",
        nargs="+",
        type=Path,
        metavar="FILE",
        help="OTLP JSON lines file, as written by `otel-bridge demo`, `serve` or a Collector",
    )
    parser.add_argument(
        "--trace-id",
        metavar="HEX",
        help="only the trace(s) whose 32-hex-digit id starts with HEX",
    )
    parser.add_argument(
        "--errors",
        action="store_true",
        help="only traces with at least one failed span",
    )


def run(args: argparse.Namespace) -> int:
    try:
        # Imported here so `otel-bridge --help` works without the demo extra installed.
        from otel_bridge.demo.rendering import make_console, render_traces
        from otel_bridge.otlp import OTLPDecodeError, read_traces
    except ImportError as exc:
        print(
            f"otel-bridge tree: {exc.name} is missing; install it with "
            "`pip install 'otel-bridge[serve,demo]'`",
            file=sys.stderr,
        )
        return 2
    traces: list[FinishedTrace] = []
    for path in args.files:
        try:
            traces.extend(read_traces(path))
        except OSError as exc:
            print(f"otel-bridge tree: cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
            return 1
        except OTLPDecodeError as exc:
            print(f"otel-bridge tree: {path}: {exc}", file=sys.stderr)
            return 1
    selected = [trace for trace in traces if _selected(trace, args.trace_id, args.errors)]
    console = make_console()
    if not selected:
        console.print("no matching traces", style="yellow")
        return 1 if args.trace_id else 0
    console.print(render_traces(selected))
    return 0


def _selected(trace: FinishedTrace, trace_id_prefix: str | None, errors_only: bool) -> bool:
    if trace_id_prefix and not format(trace.trace_id, "032x").startswith(trace_id_prefix.lower()):
        return False
    return not errors_only or any(span.status_code == "ERROR" for span in trace.spans)
