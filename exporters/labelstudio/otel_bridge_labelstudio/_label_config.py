"""Label Studio labeling configs: the default XML per mode, and validation of a user's config.

Validation yields a `Binding`, which names the tags a task's data and prediction must fill.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from enum import StrEnum


class LabelStudioMode(StrEnum):
    """How an LLM call is shown to the reviewer: a prompt text, or a dialogue of messages."""

    PROMPT = "prompt"
    CHAT = "chat"


class LabelConfigError(ValueError):
    """A labeling config the exporter cannot fill: malformed XML or a missing tag."""


# The object tag each mode shows the input with.
_OBJECT_TAG = {LabelStudioMode.PROMPT: "Text", LabelStudioMode.CHAT: "Paragraphs"}

_DEFAULT_CONFIGS = {
    LabelStudioMode.PROMPT: """<View>
  <Style>
    .prompt-box { background-color: white; border-radius: 10px; padding: 20px;
                  box-shadow: 0px 4px 6px rgba(0, 0, 0, 0.1); }
  </Style>
  <View className="prompt-box">
    <Text name="prompt" value="$prompt"/>
  </View>
  <Header value="Response:"/>
  <TextArea name="response" toName="prompt" maxSubmissions="1" editable="true" required="true"/>
  <Header value="Rate the response:"/>
  <Rating name="rating" toName="prompt"/>
</View>""",
    LabelStudioMode.CHAT: """<View>
  <Paragraphs name="dialogue" value="$prompt" layout="dialogue"
              textKey="content" nameKey="role" granularity="sentence"/>
  <Header value="Final response:"/>
  <TextArea name="response" toName="dialogue" maxSubmissions="1" editable="true" required="true"/>
  <Header value="Rate the response:"/>
  <Rating name="rating" toName="dialogue"/>
</View>""",
}


@dataclass(frozen=True, slots=True)
class Binding:
    """Where a task puts its input and its generation in a given labeling config.

    `data_key` is the task-data field the object tag reads (`value="$prompt"` -> "prompt");
    `from_name`/`to_name` address the TextArea result that carries the generation.
    """

    mode: LabelStudioMode
    from_name: str
    to_name: str
    data_key: str
    text_key: str = "content"
    role_key: str = "role"


def parse_mode(mode: str | LabelStudioMode) -> LabelStudioMode:
    """The mode named by `mode`, or a `ValueError` listing the valid ones."""
    try:
        return LabelStudioMode(mode)
    except ValueError:
        valid = ", ".join(repr(m.value) for m in LabelStudioMode)
        raise ValueError(f"Label Studio mode {mode!r} is not one of {valid}") from None


def object_tag(mode: str | LabelStudioMode) -> str:
    """The object tag an LLM call is shown in for `mode`: Text (prompt) or Paragraphs (chat)."""
    return _OBJECT_TAG[parse_mode(mode)]


def default_label_config(mode: str | LabelStudioMode) -> str:
    """The labeling config a new project gets for `mode`."""
    return _DEFAULT_CONFIGS[parse_mode(mode)]


def bind_label_config(config: str, mode: str | LabelStudioMode) -> Binding:
    """Check that `config` can show an LLM call in `mode`, and say where each part goes.

    The config needs a TextArea whose `toName` names a Text (prompt mode) or Paragraphs (chat
    mode) object reading a task-data field (`value="$field"`); anything else raises a
    `LabelConfigError` naming what is missing.
    """
    mode = parse_mode(mode)
    try:
        root = ElementTree.fromstring(config)
    except ElementTree.ParseError as error:
        raise LabelConfigError(f"Label Studio project config is not valid XML: {error}") from None
    objects = {tag.get("name"): tag for tag in root.iter() if tag.get("name")}
    wanted = _OBJECT_TAG[mode]
    text_areas = list(root.iter("TextArea"))
    if not text_areas:
        raise LabelConfigError(
            f"Label Studio project config has no <TextArea> tag: mode={mode.value!r} needs a "
            f'<TextArea name="response" toName="..."/> bound to a <{wanted}> object to hold '
            "the model's generation"
        )
    seen: list[str] = []
    for text_area in text_areas:
        from_name = text_area.get("name")
        for to_name in (text_area.get("toName") or "").split(","):
            target = objects.get(to_name.strip())
            if target is None:
                seen.append(f"<TextArea name={from_name!r}> -> missing object {to_name!r}")
                continue
            seen.append(f"<TextArea name={from_name!r}> -> <{target.tag} name={to_name!r}>")
            value = target.get("value") or ""
            if target.tag == wanted and from_name and value.startswith("$") and len(value) > 1:
                return Binding(
                    mode=mode,
                    from_name=from_name,
                    to_name=to_name.strip(),
                    data_key=value[1:],
                    text_key=target.get("textKey") or "text",
                    role_key=target.get("nameKey") or "author",
                )
    other = next(m for m in LabelStudioMode if m is not mode)
    hint = f"; a <{_OBJECT_TAG[other]}> object suits mode={other.value!r}"
    raise LabelConfigError(
        f"Label Studio project config has no <TextArea> bound to a <{wanted}> object with a "
        f'value="$field", which mode={mode.value!r} needs (found: {", ".join(seen)}){hint}'
    )
