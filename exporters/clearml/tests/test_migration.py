"""The langchain_community ClearML handler's public names that no other test calls, on the
drop-in against real ClearML in offline mode (docs/migration.md lists every name): the scratch
`temp_dir`, `logger`, `callback_columns`, `nlp`, the `BaseMetadataCallbackHandler` switches
and per-callback record lists, `reset_callback_meta()`; and scalars of an unnamed model.

The only stand-in is the LLM API: `otel_bridge.testing.FakeChatModel`.
"""

from __future__ import annotations

from pathlib import Path

from langchain_core.language_models.fake_chat_models import FakeListChatModel
from otel_bridge_clearml import ClearMLCallbackHandler
from otel_bridge_clearml.encoder import encode_trace

from tests.chains import trace_of

from .conftest import closed_session_of
from .test_handler import QUESTIONS, echo_chain, make_handler


def test_temp_dir_logger_callback_columns_and_nlp(spool_dir: Path, tmp_path: Path) -> None:
    handler = make_handler(spool_dir)
    folder = Path(handler.task.get_offline_mode_folder())
    try:
        assert Path(handler.temp_dir.name).is_dir()  # a TemporaryDirectory, as the original's
        handler.logger.report_text("written through the original's logger")
        assert handler.callback_columns == []
        assert handler.nlp is None  # visualize is off
    finally:
        handler.flush_tracker(finish=True)
    console = closed_session_of(folder, tmp_path / "imported").console_lines()
    assert "written through the original's logger" in console


def test_the_record_lists_hold_the_rows_of_their_callback(spool_dir: Path) -> None:
    handler = make_handler(spool_dir)
    try:
        echo_chain().invoke({"question": QUESTIONS[0]}, {"callbacks": [handler]})
        assert handler.flush(30)
        (model,) = handler.on_llm_end_records
        assert model["outputs"] == f"Answer to: {QUESTIONS[0]}"
        assert handler.on_chain_end_records  # the sequence, prompt and parser runs
        assert all(row["action"] == "on_chain_end" for row in handler.on_chain_end_records)
        assert handler.on_tool_end_records == [] and handler.on_llm_token_records == []
        handler.flush_tracker(name="first")
        assert handler.on_llm_end_records == []  # like action_records, since the last flush
    finally:
        handler.flush_tracker(finish=True)


def test_the_switches_and_reset_callback_meta(spool_dir: Path) -> None:
    handler = ClearMLCallbackHandler(exporter_options={"spool_dir": spool_dir})
    try:
        assert (handler.always_verbose, handler.always_verbose_) == (False, False)
        handler.ignore_chain_ = True
        assert handler.ignore_chain is True
        echo_chain().invoke({"question": QUESTIONS[1]}, {"callbacks": [handler]})
        assert handler.chain_starts == 0 and handler.llm_starts == 1
        handler.reset_callback_meta()
        assert set(handler.get_custom_callback_meta().values()) == {0}
        assert handler.ignore_chain_ is True  # configuration, not a counter: left as set
    finally:
        handler.flush_tracker(finish=True)


def test_scalars_of_a_model_that_reports_no_name_are_named_after_its_class() -> None:
    """Not one "unknown-model" series for every such model: the class, or the run's name."""
    unnamed = encode_trace(trace_of(FakeListChatModel(responses=["hi"]), "hello"))
    renamed = FakeListChatModel(responses=["hi"]).with_config(run_name="drafter")
    named = encode_trace(trace_of(renamed, "hello"))
    assert {point.series for point in unnamed.scalars} == {"FakeListChatModel"}
    assert {point.series for point in named.scalars} == {"drafter"}
