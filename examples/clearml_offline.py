# Install: pip install -e '.[examples]' -e exporters/clearml
# Run:     python examples/clearml_offline.py
"""Log a LangChain agent's runs to ClearML with no ClearML server: an offline session you can
import into a server later.

`ClearMLCallbackHandler` takes langchain_community's arguments and keeps its `flush_tracker`:
each finished trace becomes "Action Records" and "Session Analysis" tables, per-model scalars
(latency, tokens, errors) and console lines, reported off the app's thread. With server
credentials configured (clearml.conf or CLEARML_API_* variables) the same code logs online.
"""

import sys

from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import tool

from otel_bridge.testing import FakeChatModel

try:  # beyond the core: the command at the top installs it
    from langchain.agents import create_agent
    from otel_bridge_clearml import ClearMLCallbackHandler
except ImportError as missing:
    sys.exit(f"{missing.name} is not installed: pip install -e '.[examples]' -e exporters/clearml")


@tool
def word_count(text: str) -> int:
    """Count the words of a text."""
    return len(text.split())


def reply(messages: list) -> AIMessage:
    # The fake model asks for the tool once, then answers with its result.
    if not isinstance(messages[-1], ToolMessage):
        call = {"name": "word_count", "args": {"text": "spans become tables"}, "id": "call-1"}
        return AIMessage("", tool_calls=[call])
    return AIMessage(f"That text has {messages[-1].content} words.")


handler = ClearMLCallbackHandler(
    task_type="inference",
    project_name="otel-bridge examples",
    tags=["example"],
)
agent = create_agent(FakeChatModel(respond=reply), [word_count])
result = agent.invoke({"messages": [("user", "How many words?")]}, {"callbacks": [handler]})
print(result["messages"][-1].content)

# Deliver, report the session tables, save the agent as an output model, close the task.
handler.flush_tracker(name="word count agent", langchain_asset=agent, finish=True)
folder = handler.task.get_offline_mode_folder()
print(f"offline session: {folder}.zip (clearml.Task.import_offline_session to upload it)")
