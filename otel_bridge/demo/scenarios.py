"""The demo's four user requests, run one after another with progress shown, each outcome kept
so the runner can tell an expected failure from a real one."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableConfig
from rich.console import Console

from otel_bridge.demo.app import (
    AGENT_QUESTION,
    PUBLISH_QUESTION,
    RAG_QUESTION,
    STREAM_QUESTION,
    DemoApp,
    PublishError,
)

__all__ = ["ScenarioOutcome", "run_scenarios"]


@dataclass(frozen=True, slots=True)
class ScenarioOutcome:
    """How one request went: its answer, or the exception the app saw."""

    title: str
    answer: str
    error: Exception | None
    expected_error: type[Exception] | None
    seconds: float

    @property
    def as_planned(self) -> bool:
        if self.expected_error is None:
            return self.error is None
        return isinstance(self.error, self.expected_error)


def run_scenarios(app: DemoApp, config: RunnableConfig, console: Console) -> list[ScenarioOutcome]:
    """Run the RAG chain, the streamed RAG chain, the agent and the failing chain, in order."""

    def rag() -> str:
        return app.rag.invoke(RAG_QUESTION, {**config, "run_name": "rag_answer"})

    def streamed_rag() -> str:
        chunks: list[str] = []
        console.print("  ", end="")
        for chunk in app.rag.stream(STREAM_QUESTION, {**config, "run_name": "rag_answer_streamed"}):
            chunks.append(chunk)
            console.print(chunk, end="", style="italic", highlight=False)
        console.print()
        return "".join(chunks)

    def agent() -> str:
        state = app.agent.invoke({"messages": [HumanMessage(AGENT_QUESTION)]}, config)
        return str(state["messages"][-1].content)

    def publish() -> str:
        return app.publish.invoke({"question": PUBLISH_QUESTION}, config)

    steps: list[tuple[str, str, Callable[[], str], bool, type[Exception] | None]] = [
        ("RAG chain: retriever + chat model", RAG_QUESTION, rag, False, None),
        ("The same chain, streamed token by token", STREAM_QUESTION, streamed_rag, True, None),
        ("LangGraph agent calling tools", AGENT_QUESTION, agent, False, None),
        (
            "A chain whose last step fails on purpose",
            PUBLISH_QUESTION,
            publish,
            False,
            PublishError,
        ),
    ]
    outcomes: list[ScenarioOutcome] = []
    for number, (title, question, call, streams, expected_error) in enumerate(steps, start=1):
        console.print(f"[bold]{number}/{len(steps)} {title}[/bold]")
        console.print(f"  [dim]question:[/dim] {question}", highlight=False)
        outcome = _run_one(title, call, streams, expected_error, console)
        outcomes.append(outcome)
        _print_outcome(outcome, streams, console)
    return outcomes


def _run_one(
    title: str,
    call: Callable[[], str],
    streams: bool,
    expected_error: type[Exception] | None,
    console: Console,
) -> ScenarioOutcome:
    started = time.perf_counter()
    error: Exception | None = None
    answer = ""
    try:
        if streams:
            # The tokens appearing are the progress; a spinner would fight them for the line.
            answer = call()
        else:
            with console.status(f"  {title}…"):
                answer = call()
    except Exception as exc:
        # The demo shows the exception the app saw (the tracer must not change it) and goes on.
        error = exc
    return ScenarioOutcome(title, answer, error, expected_error, time.perf_counter() - started)


def _print_outcome(outcome: ScenarioOutcome, streamed: bool, console: Console) -> None:
    took = f"[dim]({outcome.seconds:.2f} s)[/dim]"
    if outcome.error is None:
        if not streamed:
            console.print(f"  [dim]answer:[/dim] {outcome.answer}", highlight=False)
        console.print(f"  [green]done[/green] {took}")
    elif outcome.as_planned:
        console.print(
            f"  [yellow]failed as planned:[/yellow] {type(outcome.error).__name__}: "
            f"{outcome.error} {took}",
            highlight=False,
        )
    else:
        console.print(
            f"  [bold red]failed:[/bold red] {type(outcome.error).__name__}: {outcome.error} {took}",
            highlight=False,
        )
