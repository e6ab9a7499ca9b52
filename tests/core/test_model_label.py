"""What per-model metrics are named after (`LLMCall.model_label`, read by the ClearML scalars and
the SageMaker metrics): the model the call reported, else LangChain's `ls_model_name`, else the
run's name, which is the model's class unless the app renamed the run; never one placeholder
shared by every model that reports no name (the originals' drop-ins once used "unknown-model").
"""

from __future__ import annotations

from typing import Any

from langchain_core.language_models.fake import FakeListLLM
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from tests.chains import trace_of


class _NamedOnlyByLangSmithParams(FakeListChatModel):
    """A chat model whose invocation parameters name no model; its LangSmith params do."""

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> Any:
        return {**super()._get_ls_params(stop=stop, **kwargs), "ls_model_name": "ls-named-1"}


def _label(runnable: Any, prompt: str = "hello") -> str:
    (call,) = trace_of(runnable, prompt).llm_calls()
    return call.model_label


def test_a_model_named_only_by_ls_model_name_is_named_so() -> None:
    assert _label(_NamedOnlyByLangSmithParams(responses=["hi"])) == "ls-named-1"


def test_a_model_without_any_name_is_named_after_its_class() -> None:
    assert _label(FakeListChatModel(responses=["hi"])) == "FakeListChatModel"
    assert _label(FakeListLLM(responses=["hi"])) == "FakeListLLM"


def test_a_renamed_run_is_named_as_the_app_named_it() -> None:
    renamed = FakeListChatModel(responses=["hi"]).with_config(run_name="drafter")
    assert _label(renamed) == "drafter"
