"""`otel-bridge tree FILE...`: print the traces of trace files (OTLP JSON lines as ours or a
Collector's file exporter writes them, or its length-prefixed protobuf; plain or gzip) as trees
of runs with types, durations, tokens and status."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from otel_bridge.commands import EXIT_FAILED, EXIT_OK, EXIT_USAGE

if TYPE_CHECKING:
    from otel_bridge.langchain_views import FinishedTrace

HELP = (
    "print the traces of OTLP files (JSON lines or the Collector file exporter's protobuf, "
    "plain or gzip) as trees (run, type, duration, tokens, status)"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "files",
        nargs="+",
        type=Path,
        metavar="FILE",
        help="trace file written by `otel-bridge demo`, `serve`'s file sink or a Collector's file "
        "exporter (format json or proto), optionally gzip-compressed",
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
    # Imported here: every `otel-bridge` command (and --help) loads this module.
    from otel_bridge.rendering import make_console, render_traces
    from otel_bridge.trace_files import TraceFileError, read_trace_file

    traces: list[FinishedTrace] = []
    for path in args.files:
        try:
            traces.extend(read_trace_file(path))
        except FileNotFoundError:
            return _error(f"{path}: no such file", EXIT_USAGE)
        except IsADirectoryError:
            return _error(f"{path}: is a directory, not a trace file", EXIT_USAGE)
        except OSError as exc:
            return _error(f"cannot read {path}: {exc.strerror or exc}", EXIT_FAILED)
        except TraceFileError as exc:
            return _error(f"{path}: {exc}", EXIT_FAILED)
    selected = [trace for trace in traces if _selected(trace, args.trace_id, args.errors)]
    console = make_console()
    if not selected:
        console.print("no matching traces", style="yellow")
        return EXIT_FAILED if args.trace_id else EXIT_OK
    console.print(render_traces(selected))
    return EXIT_OK


def _error(message: str, code: int) -> int:
    print(f"otel-bridge tree: {message}", file=sys.stderr)
    return code


def _selected(trace: FinishedTrace, trace_id_prefix: str | None, errors_only: bool) -> bool:
    if trace_id_prefix and not format(trace.trace_id, "032x").startswith(trace_id_prefix.lower()):
        return False
    return not errors_only or any(span.status_code == "ERROR" for span in trace.spans)
