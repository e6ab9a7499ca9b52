"""Bounded, redacted JSON for content attributes: run inputs/outputs, messages, documents.

Anything LangChain hands a callback can be encoded here without raising: unknown objects become
their `repr`, cycles and excessive depth are cut, secrets are masked, and the result stays valid
JSON within the length limit by shortening strings and lists before giving up on structure.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring
from typing import Any

from langchain_core.documents import Document
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.prompt_values import ChatPromptValue
from pydantic import BaseModel, SecretBytes, SecretStr

from otel_bridge._private import json_c_encoder

Redactor = Callable[[str], str]

SECRET_MASK = "[REDACTED]"
# Keys whose values are credentials wherever they appear (serialized kwargs, inputs, metadata).
# "token" alone is not here: it would mask token counts such as "input_tokens".
SECRET_KEY = re.compile(
    r"(api[_-]?key|secret|passw(or)?d|authorization|credential|access[_-]?token|auth[_-]?token|"
    r"refresh[_-]?token|session[_-]?token|bearer|private[_-]?key)",
    re.IGNORECASE,
)
_MAX_DEPTH = 32
# When strings alone cannot be cut enough, lists and mappings are cut to these many items.
_LIST_CAPS = (64, 16, 4)
_MIN_STRING_CAP = 16
# Room for the "...[N more chars]" marker appended to a cut string.
_CUT_MARKER_ROOM = 24
# Chunks subclass their message class, so isinstance covers streamed messages too.
_ROLE_BY_MESSAGE_CLASS: tuple[tuple[type[BaseMessage], str], ...] = (
    (HumanMessage, "user"),
    (AIMessage, "assistant"),
    (SystemMessage, "system"),
    (ToolMessage, "tool"),
    (FunctionMessage, "tool"),
)


# Checked rather than assumed: the written form must match the field walk's.
_PROMPT_VALUE_FIELDS = tuple(ChatPromptValue.model_fields)

MIN_MAX_LENGTH = 64
# Per-class facts cached on the hot path (isinstance against pydantic's ABC-metaclass models is
# slow); classes are few, the bound only guards against classes made at run time.
_MAX_CACHED_CLASSES = 1024
_CONVERSION_BY_CLASS: dict[type, Callable[[Any], Any]] = {}
# A message class's role (None: the message's own `role` or `type`), whether it is a tool
# response, and whether it declares `tool_calls`.
_MESSAGE_CLASS_FACTS: dict[type, tuple[str | None, bool, bool]] = {}


@dataclass(frozen=True, slots=True)
class ContentPolicy:
    """How content is captured: the length bound per attribute and the redaction hook."""

    max_length: int
    redact: Redactor | None = None

    def __post_init__(self) -> None:
        if self.max_length < MIN_MAX_LENGTH:
            raise ValueError(
                f"the content length limit must be at least {MIN_MAX_LENGTH} characters, "
                f"got {self.max_length}"
            )


def is_secret_key(key: str) -> bool:
    return SECRET_KEY.search(key) is not None


class _Shrinker:
    """Converts arbitrary values to JSON-compatible ones with caps on strings and lists."""

    __slots__ = ("_list_cap", "_redact", "_seen", "_string_cap", "string_chars", "strings")

    def __init__(self, redact: Redactor | None, string_cap: int | None, list_cap: int | None):
        self._redact = redact
        self._string_cap = string_cap
        self._list_cap = list_cap
        self._seen: set[int] = set()
        # How many strings the value holds and their total length, to share a length budget.
        self.strings = 0
        self.string_chars = 0

    def text(self, value: str) -> str:
        if self._redact is not None:
            value = self._redact(value)
        self.strings += 1
        self.string_chars += len(value)
        cap = self._string_cap
        if cap is not None and len(value) > cap:
            return value[:cap] + f"...[{len(value) - cap} more chars]"
        return value

    def convert(self, value: Any, depth: int = 0) -> Any:
        if value is None or isinstance(value, bool | int):
            return value
        if isinstance(value, float):
            # NaN and infinities are not JSON.
            return (
                value
                if value == value and value not in (float("inf"), float("-inf"))
                else str(value)
            )
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, SecretStr | SecretBytes):
            return SECRET_MASK
        if isinstance(value, bytes | bytearray | memoryview):
            raw = bytes(value)
            return self.text(base64.b64encode(raw).decode("ascii"))
        if depth >= _MAX_DEPTH:
            return "[max depth]"
        marker = id(value)
        if marker in self._seen:
            return "[cycle]"
        self._seen.add(marker)
        try:
            return self._convert_container(value, depth + 1)
        finally:
            self._seen.discard(marker)

    def _convert_container(self, value: Any, depth: int) -> Any:
        if isinstance(value, Mapping):
            return self._mapping(value, depth)
        if isinstance(value, BaseMessage):
            return self.convert(message_dict(value), depth)
        if isinstance(value, Document):
            return self.convert(document_dict(value), depth)
        if isinstance(value, BaseModel):
            return self._mapping(_model_fields(value), depth)
        if isinstance(value, list | tuple | set | frozenset) or _is_plain_sequence(value):
            items = list(value)
            cap = self._list_cap
            converted = [self.convert(item, depth) for item in items[:cap]]
            if cap is not None and len(items) > cap:
                converted.append(f"...[{len(items) - cap} more items]")
            return converted
        return self.text(_safe_repr(value))

    def _mapping(self, value: Mapping[Any, Any], depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        items = list(value.items())
        cap = self._list_cap
        for key, item in items[:cap]:
            name = key if isinstance(key, str) else _safe_repr(key)
            result[name] = SECRET_MASK if is_secret_key(name) else self.convert(item, depth)
        if cap is not None and len(items) > cap:
            result["..."] = f"[{len(items) - cap} more keys]"
        return result


def _is_plain_sequence(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes | bytearray)


def _model_fields(model: BaseModel) -> dict[str, Any]:
    # Field access, not model_dump(): a model that fails to serialize still shows its fields.
    return {name: getattr(model, name, None) for name in type(model).model_fields}


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception:  # a broken __repr__ must not cost the attribute
        return f"<{type(value).__name__}>"


def _masked(value: Any) -> str:
    return SECRET_MASK


def _base64_text(value: Any) -> str:
    return base64.b64encode(bytes(value)).decode("ascii")


def _default_conversion(kind: type) -> Callable[[Any], Any]:
    """How `_plain_default` converts instances of `kind`."""
    if issubclass(kind, SecretStr | SecretBytes):
        return _masked
    if issubclass(kind, bytes | bytearray | memoryview):
        return _base64_text
    if issubclass(kind, BaseMessage):
        return message_dict
    if issubclass(kind, Document):
        return document_dict
    if issubclass(kind, BaseModel):
        return _model_fields
    if issubclass(kind, Mapping):
        return dict
    if issubclass(kind, set | frozenset) or (
        issubclass(kind, Sequence) and not issubclass(kind, str | bytes | bytearray)
    ):
        return list
    return _safe_repr


def _plain_default(value: Any) -> Any:
    """The fast encoder's fallback for types `json` does not know; same output as `_Shrinker`."""
    kind = type(value)
    convert = _CONVERSION_BY_CLASS.get(kind)
    if convert is None:
        convert = _default_conversion(kind)
        # A proxy's __class__ is not its type; isinstance would see through it, so must we.
        if value.__class__ is not kind:
            return _default_conversion(value.__class__)(value)
        _remember(_CONVERSION_BY_CLASS, kind, convert)
    return convert(value)


