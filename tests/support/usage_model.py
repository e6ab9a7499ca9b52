"""A chat model that reports usage the way langchain-openai and langchain-anthropic do
(`usage_metadata` with `input_token_details` / `output_token_details`, the model in
`response_metadata`): the stand-in for a paid model API in the usage and cost tests."""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, ChatResult


class UsageReportingChatModel(BaseChatModel):
    """Answers "ok" with `usage` as its `usage_metadata`; `model_name` is the model reported."""

    model_name: str = "gpt-4o-2024-08-06"
    usage: dict[str, Any]

    @property
    def _llm_type(self) -> str:
        return "usage-reporting-fake"

    def _generate(
        self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        message = AIMessage(
            content="ok",
            response_metadata={"model_name": self.model_name},
            usage_metadata=self.usage,  # type: ignore[arg-type]
        )
        return ChatResult(generations=[ChatGeneration(message=message)])
