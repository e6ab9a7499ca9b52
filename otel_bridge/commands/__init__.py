"""One module per `otel-bridge` sub-command, each with `HELP`, `add_arguments(parser)` and
`run(args) -> int`, returning one of the exit codes below (the same rule for every command)."""

from __future__ import annotations

__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE"]

# Did what was asked.
EXIT_OK = 0
# Started, and what was asked failed: delivery, a port in use, a damaged file, nothing matched.
EXIT_FAILED = 1
# Never started: bad arguments or configuration, a file that does not exist, a missing package.
# argparse exits with 2 for bad arguments as well.
EXIT_USAGE = 2
# Stopped by Ctrl-C before it finished, as shells report SIGINT.
EXIT_INTERRUPTED = 130
