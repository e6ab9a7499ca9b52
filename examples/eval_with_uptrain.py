# Install: pip install -e . -e exporters/uptrain
# Run:     OPENAI_API_KEY=<key> python examples/eval_with_uptrain.py
"""Evaluate a RAG chain with UpTrain, per finished trace and off the request path.

`UpTrainCallbackHandler` takes langchain_community's arguments. Each finished trace gets the
checks that fit its shape (a retrieval plus an answer: context relevance, factual accuracy,
response completeness); the scores are printed (`log_results`) and emitted as OpenTelemetry
spans linked to the evaluated trace. The judge is OpenAI (OPENAI_API_KEY) or any
OpenAI-compatible server (OTEL_BRIDGE_UPTRAIN_API_KEY + OTEL_BRIDGE_UPTRAIN_API_BASE).
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
    from otel_bridge_uptrain import UpTrainCallbackHandler
except ImportError as missing:
    sys.exit(f"{missing.name} is not installed: pip install -e . -e exporters/uptrain")

if not (os.environ.get("OPENAI_API_KEY") or os.environ.get("OTEL_BRIDGE_UPTRAIN_API_KEY")):
    sys.exit("set OPENAI_API_KEY, or OTEL_BRIDGE_UPTRAIN_API_KEY and OTEL_BRIDGE_UPTRAIN_API_BASE")

store = InMemoryVectorStore(DeterministicFakeEmbedding(size=128))
store.add_documents(
    [
        Document("The Eiffel Tower is 330 metres tall."),
        Document("It was completed in 1889 for the World's Fair."),
    ]
)
prompt = ChatPromptTemplate.from_template("Context:\n{context}\n\nQuestion: {question}")
answer = FakeChatModel(respond=lambda messages: "The Eiffel Tower is 330 metres tall.")
rag = (
    {"context": store.as_retriever(search_kwargs={"k": 2}), "question": RunnablePassthrough()}
    | prompt
    | answer
    | StrOutputParser()
)

handler = UpTrainCallbackHandler(key_type="openai", log_results=True)
print(rag.invoke("How tall is the Eiffel Tower?", {"callbacks": [handler]}))

# A short script flushes before it exits; a service would simply keep running.
handler.flush()
