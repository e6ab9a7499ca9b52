"""What the ClearML sink tells front ends such as `otel-bridge demo` about itself."""

from __future__ import annotations

from typing import Any

from otel_bridge.plugins import SinkReport, count_traces

__all__ = ["SINK_REPORT"]


def _destination(exporter: Any) -> str:
    task = exporter.task
    if not task.is_offline():
        return f"task {task.name!r} on the ClearML server"
    return (
        f"offline task {task.name!r} in {task.get_offline_mode_folder()} (zipped there at exit; "
        "import it into a server with clearml.Task.import_offline_session)"
    )


# Runs with no account (an offline session by default), so it needs nothing set. ClearML and the
# transport log the task's bookkeeping (repository detection, the offline folder) at INFO and
# WARNING, which the destination line already says.
SINK_REPORT = SinkReport(
    title="ClearML",
    verb="log",
    verb_past="logged",
    work=count_traces,
    destination=_destination,
    quiet_loggers=("clearml", "otel_bridge_clearml.transport"),
)
