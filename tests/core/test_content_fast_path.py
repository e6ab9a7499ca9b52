"""The content encoder's one orjson call gives the same JSON, byte for byte, as the careful walk
the redact hook always takes; messages included."""

from __future__ import annotations

import json
import threading
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.prompt_values import ChatPromptValue

from otel_bridge._content import ContentPolicy, _fast_encode, encode, message_dict
from otel_bridge._extract import input_messages

texts = st.text(max_size=20) | st.sampled_from(["", "api_key", 'quote " and \\ slash', "é\n\u2028"])
contents = texts | st.lists(
    texts
    | st.fixed_dictionaries({"type": st.just("text"), "text": texts})
    | st.fixed_dictionaries({"type": st.just("image_url"), "url": texts}),
    max_size=3,
)
tool_calls = st.lists(
    st.builds(
        lambda name, args: {"name": name, "args": args, "id": "call-1", "type": "tool_call"},
        st.text(min_size=1, max_size=5),
        st.dictionaries(st.sampled_from(["q", "api_key", "n"]), texts, max_size=2),
    ),
    max_size=2,
)
messages: st.SearchStrategy[BaseMessage] = st.one_of(
    st.builds(HumanMessage, content=contents),
    st.builds(SystemMessage, content=contents),
    st.builds(AIMessage, content=contents, tool_calls=tool_calls),
    st.builds(AIMessageChunk, content=contents),
    st.builds(ChatMessage, content=contents, role=texts),
    st.builds(ToolMessage, content=contents, tool_call_id=texts),
    st.builds(FunctionMessage, content=contents, name=texts),
    # Extra fields are allowed, `tool_calls` among them.
    st.builds(lambda content: HumanMessage(content=content, tool_calls=[{"id": "x"}]), contents),
)
message_values = st.one_of(
    messages,
    st.lists(messages, max_size=4),
    st.builds(ChatPromptValue, messages=st.lists(messages, max_size=3)),
    st.dictionaries(st.sampled_from(["input", "password"]), st.lists(messages, max_size=2)),
)


def _careful(value: Any, limit: int) -> str:
    return encode(value, ContentPolicy(max_length=limit, redact=lambda text: text))


@given(value=message_values, limit=st.integers(min_value=64, max_value=2000))
@settings(max_examples=300, deadline=None)
def test_messages_in_one_call_match_the_careful_walk(value: Any, limit: int) -> None:
    fast = _fast_encode(value, limit)
    if fast is not None:
        assert fast == _careful(value, limit)
    assert encode(value, ContentPolicy(max_length=limit)) == (fast or _careful(value, limit))


@given(batches=st.lists(st.lists(messages, max_size=3), max_size=3))
@settings(max_examples=100, deadline=None)
def test_input_messages_encode_as_their_message_dicts(batches: list[list[BaseMessage]]) -> None:
    policy = ContentPolicy(max_length=100_000)
    as_dicts = [message_dict(message) for batch in batches for message in batch]
    assert encode(input_messages(batches), policy) == encode(as_dicts, policy)


def test_plain_messages_are_written_in_the_one_call() -> None:
    value = [SystemMessage("Answer briefly."), HumanMessage('Say "hi"'), AIMessage("")]
    expected = json.dumps(
        [message_dict(message) for message in value], ensure_ascii=False, separators=(",", ":")
    )
    assert _fast_encode(value, 10_000) == expected
    assert _fast_encode(ChatPromptValue(messages=value), 10_000) == '{"messages":' + expected + "}"


def test_tool_call_arguments_keep_their_secrets_masked() -> None:
    message = AIMessage(
        "",
        tool_calls=[{"name": "f", "args": {"api_key": "s3cr3t"}, "id": "1", "type": "tool_call"}],
    )
    for value in (message, [message], ChatPromptValue(messages=[message])):
        text = encode(value, ContentPolicy(max_length=4096))
        assert "s3cr3t" not in text
        assert "[REDACTED]" in text


def test_a_failed_walk_leaves_no_stale_cycle_markers() -> None:
    looped: dict[str, Any] = {}
    looped["self"] = looped
    shared = {"q": "x"}
    assert _fast_encode(looped, 1000) is None
    assert _fast_encode({"a": shared, "b": [shared]}, 1000) == '{"a":{"q":"x"},"b":[{"q":"x"}]}'


class _EncodesWhenShown:
    """A value whose repr encodes another value: the encoder must not be shared re-entrantly."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __repr__(self) -> str:
        return encode(self.inner, ContentPolicy(max_length=1000))


def test_reentrant_and_concurrent_encodes_agree() -> None:
    shared = {"q": "x"}
    value = {"outer": shared, "shown": _EncodesWhenShown([shared, shared])}
    expected = _careful(value, 1000)
    assert encode(value, ContentPolicy(max_length=1000)) == expected
    results: list[str] = []

    def work() -> None:
        for _ in range(200):
            results.append(encode(value, ContentPolicy(max_length=1000)))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(results) == {expected}
