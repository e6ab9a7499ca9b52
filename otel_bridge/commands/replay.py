"""`otel-bridge replay --sink NAME`: move a sink's dead-lettered traces back to its queue and
deliver them now (the sink's idempotency check runs first, so nothing is stored twice), with a
progress bar on a terminal and a summary at the end. `otel-bridge replay --list` lists what every
spool file in the directory holds and for which destination."""

from __future__ import annotations

import argparse
import sys
import threading
import time
from importlib import import_module
from pathlib import Path
from typing import Any

from otel_bridge.commands import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from otel_bridge.exporter import TraceExporter, default_spool_dir
from otel_bridge.plugins import sink_entry_point
from otel_bridge.spool import Spool, SpoolLockedError, describe_destination
from otel_bridge.spool_survey import survey

HELP = "re-deliver a sink's dead-lettered traces (after fixing what made the sink reject them)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sink",
        metavar="NAME",
        help="the sink's exporter entry point name (labelstudio, uptrain, clearml, sagemaker),"
        " or module:Class of a TraceExporter subclass; it is built from its environment variables",
    )
    parser.add_argument(
        "--spool-dir",
        type=Path,
        metavar="DIR",
        help="the spool directory (default: $OTEL_BRIDGE_SPOOL_DIR, else ~/.cache/otel-bridge/spool)",
    )
    parser.add_argument(
        "--spool-name",
        metavar="NAME",
        help="the spool name the exporter was given (default: the sink's name; the file adds"
        " a digest of the destination the sink's settings name)",
    )
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for delivery (default: 60)"
    )
    parser.add_argument(
        "--list",
        action="store_true",
        help="only list: without --sink, every spool file with its destination and what it holds;"
        " with --sink, that sink's dead letters and their reasons",
    )


def run(args: argparse.Namespace) -> int:
    if args.sink is None:
        if args.list:
            return _list_spools(args.spool_dir or default_spool_dir())
        print("otel-bridge replay: --sink NAME is required (or --list alone)", file=sys.stderr)
        return EXIT_USAGE
    try:
        exporter_class = _exporter_class(args.sink)
    except LookupError as error:
        print(f"otel-bridge replay: {error}", file=sys.stderr)
        return EXIT_USAGE
    options: dict[str, Any] = {}
    if args.spool_dir is not None:
        options["spool_dir"] = args.spool_dir
    if args.spool_name:
        options["spool_name"] = args.spool_name
    try:
        exporter = exporter_class(**options)
    except SpoolLockedError as error:
        print(f"otel-bridge replay: cannot open the {args.sink} exporter: {error}", file=sys.stderr)
        return EXIT_FAILED
    except ValueError as error:  # the exporters name a missing or bad setting this way
        print(f"otel-bridge replay: {args.sink}: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return _replay(exporter, args)
    finally:
        exporter.shutdown()


def _replay(exporter: TraceExporter, args: argparse.Namespace) -> int:
    spool = exporter.spool
    if spool is None:  # its disk is full or read-only; the exporter said why
        print(f"otel-bridge replay: cannot open the {args.sink} spool", file=sys.stderr)
        return EXIT_FAILED
    expected = f"{exporter.spool_stem}.sqlite3"
    if spool.path.name != expected:
        print(
            f"otel-bridge replay: {spool.path.with_name(expected)} is in use by a running"
            " exporter; stop it first (it keeps delivering what is queued)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    dead = spool.dead_letters()
    for letter in dead:
        print(f"{letter.key}  attempts={letter.attempts}  {letter.reason}")
    if args.list or not dead:
        print(f"{len(dead)} dead letter(s) in {spool.path}")
        return EXIT_OK
    moved = spool.requeue_dead_letters(exporter.clock.now())
    queued_traces, queued_spans = spool.outbox_totals()
    started = time.monotonic()
    delivered = _flush_showing_progress(exporter, spool, args.timeout, queued_traces, queued_spans)
    elapsed = time.monotonic() - started
    counts = spool.counts()
    left_traces, left_spans = spool.outbox_totals()
    sent_spans = max(queued_spans - left_spans, 0)
    print(
        f"re-queued {moved} trace(s); {counts.outbox} still queued,"
        f" {counts.dead_letters} dead-lettered again ({spool.path})"
    )
    print(
        f"{max(queued_traces - left_traces, 0)} trace(s), {sent_spans} span(s) left the queue"
        f" in {elapsed:.1f} s ({sent_spans / max(elapsed, 1e-3):.0f} spans/s)"
    )
    return EXIT_OK if delivered and counts.dead_letters == 0 else EXIT_FAILED


def _list_spools(directory: Path) -> int:
    """One line per spool file: name, state, what it holds, destination."""
    spools = survey(directory)
    for summary in spools:
        if summary.problem:
            print(f"{summary.path.name}  {summary.problem}")
            continue
        where = (
            "destination not recorded (older otel-bridge)"
            if summary.destination is None
            else describe_destination(summary.destination)
        )
        state = "in use" if summary.in_use else "idle"
        print(
            f"{summary.path.name}  {state}  queued={summary.queued} assembling={summary.pending}"
            f" dead={summary.dead_letters}  {where}"
        )
    held = sum(summary.held for summary in spools)
    print(f"{len(spools)} spool file(s), {held} trace(s) held, in {directory}")
    return EXIT_OK


def _flush_showing_progress(
    exporter: TraceExporter, spool: Spool, timeout: float, traces: int, spans: int
) -> bool:
    """`force_flush` on a thread of its own while a progress bar on stderr follows the queue:
    traces done of `traces`, spans/s, time left. The bar draws only on a terminal."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    outcome: list[bool] = []
    flush = threading.Thread(
        target=lambda: outcome.append(exporter.force_flush(int(timeout * 1000))),
        name="otel-bridge-replay",
        daemon=True,
    )
    started = time.monotonic()
    columns = (
        TextColumn("replaying"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("traces, {task.fields[rate]} spans/s"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True)) as progress:
        task = progress.add_task("replay", total=traces, rate="0")
        flush.start()
        while flush.is_alive():
            flush.join(0.2)
            left_traces, left_spans = spool.outbox_totals()
            rate = (spans - left_spans) / max(time.monotonic() - started, 1e-3)
            progress.update(task, completed=traces - left_traces, rate=f"{rate:.0f}")
    return bool(outcome and outcome[0])


def _exporter_class(name: str) -> type[TraceExporter]:
    if ":" in name:
        module_name, _, class_name = name.partition(":")
        try:
            found = getattr(import_module(module_name), class_name)
        except (ImportError, AttributeError) as error:
            raise LookupError(f"cannot import {name}: {error}") from None
    else:
        entry_point = sink_entry_point(name)
        try:
            found = entry_point.load()
        except ImportError as error:
            raise LookupError(
                f"cannot load the {name} exporter ({entry_point.value}): {error}"
            ) from None
    if not (isinstance(found, type) and issubclass(found, TraceExporter)):
        raise LookupError(f"{name} is not a TraceExporter (it has no spool to replay)")
    return found
