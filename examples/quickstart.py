# Install: pip install -e .
# Run:     python examples/quickstart.py
"""Quickstart: one `OTelCallbackHandler` traces a LangChain chain; the spans print to the console.

Runs with no API key on the bundled fake chat model; swap in `ChatOpenAI(model="gpt-4o-mini")`
(or any chat model) for a real one.
"""

from langchain_core.prompts import ChatPromptTemplate
from opentelemetry.sdk.trace.export import ConsoleSpanExporter

from otel_bridge import OTelCallbackHandler
from otel_bridge.testing import FakeChatModel

# No TracerProvider configured yet: the handler builds one (OTEL_* variables apply) around the
# given exporters, and the SDK flushes it when the process exits.
handler = OTelCallbackHandler(exporters=[ConsoleSpanExporter()])

prompt = ChatPromptTemplate.from_messages([("system", "Be brief."), ("human", "{question}")])
model = FakeChatModel(responses=["Spans, with parent links, attributes and metrics."])
chain = prompt | model

answer = chain.invoke(
    {"question": "What does otel-bridge make of a chain?"}, {"callbacks": [handler]}
)
print(answer.content)
