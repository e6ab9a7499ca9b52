"""Pick the demo's chat model: a real provider when its API key is set and its LangChain package
is importable, else the local scripted fake (no account, no network)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib import import_module

from langchain_core.language_models import BaseChatModel
from opentelemetry.trace import TracerProvider

from otel_bridge.demo.app import fake_reply
from otel_bridge.testing import FakeChatModel

__all__ = ["PROVIDERS", "ModelChoice", "Provider", "choose_chat_model"]


@dataclass(frozen=True, slots=True)
class Provider:
    """A real chat model the demo can use: which key enables it and where its class lives."""

    name: str
    key_variable: str
    module: str
    class_name: str
    model_variable: str
    default_model: str
    package: str


PROVIDERS: tuple[Provider, ...] = (
    Provider(
        name="OpenAI",
        key_variable="OPENAI_API_KEY",
        module="langchain_openai",
        class_name="ChatOpenAI",
        model_variable="OPENAI_MODEL",
        default_model="gpt-4o-mini",
        package="langchain-openai",
    ),
    Provider(
        name="Anthropic",
        key_variable="ANTHROPIC_API_KEY",
        module="langchain_anthropic",
        class_name="ChatAnthropic",
        model_variable="ANTHROPIC_MODEL",
        default_model="claude-3-5-haiku-latest",
        package="langchain-anthropic",
    ),
)


@dataclass(frozen=True, slots=True)
class ModelChoice:
    """The chat model the demo runs, and one line telling the user why this one."""

    model: BaseChatModel
    description: str


def choose_chat_model(
    environ: Mapping[str, str],
    *,
    force_fake: bool = False,
    tracer_provider: TracerProvider | None = None,
) -> ModelChoice:
    """The first provider whose key is set and whose package imports; else the local fake, whose
    stand-in network calls are CLIENT spans on `tracer_provider`."""
    notes: list[str] = []
    for provider in () if force_fake else PROVIDERS:
        if not environ.get(provider.key_variable):
            continue
        try:
            model_class = getattr(import_module(provider.module), provider.class_name)
        except ImportError:
            notes.append(
                f"{provider.key_variable} is set but {provider.package} is not installed "
                f"(pip install {provider.package})"
            )
            continue
        model_name = environ.get(provider.model_variable) or provider.default_model
        return ModelChoice(
            model=model_class(model=model_name, temperature=0),
            description=f"{provider.name} {model_name} (from {provider.key_variable})",
        )
    hint = "; ".join(notes) or "set OPENAI_API_KEY and install langchain-openai for a real model"
    # The fake wraps each call in a CLIENT span, as an instrumented HTTP client would, so the
    # tree shows where a provider's network call sits: under its model span.
    fake = FakeChatModel(
        respond=fake_reply,
        model_name="fake-chat-model",
        client_span=tracer_provider is not None,
        client_tracer_provider=tracer_provider,
    )
    return ModelChoice(model=fake, description=f"local fake chat model ({hint})")
