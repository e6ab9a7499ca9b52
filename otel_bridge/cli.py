"""The `otel-bridge` command: one sub-command per module in `otel_bridge.commands`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import import_module

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
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    modules = {name: import_module(path) for name, path in _COMMANDS.items()}
    for name, module in modules.items():
        sub = subparsers.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(sub)
    args = parser.parse_args(argv)
    return int(modules[args.command].run(args))


if __name__ == "__main__":
    sys.exit(main())
