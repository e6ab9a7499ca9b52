"""The content encoder's one orjson call gives the same JSON, byte for byte, as the careful walk
the redact hook always takes; messages included."""

from __future__ import annotations

import json
import random
import threading
from typing import Any

import pytest
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

from otel_bridge import _extract
from otel_bridge._content import (
    ContentPolicy,
    _dumps,
    _fast_encode,
    _Shrinker,
    encode,
    message_dict,
)
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


_POLICY = ContentPolicy(max_length=1_000_000)


def _careful_unbounded(value: Any) -> str:
    return _dumps(_Shrinker(None, None, None).convert(value))


def _nested(seed: int) -> Any:
    rng = random.Random(seed)

    def build(depth: int) -> Any:
        kind = rng.randint(0, 5 if depth < 4 else 2)
        if kind == 0:
            return rng.randint(-1000, 1000)
        if kind == 1:
            return f's{seed}-{rng.random()}\n"é\u2028'
        if kind == 2:
            return rng.choice([None, True, 1.5, -0.0])
        if kind == 3:
            return [build(depth + 1) for _ in range(rng.randint(0, 4))]
        if kind == 4:
            return (HumanMessage(f"m{seed}"), build(depth + 1))
        return {f"k{i}-{seed}": build(depth + 1) for i in range(rng.randint(0, 4))}

    return {"seed": seed, "value": build(0)}


def test_encodes_under_eight_threads_match_a_single_threaded_encode() -> None:
    values = [_nested(seed) for seed in range(40)]
    expected = [encode(value, _POLICY) for value in values]
    assert expected == [_careful_unbounded(value) for value in values]
    barrier = threading.Barrier(8)
    results: dict[int, list[list[str]]] = {}
    failures: list[BaseException] = []

    def work(index: int) -> None:
        try:
            order = values[index:] + values[:index]
            barrier.wait()
            results[index] = [[encode(value, _POLICY) for value in order] for _ in range(50)]
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=work, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    for index, rounds in results.items():
        order = expected[index:] + expected[:index]
        for texts in rounds:
            assert texts == order


class _EncodesInRepr:
    """A value the encoder knows nothing about, whose repr encodes another value."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __repr__(self) -> str:
        return "Encodes(" + encode(self.inner, _POLICY) + ")"


def test_a_repr_that_encodes_gets_its_own_encoder_and_both_texts_are_right() -> None:
    inner = {"list": [1, 2, {"x": "y"}], "message": AIMessage("hi")}
    value = {"outer": [_EncodesInRepr(inner), _EncodesInRepr([inner, inner])], "after": 3}
    text = encode(value, _POLICY)
    assert text == _careful_unbounded(value)
    decoded = json.loads(text)
    assert decoded["outer"][0] == "Encodes(" + _careful_unbounded(inner) + ")"
    assert decoded["after"] == 3
    # The pool is still sound: a plain value encodes as before.
    assert encode({"a": [1, {"b": 2}]}, _POLICY) == '{"a":[1,{"b":2}]}'


def test_a_cyclic_value_leaves_no_stale_cycle_marks_for_the_next_value() -> None:
    shared = [1, 2]
    cyclic: dict[str, Any] = {"shared": shared}
    cyclic["self"] = cyclic
    assert json.loads(encode(cyclic, _POLICY)) == {"shared": [1, 2], "self": "[cycle]"}
    # The same containers, no longer cyclic, and a value holding the same list twice.
    del cyclic["self"]
    for _ in range(3):
        assert encode(cyclic, _POLICY) == '{"shared":[1,2]}'
        assert encode([shared, shared, {"s": shared}], _POLICY) == '[[1,2],[1,2],{"s":[1,2]}]'
    # A default conversion that fails mid-walk leaves nothing behind either.
    broken = BrokenModelDump()
    assert encode({"x": [shared, broken]}, _POLICY) == _careful_unbounded({"x": [shared, broken]})
    assert encode({"x": [shared]}, _POLICY) == '{"x":[[1,2]]}'


class BrokenModelDump:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def _message_cases() -> list[Any]:
    tool_call = {
        "name": "search",
        "args": {"q": "x", "api_key": "sk"},
        "id": "c1",
        "type": "tool_call",
    }
    return [
        HumanMessage("plain"),
        HumanMessage(""),
        HumanMessage('quote " backslash \\ newline \n \u2028 é \x00'),
        SystemMessage("sys"),
        AIMessage("answer"),
        AIMessage("", tool_calls=[tool_call]),
        AIMessage("with calls", tool_calls=[tool_call]),
        AIMessage(
            content=[{"type": "text", "text": "block"}, "bare", {"type": "image", "url": "u"}]
        ),
        AIMessageChunk(content="chunk"),
        HumanMessage(content=["a", {"type": "text", "text": "b"}]),
        HumanMessage("extra calls", tool_calls=[{"id": "x", "name": "n", "args": {}}]),
        ChatMessage(content="custom role", role="critic"),
        ChatMessage(content="", role="user"),
        ToolMessage(content="result", tool_call_id="c1"),
        ToolMessage(content=[{"type": "text", "text": "r"}], tool_call_id="c2"),
        FunctionMessage(content="fn out", name="f"),
        HumanMessage("mentions a token and a password"),
    ]


@pytest.mark.parametrize("message", _message_cases(), ids=lambda m: type(m).__name__)
def test_messages_encode_like_the_careful_walk_alone_in_lists_and_in_prompt_values(
    message: BaseMessage,
) -> None:
    others = [HumanMessage("first"), message, AIMessage("last")]
    values: list[Any] = [
        message,
        [message],
        others,
        [message, message],
        ChatPromptValue(messages=others),
        {"input": others},
        _extract.input_messages([others, [message]]),
    ]
    # Twice: the first encoding of a class teaches the per-class cache the fast path uses.
    for _ in range(2):
        for value in values:
            assert encode(value, _POLICY) == _careful_unbounded(value), value


def test_message_content_over_the_limit_is_cut_like_the_careful_walk() -> None:
    value = [HumanMessage("word " * 100), AIMessage("short")]
    encode(value, _POLICY)
    for limit in (64, 200, 400, 600):
        text = encode(value, ContentPolicy(max_length=limit))
        # The redact hook always takes the careful walk: an identity hook is the reference.
        assert text == encode(value, ContentPolicy(max_length=limit, redact=lambda s: s))
        assert len(text) <= limit
        json.loads(text)
