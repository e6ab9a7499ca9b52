"""`CallbackCounters`: the ClearML and SageMaker drop-ins keep the originals' callback counters
(`step`, `starts`, `llm_starts`, ..., `get_custom_callback_meta()`, `reset_callback_meta()`).

The reference is langchain_community's own `SageMakerCallbackHandler`, passed the same calls
beside ours (its counting is the ClearML original's, both from `BaseMetadataCallbackHandler`'s
fields). It writes a JSON file per callback and hands it to its run's `log_file`: the run here
is a stand-in that keeps nothing, since only the counters are compared (the drop-ins' own
tests use real ClearML and moto runs).
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path
from typing import Any

import pytest
from langchain_core.runnables import RunnableLambda

from otel_bridge.sink_handler import (
    CALLBACK_COUNTERS,
    RECORD_LISTS,
    CallbackCounters,
    SinkCallbackHandler,
)
from tests.chains import (
    AGENT_QUESTION,
    QUESTION,
    ChainFailedError,
    agent,
    chat_model,
    completion_chain,
    failing_chain,
    rag_chain,
)
from tests.contract import MemorySink


class _CountingHandler(CallbackCounters, SinkCallbackHandler):
    pass


class _RunKeepingNothing:
    def log_file(self, *args: Any, **kwargs: Any) -> None:
        pass


@pytest.fixture
def original() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from langchain_community.callbacks.sagemaker_callback import SageMakerCallbackHandler

    handler = SageMakerCallbackHandler(_RunKeepingNothing())
    yield handler
    shutil.rmtree(handler.temp_dir, ignore_errors=True)


def test_the_counters_count_every_callback_as_the_originals_do(
    original: Any, tmp_path: Path
) -> None:
    ours = _CountingHandler(MemorySink(spool_dir=tmp_path))
    try:
        callbacks = {"callbacks": [ours, original]}
        rag_chain().invoke(QUESTION, callbacks)
        agent().invoke({"messages": [("user", AGENT_QUESTION)]}, callbacks)
        list(chat_model("streamed answer").stream("a question", callbacks))
        with pytest.raises(ChainFailedError):
            failing_chain().invoke("x", callbacks)
        RunnableLambda(lambda _: "text").invoke(None, callbacks)
        counted = ours.get_custom_callback_meta()
        assert counted == original.metrics
        assert set(counted) == set(CALLBACK_COUNTERS)
        for counter in ("llm_starts", "llm_streams", "chain_starts", "tool_starts", "errors"):
            assert counted[counter] > 0, counter
        assert ours.step == counted["step"] and ours.llm_starts == counted["llm_starts"]
        assert ours.always_verbose is False
        ours.reset_callback_meta()
        assert set(ours.get_custom_callback_meta().values()) == {0}
    finally:
        ours.shutdown()


def test_the_originals_switches_turn_langchains_and_reset_leaves_them(tmp_path: Path) -> None:
    """`ignore_llm_ = True` on the original made LangChain skip its LLM callbacks (its
    `ignore_llm` property read the field); the same here, on a real call."""
    ours = _CountingHandler(MemorySink(spool_dir=tmp_path))
    try:
        assert (ours.ignore_llm_, ours.ignore_chain_, ours.always_verbose_) == (False,) * 3
        ours.ignore_llm_ = True
        ours.ignore_retriever_ = True
        assert ours.ignore_llm is True and ours.ignore_retriever is True
        assert ours.ignore_chain is False and ours.ignore_agent is False
        completion_chain().invoke({"topic": "otters"}, {"callbacks": [ours]})
        assert ours.llm_starts == 0 and ours.chain_starts > 0  # the LLM's callbacks skipped
        ours.always_verbose_ = True
        assert ours.always_verbose is True
        ours.reset_callback_meta()
        assert ours.ignore_llm_ is True and ours.chain_starts == 0
        ours.ignore_llm_ = False
        completion_chain().invoke({"topic": "otters"}, {"callbacks": [ours]})
        assert ours.llm_starts == 1
    finally:
        ours.shutdown()


class _RecordingHandler(_CountingHandler):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.action_records: list[dict[str, Any]] = []


def test_the_record_lists_are_the_action_records_of_their_callback(tmp_path: Path) -> None:
    rows = [
        {"action": "on_llm_start", "prompts": "p"},
        {"action": "on_llm_end", "text": "t"},
        {"action": "on_chain_end", "outputs": "o"},
        {"action": "on_llm_end", "text": "u"},
    ]
    recording = _RecordingHandler(MemorySink(spool_dir=tmp_path / "a"))
    bare = _CountingHandler(MemorySink(spool_dir=tmp_path / "b"))
    try:
        recording.action_records.extend(rows)
        assert recording.on_llm_end_records == [rows[1], rows[3]]
        assert recording.on_llm_start_records == [rows[0]]
        assert recording.on_chain_end_records == [rows[2]]
        assert recording.on_tool_end_records == []
        assert all(getattr(bare, name) == [] for name in RECORD_LISTS)
    finally:
        recording.shutdown()
        bare.shutdown()
