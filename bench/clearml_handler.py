"""ClearML handler benchmark: app-visible microseconds per chain invocation with no handler, with
langchain_community's ClearMLCallbackHandler (the seed) and with otel_bridge_clearml's, same run,
same offline ClearML task; then how long our delivery of those traces into ClearML took.

    .venv/bin/python bench/clearml_handler.py [--invocations 300] [--stream-logs]

The seed loads spaCy's en_core_web_sm in its constructor even with visualize off; that model is
not installable from PyPI, so when it is missing a blank English pipeline stands in (the seed never
uses it unless visualize=True). The model is otel_bridge.testing.FakeChatModel (no network).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable

from otel_bridge.testing import FakeChatModel


def chain() -> Runnable:
    prompt = ChatPromptTemplate.from_messages([("human", "Answer briefly: {question}")])
    model = FakeChatModel(responses=["The Rhine flows into the North Sea."], model_name="bench")
    return prompt | model | StrOutputParser()


def per_call_us(
    runnable: Runnable, setups: dict[str, list[Any]], invocations: int
) -> dict[str, float]:
    """Median microseconds per call for each callback setup, measured in interleaved rounds
    so that load changes on a shared machine hit every setup alike."""
    samples: dict[str, list[float]] = {name: [] for name in setups}
    for callbacks in setups.values():  # warm-up
        for _ in range(20):
            runnable.invoke({"question": "warm up"}, {"callbacks": callbacks})
    for index in range(0, invocations, 10):
        for name, callbacks in setups.items():
            for offset in range(10):
                started = time.perf_counter()
                runnable.invoke({"question": f"q{index + offset}"}, {"callbacks": callbacks})
                samples[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) * 1e6 for name, values in samples.items()}


def seed_handler(stream_logs: bool) -> Any:
    import spacy
    from langchain_community.callbacks.clearml_callback import ClearMLCallbackHandler

    real_load: Callable[..., Any] = spacy.load

    def load(name: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return real_load(name, *args, **kwargs)
        except OSError:
            return spacy.blank("en")

    spacy.load = load
    try:
        return ClearMLCallbackHandler(stream_logs=stream_logs)
    finally:
        spacy.load = real_load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--invocations", type=int, default=300)
    parser.add_argument("--stream-logs", action="store_true")
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="bench-clearml-")
    os.environ.setdefault("CLEARML_CACHE_DIR", os.path.join(work, "clearml"))
    from clearml import Task
    from otel_bridge_clearml import ClearMLCallbackHandler

    Task.set_offline(True)
    runnable = chain()
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cpus")
    print(f"{args.invocations} invocations of prompt | FakeChatModel | parser, median per call")

    seed = seed_handler(args.stream_logs)  # creates the offline task both handlers log into
    ours = ClearMLCallbackHandler(
        stream_logs=args.stream_logs,
        exporter_options={"spool_dir": os.path.join(work, "spool"), "grace_period": 0.0},
    )
    results = per_call_us(
        runnable,
        {
            "no handler": [],
            "langchain_community ClearMLCallbackHandler": [seed],
            "otel_bridge_clearml ClearMLCallbackHandler": [ours],
        },
        args.invocations,
    )
    for name, micros in results.items():
        print(f"  {name:<44} {micros:9.1f} us")
    started = time.perf_counter()
    ours.flush_tracker(name="bench")
    print(
        f"  flush_tracker(): deliver the {args.invocations + 20} traces, report the session: "
        f"{time.perf_counter() - started:.2f} s"
    )
    ours.flush_tracker(finish=True)
    seed.task.close()


if __name__ == "__main__":
    main()
