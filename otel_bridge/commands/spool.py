"""`otel-bridge spool check PATH` and `otel-bridge spool salvage PATH [--into SPOOL]`: is a spool
file sound, and queue again whatever is still readable in a damaged one.

Exit codes: 0 the file is sound (salvage: everything in it was recovered), 1 it is damaged
(salvage: something could not be read, or the target could not be written), 2 usage.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from otel_bridge import spool as spool_module
from otel_bridge.salvage import copy_readable
from otel_bridge.spool import (
    Spool,
    SpoolCounts,
    SpoolDestinationError,
    SpoolFormatError,
    SpoolLockedError,
)
from otel_bridge.spool_files import HELD_SUFFIX, check_file
from otel_bridge.spool_survey import summarize

HELP = "check a spool file, or queue again what is readable in a damaged one"

# The name a damaged spool is moved to: <name>.corrupt-<UTC time>[-n]
_CORRUPT_NAME = re.compile(r"^(?P<original>.+)\.corrupt-\d{8}T\d{6}Z(-\d+)?$")
# The exporter that opens the target spool applies its own bounds; adopting applies none.
_UNBOUNDED = {"max_bytes": 1 << 62, "max_traces": 1 << 62, "max_spans_per_trace": 1 << 62}
_MAX_SIBLINGS = 128  # as many as an exporter looks at for leftovers (exporter._MAX_SPOOL_SUFFIX)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = actions.add_parser("check", help="check a spool file: 0 sound, 1 damaged")
    check.add_argument("path", type=Path, metavar="PATH", help="the spool's .sqlite3 file")
    salvage = actions.add_parser(
        "salvage", help="queue the readable traces of a damaged spool file again"
    )
    salvage.add_argument(
        "path", type=Path, metavar="PATH", help="the damaged file (e.g. file.sqlite3.corrupt-...)"
    )
    salvage.add_argument(
        "--into",
        type=Path,
        metavar="SPOOL",
        help="the spool file to queue them in (default: the one PATH was moved away from)",
    )


def run(args: argparse.Namespace) -> int:
    path: Path = args.path
    if not path.is_file():
        print(f"otel-bridge spool {args.action}: {path}: no such file", file=sys.stderr)
        return 2
    if args.action == "check":
        return _check(path)
    return _salvage(path, args.into)


def _check(path: Path) -> int:
    reason = check_file(path)
    if reason is None:
        print(f"{path}: sound")
        return 0
    print(f"{path}: damaged: {reason}")
    print(f"recover what is readable with: otel-bridge spool salvage {path}")
    return 1


def _salvage(path: Path, into: Path | None) -> int:
    if into is None:
        match = _CORRUPT_NAME.match(path.name)
        if match is None:
            print(
                f"otel-bridge spool salvage: {path.name} is not named <spool>.corrupt-<time>;"
                " say which spool gets its traces with --into SPOOL",
                file=sys.stderr,
            )
            return 2
        into = path.with_name(match["original"])
    if into.resolve() == path.resolve():
        print("otel-bridge spool salvage: --into must be another file than PATH", file=sys.stderr)
        return 2
    recovered_file = into.with_name(f".salvaged-{path.name}.sqlite3")
    recovered_file.unlink(missing_ok=True)
    salvage = copy_readable(
        path,
        recovered_file,
        fallback_schema=spool_module._SCHEMA,
        fallback_version=spool_module._SCHEMA_VERSION,
    )
    try:
        # The rows go to a spool of the destination they were accepted for, never another.
        target = _open_target(into, summarize(recovered_file).destination)
    except (SpoolFormatError, SpoolLockedError, SpoolDestinationError) as error:
        recovered_file.unlink(missing_ok=True)
        print(f"otel-bridge spool salvage: {error}", file=sys.stderr)
        return 1
    try:
        before = _traces(target.counts())
        try:
            target.adopt(recovered_file)
        except SpoolFormatError as error:
            recovered_file.unlink(missing_ok=True)
            print(f"otel-bridge spool salvage: {error}", file=sys.stderr)
            return 1
        recovered = _traces(target.counts()) - before
    finally:
        target.close()
    held = _last_count(path)
    for table in salvage.tables:
        state = "some rows unreadable" if table.damaged else "complete"
        print(f"  {table.name}: {table.rows} row(s) read ({state})")
    repair = f"; {salvage.repair}" if salvage.repair else ""
    print(f"schema: {salvage.schema_source}{repair}")
    if held is None:
        lost = "unknown (no count was kept beside it)"
    else:
        lost = f"{max(0, held - recovered)} (it held {held} when last counted)"
    print(f"recovered {recovered} trace(s) into {target.path}; not recovered: {lost}")
    if target.path != into:
        print(
            f"{into} is in use: the exporter using it takes {target.path.name} over at its next start"
        )
    damaged = salvage.damaged or (held is not None and recovered < held)
    return 1 if damaged else 0


def _open_target(into: Path, destination: dict[str, str] | None) -> Spool:
    """The spool `into`, or while its exporter runs, the first free sibling `<name>.<n>.sqlite3`,
    which an exporter of that spool takes over when it next starts. `destination` is the one the
    salvaged rows were accepted for (None: not recorded, so whatever `into` records)."""
    stem = into.name.removesuffix(".sqlite3")
    candidates = [into, *(into.with_name(f"{stem}.{n}.sqlite3") for n in range(1, _MAX_SIBLINGS))]
    for candidate in candidates:
        try:
            return Spool(candidate, destination=destination, **_UNBOUNDED)  # type: ignore[arg-type]
        except SpoolLockedError:
            continue
    raise SpoolLockedError(f"{into} and all its sibling spool files are in use")


def _traces(counts: SpoolCounts) -> int:
    return counts.pending_traces + counts.outbox + counts.dead_letters


def _last_count(path: Path) -> int | None:
    try:
        return int(path.with_name(path.name + HELD_SUFFIX).read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None
