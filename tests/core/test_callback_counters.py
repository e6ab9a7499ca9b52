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

from otel_bridge.sink_handler import CALLBACK_COUNTERS, CallbackCounters, SinkCallbackHandler
from tests.chains import (
    AGENT_QUESTION,
    QUESTION,
    ChainFailedError,
    agent,
    chat_model,
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
