# Install: pip install -e .
# Run:     python examples/instrument_everything.py
"""`otel_bridge.instrument()`: every LangChain run in the process is traced with no `callbacks=`
anywhere in the application code, `batch` calls and worker threads included.

Runs on the bundled fake chat model and prints each trace as indented span names.
"""

from collections import defaultdict

from langchain_core.prompts import ChatPromptTemplate
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import otel_bridge
from otel_bridge.testing import FakeChatModel

FRENCH = {"Hello": "Bonjour", "Thank you": "Merci"}

spans = InMemorySpanExporter()
otel_bridge.instrument(exporters=[spans])

# The application, unchanged: no handler is passed anywhere.
model = FakeChatModel(respond=lambda messages: FRENCH.get(messages[-1].text.split(": ")[1], "?"))
chain = ChatPromptTemplate.from_template("Translate to French: {text}") | model
print([reply.content for reply in chain.batch([{"text": "Hello"}, {"text": "Thank you"}])])

otel_bridge.uninstrument()
print(chain.invoke({"text": "Hello"}).content, "(after uninstrument: not traced)")

# What was recorded: one trace per top-level call, each span under its parent.
trace.get_tracer_provider().force_flush()
children = defaultdict(list)
for span in spans.get_finished_spans():
    children[span.parent.span_id if span.parent else None].append(span)


def show(span, depth):
    print("  " * depth + f"{span.name}  [{span.attributes.get('langchain.run.type')}]")
    for child in sorted(children[span.context.span_id], key=lambda s: s.start_time):
        show(child, depth + 1)


for root in children[None]:
    print(f"trace {root.context.trace_id:032x}")
    show(root, 1)