# Encoders not in use. Each owns the markers dict it detects cycles with, so one is never shared
# by two walks at once (threads, or a `repr` that encodes); `list.pop`/`append` are atomic.
_IDLE_ENCODERS: list[Callable[[Any, int], Iterable[str]]] = []


def _new_encoder() -> Callable[[Any, int], Iterable[str]]:
    """What `json.JSONEncoder.encode` runs, built once rather than per call: the C walk where
    there is one. NaN is not JSON, so such values take the careful path."""
    encoder = json_c_encoder(_plain_default, encode_basestring)
    if encoder is None:
        # No C accelerator: the pure-Python walk, which gives the same text.
        walk = json.JSONEncoder(
            ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_plain_default
        )
        return lambda value, _indent_level: walk.iterencode(value)
    return encoder


def _fast_encode(value: Any, limit: int) -> str | None:
    """The JSON encoder's output (or a plain message's text, written directly) when it is
    already the right answer, else None.

    It is, unless the value has cycles, NaNs, odd keys or excessive depth (the encoder raises),
    is over the limit, or mentions anything secret-looking (keys must then be masked).
    """
    if isinstance(value, str):
        # A lone string has no keys to mask.
        text = encode_basestring(value)
        return text if len(text) <= limit else None
    rendered = _messages_json(value)
    if rendered is not None:
        return rendered if len(rendered) <= limit else None
    try:
        encoder = _IDLE_ENCODERS.pop()
    except IndexError:
        encoder = _new_encoder()
    try:
        text = "".join(encoder(value, 0))
    except Exception:
        # Dropped, not reused: a failed walk leaves its entries in the markers dict.
        return None
    _IDLE_ENCODERS.append(encoder)
    if len(text) > limit:
        return None
    # Every SECRET_KEY match contains one of these fragments; substring tests are far cheaper
    # than running the regex over every encoding (keep the two in step).
    lowered = text.lower()
    if (
        "key" in lowered
        or "secret" in lowered
        or "passw" in lowered
        or "authorization" in lowered
        or "credential" in lowered
        or "token" in lowered
        or "bearer" in lowered
    ):
        return None
    return text


