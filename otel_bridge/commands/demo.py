"""`otel-bridge demo`: run a small LangChain application traced end to end, with no accounts and
no API keys, and show what the bridge made of it."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from otel_bridge.commands import EXIT_USAGE

HELP = (
    "run a small LangChain app (RAG chain, LangGraph agent, streaming, one failing step) traced "
    "end to end, and show the trace trees, GenAI metrics and what each sink did"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--output",
        type=Path,
        metavar="FILE",
        help="OTLP JSON lines file the traces are appended to "
        "(default: $OTEL_BRIDGE_FILE_PATH, else otel-bridge-traces.jsonl)",
    )
    parser.add_argument(
        "--spool-dir",
        type=Path,
        metavar="DIR",
        help="directory of the exporters' durable spools (default: the exporters' own default)",
    )
    parser.add_argument(
        "--fake-model",
        action="store_true",
        help="use the local fake chat model even when a provider's API key is set",
    )
    parser.add_argument(
        "--no-sinks",
        action="store_true",
        help="write the file (and OTLP) only; do not run the Label Studio/UpTrain/ClearML/"
        "SageMaker exporters",
    )


def run(args: argparse.Namespace) -> int:
    from otel_bridge.rendering import make_console

    console = make_console()
    try:
        with console.status("Loading LangChain, LangGraph and OpenTelemetry…"):
            # Imported here so the other commands work without the demo extra.
            from otel_bridge.demo.runner import DemoOptions, run_demo
    except ImportError as exc:
        return _missing(exc)
    options = DemoOptions(
        output=args.output,
        spool_dir=args.spool_dir,
        force_fake_model=args.fake_model,
        run_sinks=not args.no_sinks,
    )
    return run_demo(options, console, os.environ)


def _missing(error: ImportError) -> int:
    print(
        f"otel-bridge demo: {error.name} is missing; install the demo extra: "
        "pip install 'otel-bridge[demo]' (in a checkout: pip install '.[demo]')",
        file=sys.stderr,
    )
    return EXIT_USAGE
