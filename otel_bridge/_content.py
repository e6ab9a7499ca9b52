"""Bounded, redacted JSON for content attributes: run inputs/outputs, messages, documents.

Anything LangChain hands a callback can be encoded here without raising: unknown objects become
their `repr`, cycles and excessive depth are cut, secrets are masked, and the result stays valid
JSON within the length limit by shortening strings and lists before giving up on structure.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import enum
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson
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
from pydantic import BaseModel, SecretBytes, SecretStr

Redactor = Callable[[str], str]

SECRET_MASK = "[REDACTED]"
# Keys whose values are credentials wherever they appear (serialized kwargs, inputs, metadata).
# "token" alone is not here: it would mask token counts such as "input_tokens".
SECRET_KEY = re.compile(
    r"(api[_-]?key|secret|passw(or)?d|authorization|credential|access[_-]?token|auth[_-]?token|"
    r"refresh[_-]?token|session[_-]?token|bearer|private[_-]?key)",
    re.IGNORECASE,
)
# Every SECRET_KEY match contains one of these (keep the two in step): a text with none of them
# has no secret-looking key, found with substring tests far cheaper than the regex.
_SECRET_FRAGMENTS = ("key", "secret", "passw", "authorization", "credential", "token", "bearer")
# The one orjson call: dataclasses and datetimes converted by `_plain_default` like every other
# type orjson does not write itself, so the careful walk gives the same text. A key that is not a
# string makes it refuse the value: the careful walk names such keys, once each.
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME
# The integers orjson writes (signed and unsigned 64-bit); the careful walk writes others as
# strings of their digits.
_ORJSON_MIN_INT = -(2**63)
_ORJSON_MAX_INT = 2**64 - 1
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

MIN_MAX_LENGTH = 64
# Per-class facts cached on the hot path (isinstance against pydantic's ABC-metaclass models is
# slow); classes are few, the bound only guards against classes made at run time.
_MAX_CACHED_CLASSES = 1024
_CONVERSION_BY_CLASS: dict[type, Callable[[Any], Any]] = {}
# How each message class converts (`_message_conversion`).
_MESSAGE_CONVERSION_BY_CLASS: dict[type, Callable[[Any], dict[str, Any]]] = {}


@dataclasses.dataclass(frozen=True, slots=True)
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
    """Converts arbitrary values to ones orjson writes without a conversion and never refuses,
    with caps on strings and lists: the careful walk, for values the one orjson call refused, over
    the limit or holding secret-looking keys. Each value it cannot take as it is costs only that
    value: a failed conversion its repr, a cycle "[cycle]", an integer orjson refuses its digits,
    a lone surrogate U+FFFD, a key orjson cannot write its repr."""

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
        if not value.isascii():
            value = _valid_text(value)
        self.strings += 1
        self.string_chars += len(value)
        cap = self._string_cap
        if cap is not None and len(value) > cap:
            return value[:cap] + f"...[{len(value) - cap} more chars]"
        return value

    def convert(self, value: Any, depth: int = 0) -> Any:
        if value is None or isinstance(value, bool | float):
            # orjson writes NaN and the infinities as null.
            return value
        if isinstance(value, int):
            return value if _ORJSON_MIN_INT <= value <= _ORJSON_MAX_INT else str(value)
        if isinstance(value, str):
            return self.text(value)
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
        if isinstance(value, list | tuple):
            cap = self._list_cap
            converted = [self.convert(item, depth) for item in value[:cap]]
            if cap is not None and len(value) > cap:
                converted.append(f"...[{len(value) - cap} more items]")
            return converted
        # Everything else as the one orjson call converts it: the same table.
        try:
            plain = _plain_default(value)
        except Exception:  # a conversion that fails costs this value, not the attribute
            return self.text(_safe_repr(value))
        return self.convert(plain, depth)

    def _mapping(self, value: Mapping[Any, Any], depth: int) -> dict[str, Any] | str:
        try:
            items = list(value.items())
        except Exception:  # a mapping that cannot be read costs this value, not the attribute
            return self.text(_safe_repr(value))
        result: dict[str, Any] = {}
        cap = self._list_cap
        for key, item in items[:cap]:
            name = key if key.__class__ is str else _key_text(key)
            if not name.isascii():
                name = _valid_text(name)
            result[name] = SECRET_MASK if is_secret_key(name) else self.convert(item, depth)
        if cap is not None and len(items) > cap:
            result["..."] = f"[{len(items) - cap} more keys]"
        return result


def _valid_text(text: str) -> str:
    """`text` with its surrogates (which UTF-8, so orjson, refuses) replaced: a pair by the
    character it stands for, a lone one by U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def _key_text(key: Any) -> str:
    """A mapping key that is not a str as orjson writes such keys (numbers, true, false, null, an
    Enum's value, a UUID, a date), else its repr (tuples, other objects)."""
    try:
        written = orjson.loads(orjson.dumps({key: None}, option=orjson.OPT_NON_STR_KEYS))
        return str(next(iter(written)))
    except Exception:  # orjson refuses the key: its repr instead
        return _safe_repr(key)


