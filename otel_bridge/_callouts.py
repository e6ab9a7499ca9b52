"""Which prompt and parser runs may call out, and so need their span current while they run.

LangChain's own templates and parsers only format and parse: making their spans current would
cost every chain call and never parent anything. A few-shot template with an example selector
queries a vector store, and an app's own template or parser may call any service. A prompt run
carries its template's serialized form, the same dict for every run of one template object,
which names every class the template is built of; a parser run is known by its name.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

__all__ = ["may_call_out"]

# The classes a pure template is built of: templates that only format, and plain messages.
_PURE_PROMPT_PARTS = frozenset(
    {
        "AIMessage",
        "AIMessagePromptTemplate",
        "ChatMessage",
        "ChatMessagePromptTemplate",
        "ChatPromptTemplate",
        "DictPromptTemplate",
        "FunctionMessage",
        "HumanMessage",
        "HumanMessagePromptTemplate",
        "ImagePromptTemplate",
        "MessagesPlaceholder",
        "PromptTemplate",
        "StructuredPrompt",
        "SystemMessage",
        "SystemMessagePromptTemplate",
        "ToolMessage",
    }
)
# langchain_core's parsers, none of which calls anything but its own parsing code.
_PURE_PARSERS = frozenset(
    {
        "CommaSeparatedListOutputParser",
        "JsonKeyOutputFunctionsParser",
        "JsonOutputFunctionsParser",
        "JsonOutputKeyToolsParser",
        "JsonOutputParser",
        "JsonOutputToolsParser",
        "MarkdownListOutputParser",
        "NumberedListOutputParser",
        "OutputFunctionsParser",
        "PydanticAttrOutputFunctionsParser",
        "PydanticOutputFunctionsParser",
        "PydanticOutputParser",
        "PydanticToolsParser",
        "SimpleJsonOutputParser",
        "StrOutputParser",
        "XMLOutputParser",
    }
)
_PURE_BY_NAME = _PURE_PROMPT_PARTS | _PURE_PARSERS

# Verdicts per serialized template, keyed by the dict's id; the dict is kept alongside so the id
# cannot be reused while the entry lives. Bounded: cleared when full.
_MAX_VERDICTS = 1024
_verdicts: dict[int, tuple[Mapping[str, Any], bool]] = {}
_verdicts_lock = threading.Lock()


def may_call_out(serialized: Any, name: str) -> bool:
    """Whether a prompt or parser run (its `serialized` form, else its `name`) may run code
    that calls out."""
    if not isinstance(serialized, dict):
        return name not in _PURE_BY_NAME
    verdict = _verdicts.get(id(serialized))
    if verdict is not None and verdict[0] is serialized:
        return verdict[1]
    calls_out = not _built_of_pure_parts(serialized)
    with _verdicts_lock:
        if len(_verdicts) >= _MAX_VERDICTS:
            _verdicts.clear()
        _verdicts[id(serialized)] = (serialized, calls_out)
    return calls_out


def _built_of_pure_parts(serialized: Mapping[str, Any]) -> bool:
    """Every object in the serialized tree is a known pure part (a class that LangChain could
    not serialize, like a few-shot template with its selector, is not)."""
    pending: list[Any] = [serialized]
    while pending:
        item = pending.pop()
        if isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, dict):
            kind = item.get("type")
            if kind == "not_implemented":
                return False
            if kind == "constructor":
                ids = item.get("id")
                if not (isinstance(ids, list) and ids and ids[-1] in _PURE_PROMPT_PARTS):
                    return False
                pending.append(item.get("kwargs"))
            else:
                pending.extend(item.values())
    return True
