"""App-visible latency per chain call: otel-bridge's UpTrainCallbackHandler beside
langchain_community's (which evaluates inside the callback), same RAG chain, same local judge,
same run.

The judge is tests/support/fake_openai.FakeJudge, a local OpenAI-compatible server standing in
for the paid LLM API; `--judge-latency` makes each grading answer take that long, as a real model
does. Run: .venv/bin/python bench/uptrain.py [--calls 40] [--judge-latency 0.2] [--spacing 0.1]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# This file is named like the uptrain package: its directory must not shadow it on sys.path.
sys.path.remove(str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable, RunnablePassthrough
from langchain_core.vectorstores import InMemoryVectorStore
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

from otel_bridge import semconv
from otel_bridge.testing import FakeChatModel
from tests.support.fake_openai import FakeJudge

QUESTION = "Where does the Rhine flow into the sea?"
ANSWER = "The Rhine flows into the North Sea in the Netherlands."
DOCUMENTS = [
    Document(page_content="The Rhine rises in the Swiss Alps. It flows into the North Sea."),
    Document(page_content="The Danube flows east. It empties into the Black Sea in Romania."),
    Document(page_content="The Elbe crosses Germany. It reaches the North Sea at Cuxhaven."),
]


def rag_chain() -> Runnable:
    """The input shape both handlers recognise as RAG: {"context", "question"} into the prompt."""
    store = InMemoryVectorStore(embedding=DeterministicFakeEmbedding(size=32))
    store.add_documents(DOCUMENTS)
    prompt = ChatPromptTemplate.from_messages(
        [("system", "Answer from the context only.\n\n{context}"), ("human", "{question}")]
    )
    return (
        {
            "context": store.as_retriever(search_kwargs={"k": 2})
            | (lambda docs: "\n\n".join(d.page_content for d in docs)),
            "question": RunnablePassthrough(),
        }
        | prompt
        | FakeChatModel(responses=[ANSWER])
        | StrOutputParser()
    )


def time_calls(
    chain: Runnable,
    callbacks: list[Any],
    calls: int,
    spacing: float,
    after_warm_up: Callable[[], None] | None = None,
) -> list[float]:
    chain.invoke(QUESTION, config={"callbacks": callbacks})  # warm-up, not counted
    if after_warm_up is not None:
        after_warm_up()
    durations = []
    for _ in range(calls):
        start = time.perf_counter()
        chain.invoke(QUESTION, config={"callbacks": callbacks})
        durations.append(time.perf_counter() - start)
        # Calls arrive spaced out like requests to an app, so the background evaluation of
        # earlier calls overlaps later ones and competes for the CPU.
        time.sleep(spacing)
    return durations


def ours(
    judge: FakeJudge, spool_dir: str, results: InMemorySpanExporter
) -> tuple[Any, Callable[[], None]]:
    from otel_bridge_uptrain import UpTrainCallbackHandler

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(results))
    handler = UpTrainCallbackHandler(
        api_key="sk-judge",
        log_results=False,
        tracer_provider=provider,
        exporter_options={"api_base": judge.url, "spool_dir": spool_dir, "grace_period": 0.05},
    )

    def finish() -> None:
        provider.force_flush()
        if not handler.exporter.force_flush(120_000):
            print("ours: evaluations had not drained after 120 s")

    return handler, finish


def seed(judge: FakeJudge) -> Any:
    from langchain_community.callbacks.uptrain_callback import UpTrainCallbackHandler

    # The seed reaches its judge only through the OpenAI client's environment variables.
    os.environ["OPENAI_BASE_URL"] = judge.url
    return UpTrainCallbackHandler(key_type="openai", api_key="sk-judge", log_results=False)


def summary(name: str, durations: list[float], baseline: float | None) -> str:
    median = statistics.median(durations) * 1000
    p95 = sorted(durations)[max(0, int(len(durations) * 0.95) - 1)] * 1000
    added = "" if baseline is None else f"{median - baseline * 1000:>12.1f}"
    return f"{name:<44}{median:>10.1f}{p95:>10.1f}{added}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--judge-latency", type=float, default=0.2)
    parser.add_argument("--spacing", type=float, default=0.1, help="seconds between calls")
    args = parser.parse_args()

    from loguru import logger

    logger.remove()  # uptrain's progress logging, for both handlers alike
    os.environ.setdefault("TQDM_DISABLE", "1")

    chain = rag_chain()
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(
        f"machine: {platform.platform()}, python {platform.python_version()}, "
        f"{os.cpu_count()} cpus, load average {load} (shared: small figures are noisy)"
    )
    print(
        f"chain: retriever + prompt + fake chat model; judge: local FakeJudge, "
        f"{args.judge_latency * 1000:.0f} ms per grading call; {args.calls} timed calls each, "
        f"{args.spacing * 1000:.0f} ms apart"
    )
    with (
        FakeJudge(api_key="sk-judge", latency=args.judge_latency) as judge,
        tempfile.TemporaryDirectory() as spool,
    ):
        baseline = time_calls(chain, [], args.calls, args.spacing)
        # The core handler with no sink behind it: what tracing alone costs, for comparison.
        from otel_bridge import OTelCallbackHandler

        tracing_only = time_calls(
            chain, [OTelCallbackHandler(tracer_provider=TracerProvider())], args.calls, args.spacing
        )
        results = InMemorySpanExporter()
        handler, finish = ours(judge, spool, results)
        # The warm-up call's evaluation also imports uptrain (seconds); the seed pays that in its
        # constructor. Timed calls start once it is done.
        mine = time_calls(chain, [handler], args.calls, args.spacing, finish)
        asked_during_calls = len(judge.graded())
        start = time.perf_counter()
        finish()
        drain_s = time.perf_counter() - start
        scored = [
            s
            for s in results.get_finished_spans()
            if semconv.GEN_AI_EVALUATION_NAME in (s.attributes or {})
        ]
        handler.exporter.shutdown()

        judge.clear()
        seed_line: str
        try:
            seed_handler = seed(judge)
        except Exception as error:
            seed_line = (
                f"{'langchain_community UpTrainCallbackHandler':<44}could not run: {error!r}"
            )
            seed_graded = 0
        else:
            theirs = time_calls(chain, [seed_handler], args.calls, args.spacing)
            seed_line = summary(
                "langchain_community UpTrainCallbackHandler", theirs, statistics.median(baseline)
            )
            seed_graded = len(judge.graded())

    base = statistics.median(baseline)
    print(f"{'':<44}{'median ms':>10}{'p95 ms':>10}{'added ms':>12}")
    print(summary("no callbacks", baseline, None))
    print(summary("otel-bridge OTelCallbackHandler, no sink", tracing_only, base))
    print(summary("otel-bridge UpTrainCallbackHandler (ours)", mine, base))
    print(seed_line)
    print(
        f"ours: {len(scored)} score spans for {args.calls + 1} calls, evaluated off the call "
        f"({asked_during_calls} grading requests had been answered when the last call returned; "
        f"the rest took {drain_s:.1f} s to drain after it)"
    )
    print(f"seed: {seed_graded} grading requests answered, all inside the calls")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