def _messages_json(value: Any) -> str | None:
    """The JSON of a plain message or a list of them, written directly, else None.

    Building each message's dict for the C encoder to walk costs more than writing its text. Its
    keys are our own, none secret-looking, so the result needs no secret scan.
    """
    kind = value.__class__
    if kind is list:
        if not value or value[0].__class__ not in _MESSAGE_CLASS_FACTS:
            return None
        texts = []
        for message in value:
            text = _message_json(message)
            if text is None:
                return None
            texts.append(text)
        return "[" + ",".join(texts) + "]"
    if kind in _MESSAGE_CLASS_FACTS:
        return _message_json(value)
    if kind is ChatPromptValue and _PROMPT_VALUE_FIELDS == ("messages",):
        # A chat prompt's output: encoded through its fields, `{"messages": [...]}`.
        messages = _messages_json(value.messages)
        return None if messages is None else '{"messages":' + messages + "}"
    return None


def _message_json(message: Any) -> str | None:
    """`message_dict(message)` as JSON when the message has a known role, text content and no
    tool calls (the common case), else None."""
    facts = _MESSAGE_CLASS_FACTS.get(message.__class__)
    if facts is None:
        return None
    role, is_tool_response, declares_tool_calls = facts
    content = message.content
    if role is None or is_tool_response or content.__class__ is not str:
        return None
    if declares_tool_calls:
        if message.tool_calls:
            return None
    else:
        extra = getattr(message, "__pydantic_extra__", None)
        if extra and extra.get("tool_calls"):
            return None
    if not content:
        return '{"role":"' + role + '","parts":[]}'
    return (
        '{"role":"'
        + role
        + '","parts":[{"type":"text","content":'
        + encode_basestring(content)
        + "}]}"
    )


def encode(value: Any, policy: ContentPolicy) -> str:
    """JSON for `value`, at most `policy.max_length` characters, still valid JSON when cut.

    Strings are cut first, each to an equal share of what the structure leaves of the limit;
    only if that is not enough are lists and mappings cut too.
    """
    limit = policy.max_length
    if policy.redact is None:
        fast = _fast_encode(value, limit)
        if fast is not None:
            return fast
    measured = _Shrinker(policy.redact, None, None)
    text = _dumps(measured.convert(value))
    if len(text) <= limit:
        return text
    structure = max(len(text) - measured.string_chars, 0)
    share = (limit - structure) // max(measured.strings, 1) - _CUT_MARKER_ROOM
    while share >= _MIN_STRING_CAP:
        text = _dumps(_Shrinker(policy.redact, share, None).convert(value))
        if len(text) <= limit:
            return text
        share //= 2
    for list_cap in _LIST_CAPS:
        text = _dumps(_Shrinker(policy.redact, _MIN_STRING_CAP * 4, list_cap).convert(value))
        if len(text) <= limit:
            return text
    # Structure does not fit at all: keep a JSON string holding the start of the encoding.
    budget = limit
    while budget > 0:
        candidate = _dumps(text[:budget] + "...[truncated]")
        if len(candidate) <= limit:
            return candidate
        # Escaping makes the JSON longer than its text: shrink in proportion and retry.
        budget = budget * limit // len(candidate) - 1
    return '""'


