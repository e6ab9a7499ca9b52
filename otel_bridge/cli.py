"""The `otel-bridge` command: one sub-command per module in `otel_bridge.commands`.

Exit codes, for every command: 0 done, 1 failed, 2 usage or configuration error (see
`otel_bridge.commands`), 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

from otel_bridge.commands import EXIT_INTERRUPTED

# Each module defines `add_arguments(parser)`, `run(args) -> int` and a one-line `HELP`.
_COMMANDS = {
    "serve": "otel_bridge.commands.serve",
    "demo": "otel_bridge.commands.demo",
    "tree": "otel_bridge.commands.tree",
    "replay": "otel_bridge.commands.replay",
    "spool": "otel_bridge.commands.spool",
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="otel-bridge", description=__doc__)
    parser.add_argument("--version", action=_VersionAction)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    modules = {name: import_module(path) for name, path in _COMMANDS.items()}
    for name, module in modules.items():
        sub = subparsers.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(sub)
    args = parser.parse_args(argv)
    try:
        return int(modules[args.command].run(args))
    except KeyboardInterrupt:
        print(f"otel-bridge {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def version_line() -> str:
    """`otel-bridge X.Y.Z (sinks: name version, ...)`: this package and the installed sinks."""
    from otel_bridge.plugins import sink_entry_points

    sinks = []
    for entry_point in sink_entry_points(bridge_only=True):
        dist = entry_point.dist
        if dist is None or dist.name == "otel-bridge":
            sinks.append(entry_point.name)
        else:
            sinks.append(f"{entry_point.name} {dist.version}")
    return f"otel-bridge {_own_version()} (sinks: {', '.join(sinks) or 'none'})"


def _own_version() -> str:
    try:
        return version("otel-bridge")
    except PackageNotFoundError:  # imported from a source tree that was never installed
        return "unknown"


class _VersionAction(argparse.Action):
    """`--version`: built only when asked, since it reads every sink's metadata."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        super().__init__(
            option_strings,
            dest,
            nargs=0,
            default=argparse.SUPPRESS,
            help="print the version of otel-bridge and of the installed sinks, and exit",
        )

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        print(version_line())
        parser.exit()


if __name__ == "__main__":
    sys.exit(main())
