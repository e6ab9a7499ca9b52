# Install: pip install -e . -e exporters/labelstudio
# Run:     LABEL_STUDIO_URL=http://localhost:8080 LABEL_STUDIO_API_KEY=<token> python examples/rag_to_labelstudio.py
"""A RAG chain whose LLM calls become Label Studio review tasks, delivered off the request path.

`LabelStudioCallbackHandler` takes langchain_community's arguments; it traces every run as an
OpenTelemetry span and a background exporter imports one task per LLM call (prompt, answer as
the prediction, model, tokens, trace id). Needs a Label Studio server: set LABEL_STUDIO_URL
(default http://localhost:8080) and LABEL_STUDIO_API_KEY. The chat model is the bundled fake.
"""

import os
import sys

from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough
from langchain_core.vectorstores import InMemoryVectorStore

from otel_bridge.testing import FakeChatModel

try:  # beyond the core: the command at the top installs it
    from label_studio_sdk import LabelStudio
    from otel_bridge_labelstudio import LabelStudioCallbackHandler
except ImportError as missing:
    sys.exit(f"{missing.name} is not installed: pip install -e . -e exporters/labelstudio")

if not os.environ.get("LABEL_STUDIO_API_KEY"):
    sys.exit("set LABEL_STUDIO_API_KEY (and LABEL_STUDIO_URL) to a Label Studio server's token")

store = InMemoryVectorStore(DeterministicFakeEmbedding(size=128))
store.add_documents(
    [
        Document("Refunds are paid within 14 days of receiving the returned item."),
        Document("Orders over 50 EUR ship free within the EU."),
        Document("Support answers within one business day."),
    ]
)
prompt = ChatPromptTemplate.from_template("Context:\n{context}\n\nQuestion: {question}")
ANSWERS = {
    "When do I get my refund?": "Within 14 days of receiving the returned item.",
    "How fast is support?": "Support answers within one business day.",
}
model = FakeChatModel(respond=lambda messages: ANSWERS[messages[-1].text.split("Question: ")[1]])
rag = (
    {"context": store.as_retriever(search_kwargs={"k": 2}), "question": RunnablePassthrough()}
    | prompt
    | model
    | StrOutputParser()
)

handler = LabelStudioCallbackHandler()  # api_key, url, project_name, mode, ... as before
for question in ANSWERS:
    print(question, "->", rag.invoke(question, {"callbacks": [handler]}))

# A short script flushes before it exits; a service would simply keep running.
handler.flush()
project = handler.exporter.project()
client = LabelStudio(base_url=handler.url, api_key=os.environ["LABEL_STUDIO_API_KEY"])
tasks = list(client.tasks.list(project=project.id))
print(
    f"{len(tasks)} review tasks in project {project.title!r}: {handler.url}/projects/{project.id}"
)
