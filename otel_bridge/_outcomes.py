"""How a run that did not simply complete really ended.

LangGraph steers graphs with exceptions: `interrupt()` pauses a graph for a human
(`GraphInterrupt`), `Command(graph=Command.PARENT)` hands control to the parent graph
(`ParentCommand`), a drain request stops it at a step boundary (`GraphDrained`). They reach the
callbacks as errors but are not failures. The other way round, a tool error LangChain handled
(`handle_tool_error`, `handle_validation_error`) reaches them as a normal end, but is a failure
of the tool.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import ToolMessage

__all__ = ["ControlFlow", "HandledToolError", "control_flow", "handled_tool_error"]

# error.type of a handled tool error whose exception LangChain did not hand over.
TOOL_ERROR = "tool_error"
# The control-flow exceptions that pause a graph (it can be resumed from its checkpoint).
_PAUSES = ("GraphInterrupt", "GraphDrained")


@dataclass(frozen=True, slots=True)
class ControlFlow:
    """A LangGraph control-flow exception: its class name, whether it paused the graph, and
    the interrupts it carries as (id, value) pairs."""

    kind: str
    paused: bool
    interrupts: tuple[tuple[str | None, Any], ...]


@dataclass(frozen=True, slots=True)
class HandledToolError:
    """A tool error LangChain turned into the tool's output."""

    error_type: str
    text: str
    exception: BaseException | None


def control_flow(error: BaseException) -> ControlFlow | None:
    """`error` as LangGraph control flow, or None when it is not (or LangGraph is not loaded:
    then it cannot be)."""
    errors = sys.modules.get("langgraph.errors")
    bubble_up = getattr(errors, "GraphBubbleUp", None)
    if bubble_up is None or not isinstance(error, bubble_up):
        return None
    paused_by = tuple(
        kind for kind in (getattr(errors, name, None) for name in _PAUSES) if kind is not None
    )
    paused = isinstance(error, paused_by)
    interrupts: tuple[tuple[str | None, Any], ...] = ()
    if paused and error.args and isinstance(error.args[0], (list, tuple)):
        interrupts = tuple(
            (_text_or_none(getattr(item, "id", None)), getattr(item, "value", item))
            for item in error.args[0]
        )
    return ControlFlow(type(error).__name__, paused, interrupts)


def handled_tool_error(output: Any, exception: BaseException | None) -> HandledToolError | None:
    """The handled error a tool run's `output` stands for, or None when the tool succeeded.

    `exception` is the one LangChain's error handler turned into `output`, when known; a
    `ToolMessage` with status "error" is a handled error even without it.
    """
    is_message = isinstance(output, ToolMessage)
    if exception is None and not (is_message and output.status == "error"):
        return None
    text = str(output.content if is_message else output)
    error_type = TOOL_ERROR if exception is None else type(exception).__qualname__
    return HandledToolError(error_type, text, exception)


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