def encode_text(value: Any, policy: ContentPolicy) -> str:
    """A string as it is (redacted, at most `policy.max_length` characters); anything else as
    `encode` writes it. For the GenAI attributes whose strings are not JSON-quoted."""
    if not isinstance(value, str):
        return encode(value, policy)
    if policy.redact is not None:
        value = policy.redact(value)
    limit = policy.max_length
    if len(value) <= limit:
        return value
    marker = f"...[{len(value)} chars]"
    return value[: limit - len(marker)] + marker


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _parts_of_content(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "content": content}] if content else []
    parts: list[dict[str, Any]] = []
    if isinstance(content, list):
        for block in content:
            if isinstance(block, str):
                parts.append({"type": "text", "content": block})
            elif isinstance(block, Mapping) and block.get("type") == "text":
                parts.append({"type": "text", "content": block.get("text", "")})
            elif isinstance(block, Mapping):
                parts.append(dict(block))
            else:
                parts.append({"type": "text", "content": _safe_repr(block)})
    return parts


def _remember(cache: dict[type, Any], kind: type, fact: Any) -> None:
    if len(cache) < _MAX_CACHED_CLASSES:
        cache[kind] = fact


def _message_class_facts(kind: type) -> tuple[str | None, bool, bool]:
    facts = _MESSAGE_CLASS_FACTS.get(kind)
    if facts is None:
        role = None
        if not issubclass(kind, ChatMessage):
            role = next((r for cls, r in _ROLE_BY_MESSAGE_CLASS if issubclass(kind, cls)), None)
        declares_tool_calls = hasattr(kind, "tool_calls") or "tool_calls" in getattr(
            kind, "model_fields", {}
        )
        facts = (role, issubclass(kind, ToolMessage), declares_tool_calls)
        _remember(_MESSAGE_CLASS_FACTS, kind, facts)
    return facts


def _role(message: BaseMessage, class_role: str | None) -> str:
    if class_role is not None:
        return class_role
    return message.role if isinstance(message, ChatMessage) else message.type


def message_dict(message: BaseMessage) -> dict[str, Any]:
    """A LangChain message as a GenAI-convention message: role and parts."""
    class_role, is_tool_response, declares_tool_calls = _message_class_facts(message.__class__)
    parts = _parts_of_content(message.content)
    if declares_tool_calls:
        calls = getattr(message, "tool_calls", None)
    else:
        # Messages allow extra fields; looking for one that is absent through getattr costs a
        # raised and caught AttributeError inside pydantic.
        extra = getattr(message, "__pydantic_extra__", None)
        calls = extra.get("tool_calls") if extra else None
    for call in calls or ():
        parts.append(
            {
                "type": "tool_call",
                "id": call.get("id"),
                "name": call.get("name"),
                "arguments": call.get("args"),
            }
        )
    if is_tool_response:
        response = message.content
        parts = [
            {
                "type": "tool_call_response",
                "id": getattr(message, "tool_call_id", None),
                "response": response,
            }
        ]
    return {"role": _role(message, class_role), "parts": parts}


# Metadata keys vector stores and rerankers put a document's relevance under.
_SCORE_KEYS = ("score", "relevance_score", "similarity_score", "_score", "distance")


def document_dict(document: Document) -> dict[str, Any]:
    return {
        "page_content": document.page_content,
        "metadata": dict(document.metadata),
        "id": document.id,
    }


def retrieved_document(document: Document, position: int) -> dict[str, Any]:
    """A retrieved document as `gen_ai.retrieval.documents` holds it. Trace UIs drop the whole
    list unless every entry has an id and a score: the id is the document's own, else its
    position; the score is the one its metadata reports, else null."""
    metadata = dict(document.metadata)
    score = next(
        (
            metadata[key]
            for key in _SCORE_KEYS
            if isinstance(metadata.get(key), int | float)
            and not isinstance(metadata.get(key), bool)
        ),
        None,
    )
    return {
        "id": document.id if document.id else str(position),
        "score": score,
        "content": document.page_content,
        "metadata": metadata,
    }