def _fields_of(kind: type[BaseModel]) -> Callable[[BaseModel], dict[str, Any]]:
    """A model's fields by field access, not model_dump(): a model that fails to serialize still
    shows its fields. The names are read once per class (pydantic's `model_fields` is slow)."""
    names = tuple(kind.model_fields)
    if len(names) == 1:
        # One field (a ChatPromptValue's messages): no comprehension to run.
        (only,) = names

        def one_field(model: BaseModel) -> dict[str, Any]:
            return {only: getattr(model, only, None)}

        return one_field

    def fields(model: BaseModel) -> dict[str, Any]:
        return {name: getattr(model, name, None) for name in names}

    return fields


def _dataclass_fields(value: Any) -> dict[str, Any]:
    return {field.name: getattr(value, field.name, None) for field in dataclasses.fields(value)}


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception:  # a broken __repr__ must not cost the attribute
        return f"<{type(value).__name__}>"


def _masked(value: Any) -> str:
    return SECRET_MASK


def _base64_text(value: Any) -> str:
    return base64.b64encode(bytes(value)).decode("ascii")


def _enum_value(value: enum.Enum) -> Any:
    return value.value


def _iso_text(value: datetime.date | datetime.time) -> str:
    return value.isoformat()


def _default_conversion(kind: type) -> Callable[[Any], Any]:
    """How `_plain_default` converts instances of `kind`."""
    if issubclass(kind, SecretStr | SecretBytes):
        return _masked
    if issubclass(kind, bytes | bytearray | memoryview):
        return _base64_text
    if issubclass(kind, BaseMessage):
        return _message_conversion(kind)
    if issubclass(kind, Document):
        return document_dict
    if issubclass(kind, BaseModel):
        return _fields_of(kind)
    if issubclass(kind, Mapping):
        return dict
    if issubclass(kind, enum.Enum):
        return _enum_value
    if issubclass(kind, uuid.UUID):
        return str
    if issubclass(kind, datetime.date | datetime.time):
        return _iso_text
    if dataclasses.is_dataclass(kind):
        return _dataclass_fields
    if issubclass(kind, set | frozenset) or (
        issubclass(kind, Sequence) and not issubclass(kind, str | bytes | bytearray)
    ):
        return list
    return _safe_repr


def _plain_default(value: Any) -> Any:
    """What a value orjson does not write itself becomes: the one table of conversions, for the
    orjson call (its `default`) and the careful walk alike."""
    kind = type(value)
    convert = _CONVERSION_BY_CLASS.get(kind)
    if convert is None:
        convert = _default_conversion(kind)
        # A proxy's __class__ is not its type; isinstance would see through it, so must we.
        if value.__class__ is not kind:
            return _default_conversion(value.__class__)(value)
        _remember(_CONVERSION_BY_CLASS, kind, convert)
    return convert(value)


def _fast_encode(value: Any, limit: int) -> str | None:
    """The JSON of `value` from one orjson call, when that is already the answer, else None.

    It is, unless orjson refuses a value in it (an integer beyond 64 bits, a lone surrogate, a key
    that is not a string, a cycle, excessive depth, a conversion that raised), the text is over the
    limit, or a key looks secret (it must then be masked).
    """
    try:
        text = orjson.dumps(value, default=_plain_default, option=_ORJSON_OPTIONS).decode()
    except Exception:  # orjson.JSONEncodeError, or what a conversion raised: the careful walk
        return None
    if len(text) > limit:
        return None
    # A lone string (a str subclass too: LangChain's message text) has no keys to mask.
    if isinstance(value, str):
        return text
    # Most texts hold none of the fragments (`_SECRET_FRAGMENTS`): one chain of substring tests,
    # here rather than in `_has_secret_key`, says so for the price of no further call. A fragment
    # with a letter few texts hold is looked for only where that letter is (one character is
    # found faster than three).
    lowered = text.lower()
    if not text.isascii():
        # SECRET_KEY (case ignored) takes four non-ASCII letters for ASCII ones. Lowering turns
        # the Kelvin sign into "k"; the dotless i and the long s it leaves: they are folded here
        # (same length, so positions still match `text`); the dotted capital I it makes two
        # characters of: the careful walk decides.
        if "\u0130" in text:
            return None
        if "\u0131" in lowered or "\u017f" in lowered:
            lowered = lowered.replace("\u0131", "i").replace("\u017f", "s")
    if (
        ("k" in lowered and ("key" in lowered or "token" in lowered))
        or ("w" in lowered and "passw" in lowered)
        or ("z" in lowered and "authorization" in lowered)
        or ("b" in lowered and "bearer" in lowered)
        or "secret" in lowered
        or "credential" in lowered
    ) and _has_secret_key(text, lowered):
        return None
    return text


