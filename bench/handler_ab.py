"""This checkout's handler beside another git revision's, in one process, on the same chain.

Both handlers trace the 6-run `prompt | chat model | parser | lambda | lambda` chain of
`overhead.py`; the other revision's `otel_bridge` is taken with `git archive` and imported under
another name. Rounds interleave no handler, the other revision and this one in a shuffled order,
each timed in thread CPU time; the added cost is the median over rounds of (configuration - no
handler) within a round, so load from other jobs hits all three alike. Prints the added
microseconds per call for `invoke`, `ainvoke` and `stream`. By default the other revision is
HEAD (what uncommitted changes cost); `--ref main` compares a branch with main. Usage:
`python bench/handler_ab.py [--ref REVISION] [--rounds 30] [--calls 50]`."""

from __future__ import annotations

import argparse
import asyncio
import io
import random
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from importlib import import_module
from pathlib import Path
from typing import Any

from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable, RunnableLambda
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from otel_bridge.handler import OTelCallbackHandler
from otel_bridge.testing import FakeChatModel

ROOT = Path(__file__).resolve().parents[1]
_OTHER = "otel_bridge_other"


class _CountingExporter(SpanExporter):
    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Any) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def _provider() -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(_CountingExporter()))
    return provider


def _import_revision(ref: str, into: Path) -> type:
    """The OTelCallbackHandler class of `ref`'s otel_bridge, imported as `otel_bridge_other`."""
    archive = subprocess.run(
        ["git", "archive", ref, "otel_bridge"], cwd=ROOT, check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    package = into / _OTHER
    (into / "otel_bridge").rename(package)
    for source in package.rglob("*.py"):
        text = source.read_text(encoding="utf-8")
        source.write_text(re.sub(r"\botel_bridge(?=[ .])", _OTHER, text), encoding="utf-8")
    sys.path.insert(0, str(into))
    return import_module(f"{_OTHER}.handler").OTelCallbackHandler  # type: ignore[no-any-return]


def _chain() -> Runnable[Any, Any]:
    prompt = ChatPromptTemplate.from_messages([("system", "Be brief."), ("human", "{q}")])
    model = FakeChatModel(responses=["an answer of a few words"])
    return (
        prompt
        | model
        | StrOutputParser()
        | RunnableLambda(lambda text: text.upper())
        | RunnableLambda(lambda text: text + "!")
    )


def _calls(chain: Runnable[Any, Any], mode: str) -> Callable[[dict[str, Any], int], None]:
    def invoke(config: dict[str, Any], calls: int) -> None:
        for _ in range(calls):
            chain.invoke({"q": "what?"}, config)

    def stream(config: dict[str, Any], calls: int) -> None:
        for _ in range(calls):
            for _ in chain.stream({"q": "what?"}, config):
                pass

    loop = asyncio.new_event_loop()

    def ainvoke(config: dict[str, Any], calls: int) -> None:
        async def run() -> None:
            for _ in range(calls):
                await chain.ainvoke({"q": "what?"}, config)

        loop.run_until_complete(run())

    return {"invoke": invoke, "ainvoke": ainvoke, "stream": stream}[mode]


def _measure(
    run: Callable[[dict[str, Any], int], None],
    configs: dict[str, dict[str, Any]],
    rounds: int,
    calls: int,
) -> dict[str, float]:
    for config in configs.values():
        run(config, 20)
    added: dict[str, list[float]] = {name: [] for name in configs if name != "none"}
    for _ in range(rounds):
        order = list(configs)
        random.shuffle(order)
        per_call = {}
        for name in order:
            started = time.thread_time()
            run(configs[name], calls)
            per_call[name] = (time.thread_time() - started) / calls * 1e6
        for name in added:
            added[name].append(per_call[name] - per_call["none"])
    return {name: statistics.median(values) for name, values in added.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", default="HEAD", help="the git revision to compare with")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--calls", type=int, default=50, help="calls per configuration per round")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        other_handler = _import_revision(args.ref, Path(workdir))
        configs = {
            "none": {},
            args.ref: {"callbacks": [other_handler(tracer_provider=_provider())]},
            "this checkout": {"callbacks": [OTelCallbackHandler(tracer_provider=_provider())]},
        }
        chain = _chain()
        print(f"added us per call, median of {args.rounds} rounds x {args.calls} calls, 6 runs")
        print(f"{'call':<10}{args.ref:>14}{'this checkout':>16}{'ratio':>8}")
        for mode in ("invoke", "ainvoke", "stream"):
            added = _measure(_calls(chain, mode), configs, args.rounds, args.calls)
            ours, theirs = added["this checkout"], added[args.ref]
            print(f"{mode:<10}{theirs:>14.1f}{ours:>16.1f}{ours / theirs:>8.2f}")


if __name__ == "__main__":
    main()
