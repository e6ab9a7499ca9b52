"""In-process stand-ins for a paid LLM API: a chat model and a text-completion model.

They are real LangChain models (callbacks, streaming, tool binding, usage) whose "network" part
is local; optionally it is wrapped in a CLIENT span the way an instrumented HTTP client would.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel, BaseLLM, LanguageModelInput
from langchain_core.language_models.chat_models import LangSmithParams
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ToolCall,
    ToolCallChunk,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import (
    ChatGeneration,
    ChatGenerationChunk,
    ChatResult,
    Generation,
    GenerationChunk,
    LLMResult,
)
from langchain_core.runnables import Runnable
from langchain_core.utils.function_calling import convert_to_openai_tool
from opentelemetry import trace
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

__all__ = ["FakeChatModel", "FakeLLM", "count_tokens"]

Reply = str | AIMessage
ReplyFunction = Callable[[list[BaseMessage]], Reply]
CompletionFunction = Callable[[str], str]


def count_tokens(text: str) -> int:
    """The fakes' tokenizer: one token per whitespace-separated word."""
    return len(text.split())


def _message_text(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    return " ".join(
        part if isinstance(part, str) else str(part.get("text", "")) for part in content
    )


class _FakeModel(BaseModel):
    """What both fakes share: the settings LangSmith's params report, the call counter that
    picks scripted replies and numbers responses, and the optional CLIENT span around the fake
    network call (to `endpoint`), opened as an instrumented HTTP client does.

    A fake lists it after its LangChain base class, so it only adds names: LangChain's own
    (`model_post_init`, which records the package versions in the model's metadata, and
    `_identifying_params`) come first.
    """

    model_name: str
    provider: str = "fake"
    temperature: float | None = None
    max_tokens: int | None = None
    client_span: bool = False
    client_tracer_provider: Any = None
    endpoint: str

    _cursor: Iterator[int] = PrivateAttr(default_factory=itertools.count)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def _next_call(self) -> int:
        with self._lock:
            return next(self._cursor)

    def _provider_ls_params(self, model_type: Literal["chat", "llm"]) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider=self.provider, ls_model_name=self.model_name, ls_model_type=model_type
        )
        if self.temperature is not None:
            params["ls_temperature"] = self.temperature
        if self.max_tokens is not None:
            params["ls_max_tokens"] = self.max_tokens
        return params

    @contextmanager
    def _network_call(self) -> Iterator[None]:
        if not self.client_span:
            yield
            return
        # Like httpx/requests instrumentation: the tracer comes from the given or global
        # provider and the span parents under whatever span is current right now.
        tracer = trace.get_tracer(
            "otel_bridge.testing", tracer_provider=self.client_tracer_provider
        )
        with tracer.start_as_current_span(
            f"POST {self.endpoint}",
            kind=trace.SpanKind.CLIENT,
            attributes={
                "http.request.method": "POST",
                "url.full": f"http://fake-llm.invalid{self.endpoint}",
                "server.address": "fake-llm.invalid",
            },
        ):
            yield