def _has_secret_key(text: str, lowered: str) -> bool:
    """Whether a key of `text`, compact JSON that holds a fragment of a secret-looking key
    (`lowered` is `text.lower()`), looks secret; True also where an escaped quote makes that
    costly to tell (the careful walk then decides).

    Only keys are read, so a message that mentions a token does not cost the careful walk: where
    a fragment of a secret-looking key occurs, the next quote closes its string, which is a key
    when ":" follows.
    """
    if len(lowered) != len(text):  # lowering changed the length (a few non-ASCII letters)
        return True
    for fragment in _SECRET_FRAGMENTS:
        at = lowered.find(fragment)
        while at != -1:
            close = text.find('"', at)
            if close == -1 or text[close - 1] == "\\":
                return True
            if text.startswith(":", close + 1):
                start = text.rfind('"', 0, at)
                if start < 1 or text[start - 1] == "\\":
                    return True
                if SECRET_KEY.search(text, start + 1, close) is not None:
                    return True
            at = lowered.find(fragment, close)
    return False


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
    """The careful walk's output (or a string) as JSON: values orjson writes as they are."""
    return orjson.dumps(value, option=_ORJSON_OPTIONS).decode()


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


def _message_conversion(kind: type[BaseMessage]) -> Callable[[BaseMessage], dict[str, Any]]:
    """How a message of class `kind` becomes a GenAI-convention message (role and parts): the
    class's facts (its role, whether it is a tool response, whether it declares `tool_calls`)
    read once, so converting one message is one call with no look-ups of them."""
    class_role: str | None = None
    if not issubclass(kind, ChatMessage):
        class_role = next((r for cls, r in _ROLE_BY_MESSAGE_CLASS if issubclass(kind, cls)), None)
    declares_tool_calls = hasattr(kind, "tool_calls") or "tool_calls" in getattr(
        kind, "model_fields", {}
    )

    if issubclass(kind, ToolMessage):

        def tool_response(message: BaseMessage) -> dict[str, Any]:
            response = {
                "type": "tool_call_response",
                "id": getattr(message, "tool_call_id", None),
                "response": message.content,
            }
            return {"role": _role(message, class_role), "parts": [response]}

        return tool_response

    def conversion(message: BaseMessage) -> dict[str, Any]:
        content = message.content
        if content.__class__ is str:
            parts = [{"type": "text", "content": content}] if content else []
        else:
            parts = _parts_of_content(content)
        if declares_tool_calls:
            calls = getattr(message, "tool_calls", None)
        else:
            # Messages allow extra fields; looking for one that is absent through getattr costs
            # a raised and caught AttributeError inside pydantic.
            extra = getattr(message, "__pydantic_extra__", None)
            calls = extra.get("tool_calls") if extra else None
        if calls:
            parts.extend(_tool_call_part(call) for call in calls)
        return {
            "role": class_role if class_role is not None else _role(message, None),
            "parts": parts,
        }

    return conversion


def _tool_call_part(call: Any) -> dict[str, Any]:
    return {
        "type": "tool_call",
        "id": call.get("id"),
        "name": call.get("name"),
        "arguments": call.get("args"),
    }


def _role(message: BaseMessage, class_role: str | None) -> str:
    if class_role is not None:
        return class_role
    return message.role if isinstance(message, ChatMessage) else message.type


def message_dict(message: BaseMessage) -> dict[str, Any]:
    """A LangChain message as a GenAI-convention message: role and parts."""
    kind = message.__class__
    convert = _MESSAGE_CONVERSION_BY_CLASS.get(kind)
    if convert is None:
        convert = _message_conversion(kind)
        _remember(_MESSAGE_CONVERSION_BY_CLASS, kind, convert)
    return convert(message)


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
