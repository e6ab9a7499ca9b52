"""Labeling configs: the defaults bind in their mode, a user's config is checked with a clear error."""

from __future__ import annotations

import pytest
from otel_bridge_labelstudio import LabelConfigError, LabelStudioMode, default_label_config
from otel_bridge_labelstudio._label_config import Binding, bind_label_config

QUESTION_ANSWER_CONFIG = """<View>
  <Text name="question" value="$question"/>
  <TextArea name="answer" toName="question" rows="4"/>
  <Choices name="verdict" toName="question"><Choice value="good"/><Choice value="bad"/></Choices>
</View>"""

TRANSCRIPT_CONFIG = """<View>
  <Paragraphs name="transcript" value="$messages" layout="dialogue" nameKey="speaker" textKey="says"/>
  <TextArea name="better_reply" toName="transcript"/>
</View>"""


def _tags(binding: Binding) -> tuple[str, str, str]:
    """The tag the annotation is written from, the tag it labels, and the task data key."""
    return (binding.from_name, binding.to_name, binding.data_key)


@pytest.mark.parametrize(
    ("mode", "to_name"), [(LabelStudioMode.PROMPT, "prompt"), (LabelStudioMode.CHAT, "dialogue")]
)
def test_default_configs_bind_in_their_mode(mode: LabelStudioMode, to_name: str) -> None:
    binding = bind_label_config(default_label_config(mode), mode)
    assert _tags(binding) == ("response", to_name, "prompt")
    assert binding.mode is mode


def test_custom_prompt_config_names_its_own_tags() -> None:
    binding = bind_label_config(QUESTION_ANSWER_CONFIG, "prompt")
    assert _tags(binding) == ("answer", "question", "question")


def test_custom_chat_config_reads_role_and_text_keys() -> None:
    binding = bind_label_config(TRANSCRIPT_CONFIG, "chat")
    assert _tags(binding) == ("better_reply", "transcript", "messages")
    assert (binding.role_key, binding.text_key) == ("speaker", "says")


@pytest.mark.parametrize(
    ("config", "mode", "message"),
    [
        ("<View><Text name='t' value='$t'/>", "prompt", "not valid XML"),
        ("<View><Text name='t' value='$t'/></View>", "prompt", "has no <TextArea> tag"),
        (TRANSCRIPT_CONFIG, "prompt", "bound to a <Text> object"),
        (QUESTION_ANSWER_CONFIG, "chat", "bound to a <Paragraphs> object"),
        (
            "<View><TextArea name='r' toName='nowhere'/></View>",
            "prompt",
            "missing object 'nowhere'",
        ),
        (
            "<View><Text name='t' value='fixed'/><TextArea name='r' toName='t'/></View>",
            "prompt",
            'value="$field"',
        ),
    ],
)
def test_unusable_configs_fail_naming_what_is_missing(config: str, mode: str, message: str) -> None:
    with pytest.raises(LabelConfigError, match=message.replace("$", r"\$")):
        bind_label_config(config, mode)


def test_a_mode_mismatch_hints_at_the_other_mode() -> None:
    with pytest.raises(LabelConfigError, match="mode='chat'"):
        bind_label_config(TRANSCRIPT_CONFIG, "prompt")


def test_unknown_mode_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="'prompt', 'chat'"):
        default_label_config("dialogue")