class FakeChatModel(BaseChatModel, _FakeModel):
    """A chat model whose replies are scripted (a list, cycled) or computed by a function.

    A reply may be an `AIMessage` carrying `tool_calls`; `bind_tools` works like a provider's.
    Every reply carries `usage_metadata` (one token per word, unless the scripted message has its
    own) and `response_metadata` with `model_name`, `finish_reason` and `id`. With
    `streaming=True` (or `.stream()`), the reply arrives word by word through `_stream`/`_astream`.
    `error` makes every call raise it, after `error_after_chunks` chunks when streaming.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    responses: list[Reply] = Field(
        default_factory=lambda: list[Reply](["Hello from the fake model."])
    )
    respond: ReplyFunction | None = None
    model_name: str = "fake-chat-model"
    streaming: bool = False
    error: BaseException | None = None
    error_after_chunks: int = 0
    endpoint: str = "/v1/chat/completions"

    @property
    def _llm_type(self) -> str:
        return "fake-chat-model"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = self._provider_ls_params("chat")
        if stop:
            params["ls_stop"] = stop
        return params

    def bind_tools(
        self, tools: Sequence[Any], *, tool_choice: str | None = None, **kwargs: Any
    ) -> Runnable[LanguageModelInput, AIMessage]:
        formatted = [convert_to_openai_tool(tool) for tool in tools]
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        return self.bind(tools=formatted, **kwargs)

    def _reply(self, messages: list[BaseMessage]) -> AIMessage:
        call_number = self._next_call()
        if self.respond is not None:
            reply = self.respond(messages)
        else:
            reply = self.responses[call_number % len(self.responses)]
        message = AIMessage(content=reply) if isinstance(reply, str) else reply.model_copy()
        prompt_tokens = sum(count_tokens(_message_text(m)) for m in messages)
        if message.usage_metadata is None:
            completion_tokens = count_tokens(_message_text(message))
            message.usage_metadata = UsageMetadata(
                input_tokens=prompt_tokens,
                output_tokens=completion_tokens,
                total_tokens=prompt_tokens + completion_tokens,
            )
        message.response_metadata = {
            "model_name": self.model_name,
            "finish_reason": "tool_calls" if message.tool_calls else "stop",
            "id": f"fake-response-{call_number}",
            **message.response_metadata,
        }
        return message

    def _result(self, message: AIMessage) -> ChatResult:
        generation = ChatGeneration(
            message=message,
            generation_info={"finish_reason": message.response_metadata["finish_reason"]},
        )
        return ChatResult(generations=[generation], llm_output={"model_name": self.model_name})

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        with self._network_call():
            if self.error is not None:
                raise self.error
            return self._result(self._reply(messages))

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        with self._network_call():
            # A real client awaits the network: let other tasks interleave here.
            await asyncio.sleep(0)
            if self.error is not None:
                raise self.error
            return self._result(self._reply(messages))

    def _chunks(self, message: AIMessage) -> Iterator[ChatGenerationChunk]:
        words = _message_text(message).split(" ")
        last = len(words) - 1
        for index, word in enumerate(words):
            if index == self.error_after_chunks and self.error is not None:
                raise self.error
            text = word if index == last else word + " "
            chunk = AIMessageChunk(content=text)
            if index == last:
                chunk = AIMessageChunk(
                    content=text,
                    usage_metadata=message.usage_metadata,
                    response_metadata=message.response_metadata,
                    tool_call_chunks=[
                        _as_chunk(call, i) for i, call in enumerate(message.tool_calls)
                    ],
                    chunk_position="last",
                )
            yield ChatGenerationChunk(message=chunk)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        # The CLIENT span covers sending the request, as with an instrumented HTTP client whose
        # span ends when the response headers arrive; the body then streams outside it.
        with self._network_call():
            if self.error is not None and self.error_after_chunks == 0:
                raise self.error
            message = self._reply(messages)
        yield from self._chunks(message)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        with self._network_call():
            await asyncio.sleep(0)
            if self.error is not None and self.error_after_chunks == 0:
                raise self.error
            message = self._reply(messages)
        for chunk in self._chunks(message):
            await asyncio.sleep(0)
            yield chunk


def _as_chunk(call: ToolCall, index: int) -> ToolCallChunk:
    return ToolCallChunk(
        name=call["name"], args=json.dumps(call["args"]), id=call.get("id"), index=index
    )


class FakeLLM(BaseLLM, _FakeModel):
    """A text-completion model: scripted completions (cycled) or a function of the prompt.

    `llm_output` carries OpenAI-style `token_usage` (one token per word) and `model_name`;
    streaming yields one chunk per word and reports each as a new token.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    responses: list[str] = Field(default_factory=lambda: ["A completion from the fake LLM."])
    respond: CompletionFunction | None = None
    model_name: str = "fake-completion-model"
    error: BaseException | None = None
    endpoint: str = "/v1/completions"

    @property
    def _llm_type(self) -> str:
        return "fake-completion-model"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        return self._provider_ls_params("llm")

    def _complete(self, prompt: str) -> str:
        call_number = self._next_call()
        if self.respond is not None:
            return self.respond(prompt)
        return self.responses[call_number % len(self.responses)]

    def _result(self, prompts: list[str]) -> LLMResult:
        generations: list[list[Generation]] = []
        prompt_tokens = completion_tokens = 0
        for prompt in prompts:
            text = self._complete(prompt)
            prompt_tokens += count_tokens(prompt)
            completion_tokens += count_tokens(text)
            generations.append([Generation(text=text, generation_info={"finish_reason": "stop"})])
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        return LLMResult(
            generations=generations,
            llm_output={"token_usage": usage, "model_name": self.model_name},
        )

    def _generate(
        self,
        prompts: list[str],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> LLMResult:
        with self._network_call():
            if self.error is not None:
                raise self.error
            return self._result(prompts)

    async def _agenerate(
        self,
        prompts: list[str],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> LLMResult:
        with self._network_call():
            await asyncio.sleep(0)
            if self.error is not None:
                raise self.error
            return self._result(prompts)

    def _words(self, prompt: str) -> list[str]:
        with self._network_call():
            if self.error is not None:
                raise self.error
            words = self._complete(prompt).split(" ")
        return [word + " " for word in words[:-1]] + words[-1:]

    def _stream(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[GenerationChunk]:
        for word in self._words(prompt):
            chunk = GenerationChunk(text=word)
            if run_manager is not None:
                run_manager.on_llm_new_token(word, chunk=chunk)
            yield chunk

    async def _astream(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[GenerationChunk]:
        await asyncio.sleep(0)
        for word in self._words(prompt):
            chunk = GenerationChunk(text=word)
            if run_manager is not None:
                await run_manager.on_llm_new_token(word, chunk=chunk)
            await asyncio.sleep(0)
            yield chunk
